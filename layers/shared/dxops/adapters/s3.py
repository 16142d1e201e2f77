"""S3 adapters: the raw zone and the curated bucket. Encryption (SSE-KMS) is each bucket's default,
set in template.yaml."""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.exceptions import ClientError

_DELETE_LIMIT = 1000  # DeleteObjects' limit per call


class S3ObjectStore:
    def __init__(self, bucket: str, client: Any | None = None) -> None:
        self.bucket = bucket
        self._client = client or boto3.client("s3")

    def put_object(self, key: str, body: bytes, content_type: str) -> None:
        self._client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)


class S3DatasetFiles:
    """The curated bucket (versioned): reports, manifests, and removal of a version's objects."""

    def __init__(self, bucket: str, client: Any | None = None) -> None:
        self.bucket = bucket
        self._client = client or boto3.client("s3")

    def read_json(self, key: str) -> Any:
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return json.loads(body)

    def write_json_once(self, key: str, document: Any) -> bool:
        body = (json.dumps(document, indent=2) + "\n").encode()
        try:
            self._client.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType="application/json", IfNoneMatch="*"
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise
        return True

    def copy(self, source_key: str, target_key: str) -> None:
        self._client.copy_object(
            Bucket=self.bucket, Key=target_key, CopySource={"Bucket": self.bucket, "Key": source_key}
        )

    def delete_prefix(self, prefix: str) -> int:
        """Every version and delete marker under prefix: nothing of it stays recoverable."""
        keys: set[str] = set()
        for page in self._client.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=prefix):
            entries = [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
            keys.update(e["Key"] for e in page.get("Versions", []))
            for start in range(0, len(entries), _DELETE_LIMIT):
                chunk = entries[start : start + _DELETE_LIMIT]
                if chunk:
                    self._client.delete_objects(
                        Bucket=self.bucket,
                        Delete={
                            "Objects": [{"Key": e["Key"], "VersionId": e["VersionId"]} for e in chunk],
                            "Quiet": True,
                        },
                    )
        return len(keys)

    def subfolders(self, prefix: str) -> list[str]:
        names: list[str] = []
        for page in self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, Delimiter="/"
        ):
            names.extend(p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", []))
        return names
