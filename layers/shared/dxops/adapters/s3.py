"""S3 adapter for the raw zone. Encryption (SSE-KMS) is the bucket's default, set in template.yaml."""

from __future__ import annotations

from typing import Any

import boto3


class S3ObjectStore:
    def __init__(self, bucket: str, client: Any | None = None) -> None:
        self.bucket = bucket
        self._client = client or boto3.client("s3")

    def put_object(self, key: str, body: bytes, content_type: str) -> None:
        self._client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
