"""S3 adapters: the raw zone and the curated bucket. Encryption (SSE-KMS) is each bucket's default,
set in template.yaml."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.exceptions import ClientError

from dxops.adapters.ports import StoredVersion
from dxops.domain.erasure import ConcurrentChange
from dxops.schemas.erasure import ErasureAudit

_DELETE_LIMIT = 1000  # DeleteObjects' limit per call
_MISSING = ("NoSuchKey", "404")
_PRECONDITION_FAILED = ("PreconditionFailed", "ConditionalRequestConflict")  # If-Match / If-None-Match


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class S3ObjectStore:
    def __init__(self, bucket: str, client: Any | None = None) -> None:
        self.bucket = bucket
        self._client = client or boto3.client("s3")

    def put_object(self, key: str, body: bytes, content_type: str) -> None:
        self._client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)


class InboxFileGone(Exception):
    """The inbox file (that version) is no longer there."""


class S3Inbox:
    """The raw bucket's inbox/: files dropped for bulk ingestion, read and then deleted by version."""

    def __init__(self, bucket: str, client: Any | None = None) -> None:
        self.bucket = bucket
        self._client = client or boto3.client("s3")

    def read(self, key: str, version: str | None) -> bytes:
        """The file's bytes; InboxFileGone if it was deleted (ingested already: a redelivered event)."""
        try:
            response = (
                self._client.get_object(Bucket=self.bucket, Key=key, VersionId=version)
                if version
                else self._client.get_object(Bucket=self.bucket, Key=key)
            )
        except ClientError as error:
            if _code(error) in (*_MISSING, "NoSuchVersion"):
                raise InboxFileGone from None
            raise
        body: bytes = response["Body"].read()
        return body

    def delete(self, key: str, version: str | None) -> None:
        """Delete that version for good (no delete marker keeps it), or the object if unversioned."""
        if version:
            self._client.delete_object(Bucket=self.bucket, Key=key, VersionId=version)
        else:
            self._client.delete_object(Bucket=self.bucket, Key=key)


class S3KeyListing:
    """KeyListing of one bucket (s3:ListBucket)."""

    def __init__(self, bucket: str, client: Any | None = None) -> None:
        self.bucket = bucket
        self._client = client or boto3.client("s3")

    def list_keys(self, prefix: str) -> list[str]:
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]


class S3DatasetFiles:
    """The curated bucket (versioned): reports, manifests, and removal of a version's objects."""

    def __init__(self, bucket: str, client: Any | None = None) -> None:
        self.bucket = bucket
        self._client = client or boto3.client("s3")

    def read_json(self, key: str) -> Any:
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as error:
            if _code(error) in _MISSING:
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
            if _code(error) in _PRECONDITION_FAILED:
                return False
            raise
        return True

    def overwrite_json(self, key: str, document: Any) -> None:
        body = (json.dumps(document, indent=2) + "\n").encode()
        self._client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")

    def purge_noncurrent(self, prefix: str) -> int:
        return _delete_versions(self._client, self.bucket, prefix, current_too=False)

    def copy(self, source_key: str, target_key: str) -> None:
        self._client.copy_object(
            Bucket=self.bucket, Key=target_key, CopySource={"Bucket": self.bucket, "Key": source_key}
        )

    def delete_prefix(self, prefix: str) -> int:
        """Every version and delete marker under prefix: nothing of it stays recoverable."""
        return _delete_versions(self._client, self.bucket, prefix, current_too=True)

    def subfolders(self, prefix: str) -> list[str]:
        names: list[str] = []
        for page in self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, Delimiter="/"
        ):
            names.extend(p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", []))
        return names


def _delete_versions(client: Any, bucket: str, prefix: str, *, current_too: bool) -> int:
    """Delete the versions and delete markers under prefix (all, or all but the current ones);
    returns how many object versions were deleted."""
    deleted = 0
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        versions = [v for v in page.get("Versions", []) if current_too or not v["IsLatest"]]
        markers = page.get("DeleteMarkers", [])
        entries = [{"Key": e["Key"], "VersionId": e["VersionId"]} for e in [*versions, *markers]]
        for start in range(0, len(entries), _DELETE_LIMIT):
            response = client.delete_objects(
                Bucket=bucket, Delete={"Objects": entries[start : start + _DELETE_LIMIT], "Quiet": True}
            )
            if response.get("Errors"):  # Quiet mode lists only what failed, with HTTP 200
                raise RuntimeError(f"{len(response['Errors'])} deletions failed under {prefix}")
        deleted += len(versions)
    return deleted


class S3RewritableObjects:
    """The raw bucket, as an erasure rewrites it (versioned: older versions are purged explicitly)."""

    def __init__(self, bucket: str, client: Any | None = None) -> None:
        self.bucket = bucket
        self._client = client or boto3.client("s3")

    def list_keys(self) -> Iterator[str]:
        last = None
        for page in self._client.get_paginator("list_object_versions").paginate(Bucket=self.bucket):
            # Versions and delete markers come in key order, page after page.
            for key in sorted({e["Key"] for e in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]}):
                if key != last:
                    last = key
                    yield key

    def _versions(self, key: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        # list_object_versions is by prefix: keep to the versions of exactly this key.
        for page in self._client.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=key):
            found.extend(dict(v) for v in page.get("Versions", []) if v["Key"] == key)
            found.extend({**m, "Marker": True} for m in page.get("DeleteMarkers", []) if m["Key"] == key)
        return sorted(found, key=lambda v: (not v["IsLatest"], -v["LastModified"].timestamp()))

    def read_versions(self, key: str) -> list[StoredVersion]:
        versions = []
        for version in self._versions(key):
            body = None
            if not version.get("Marker"):
                response = self._client.get_object(Bucket=self.bucket, Key=key, VersionId=version["VersionId"])
                body = bytes(response["Body"].read())
            versions.append(
                StoredVersion(
                    version_id=version["VersionId"],
                    etag=str(version.get("ETag", "")),
                    is_latest=bool(version["IsLatest"]),
                    body=body,
                )
            )
        return versions

    def replace(self, key: str, body: bytes, if_match: str) -> None:
        content_type = "application/x-ndjson" if key.endswith(".ndjson") else "application/json"
        try:
            self._client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, IfMatch=if_match)
        except ClientError as error:
            if _code(error) in _PRECONDITION_FAILED:
                raise ConcurrentChange(key) from error
            raise

    def purge_older_versions(self, key: str) -> int:
        return self._delete_versions(key, keep_current=True)

    def remove(self, key: str) -> int:
        return self._delete_versions(key, keep_current=False)

    def _delete_versions(self, key: str, *, keep_current: bool) -> int:
        deleted = 0
        for version in self._versions(key):
            if keep_current and version["IsLatest"]:
                continue
            self._client.delete_object(Bucket=self.bucket, Key=key, VersionId=version["VersionId"])
            deleted += not version.get("Marker")  # delete markers are not object versions
        return deleted


