"""Reading back what the functions stored in the raw bucket (raw zone and quarantine)."""

from __future__ import annotations

import json
from typing import Any

import boto3

from localcloud.cloud import LocalCloud


def stored_lines(cloud: LocalCloud, prefix: str) -> list[dict[str, Any]]:
    """Every NDJSON line under a prefix of the raw bucket, in key order."""
    s3 = boto3.client("s3")
    bucket = cloud.outputs["RawBucketName"]
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return [
        json.loads(line)
        for obj in sorted(listing, key=lambda o: o["Key"])
        for line in s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode().splitlines()
    ]
