"""The monitoring bucket: served predictions (predictions/) and late diagnoses (diagnoses/).
Encryption (SSE-KMS) is the bucket's default, set in template.yaml.

The client fails fast (1 s to connect, 3 s to read, two attempts): a prediction that was served is
not held back long by its monitoring write, which is best effort (dxops.domain.prediction).
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from dxops.adapters.s3 import S3ObjectStore

_PRECONDITION_FAILED = ("PreconditionFailed", "ConditionalRequestConflict")  # If-None-Match
_FAIL_FAST = Config(connect_timeout=1, read_timeout=3, retries={"mode": "standard", "total_max_attempts": 2})


class S3MonitoringStore(S3ObjectStore):
    """put_object (ObjectStore) and put_object_once (WriteOnceStore): needs s3:PutObject only."""

    def __init__(self, bucket: str, client: Any | None = None) -> None:
        super().__init__(bucket, client or boto3.client("s3", config=_FAIL_FAST))

    def put_object_once(self, key: str, body: bytes, content_type: str) -> bool:
        try:
            self._client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, IfNoneMatch="*")
        except ClientError as error:
            if str(error.response.get("Error", {}).get("Code", "")) in _PRECONDITION_FAILED:
                return False
            raise
        return True