class S3ErasureAuditLog:
    """audit/erasure/<request_id>/<status>.json in the audit bucket (Object Lock: write once)."""

    PREFIX = "audit/erasure/"

    def __init__(self, bucket: str, client: Any | None = None) -> None:
        self.bucket = bucket
        self._client = client or boto3.client("s3")

    def write(self, record: ErasureAudit) -> None:
        key = f"{self.PREFIX}{record.request_id}/{record.status}.json"
        try:
            # Write once (If-None-Match); Object Lock buckets also require an integrity checksum.
            self._client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=record.model_dump_json(indent=2).encode(),
                ContentType="application/json",
                ChecksumAlgorithm="SHA256",
                IfNoneMatch="*",
            )
        except ClientError as error:
            if _code(error) not in _PRECONDITION_FAILED:
                raise  # otherwise recorded already (the API and the erasure both record a request)

    def read(self, request_id: str) -> dict[str, ErasureAudit]:
        records: dict[str, ErasureAudit] = {}
        for status in ("requested", "completed"):
            try:
                body = self._client.get_object(Bucket=self.bucket, Key=f"{self.PREFIX}{request_id}/{status}.json")[
                    "Body"
                ]
            except ClientError as error:
                if _code(error) in _MISSING:
                    continue
                raise
            records[status] = ErasureAudit.model_validate_json(body.read())
        return records


def split_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


class S3JsonDocuments:
    """JSON documents by s3:// URI, in any bucket the function's role may read or write."""

    def __init__(self, client: Any | None = None) -> None:
        self._client = client or boto3.client("s3")

    def read(self, uri: str) -> Any:
        bucket, key = split_uri(uri)
        try:
            body = self._client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as error:
            if _code(error) in (*_MISSING, "NoSuchBucket"):
                return None
            raise
        return json.loads(body)

    def write(self, uri: str, document: Any) -> None:
        bucket, key = split_uri(uri)
        body = (json.dumps(document, indent=2, sort_keys=True, default=str) + "\n").encode()
        self._client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")


class S3SampleRecords:
    """The most recently stored clinical records of the raw zone (for the deployment's smoke test)."""

    PREFIX = "raw/clinical/"

    def __init__(self, bucket: str, client: Any | None = None, scan_limit: int = 2000) -> None:
        self.bucket = bucket
        self._client = client or boto3.client("s3")
        self.scan_limit = scan_limit  # objects listed at most (a smoke test needs a few records)

    def latest(self, count: int) -> list[dict[str, Any]]:
        objects: list[Any] = []
        for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.PREFIX):
            objects.extend(o for o in page.get("Contents", []) if o["Key"].endswith(".ndjson"))
            if len(objects) >= self.scan_limit:
                break
        records: list[dict[str, Any]] = []
        for obj in sorted(objects, key=lambda o: o["LastModified"], reverse=True):
            body = self._client.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read().decode()
            records.extend(json.loads(line) for line in body.splitlines() if line.strip())
            if len(records) >= count:
                break
        return records[:count]
