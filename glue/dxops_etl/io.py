"""Plain-Python reads and writes of small files (JSON reports, vocabularies) at a URI.

Spark handles the data; these helpers handle the few driver-side files. file:// URIs (the local
cloud's mirror) and plain paths use the local file system, s3:// uses boto3 (imported only then).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlparse


def join_uri(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])


def write_text(uri: str, text: str, content_type: str = "application/json") -> None:
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        import boto3  # noqa: PLC0415 - only on AWS

        boto3.client("s3").put_object(
            Bucket=parsed.netloc, Key=parsed.path.lstrip("/"), Body=text.encode(), ContentType=content_type
        )
        return
    path = Path(parsed.path if parsed.scheme == "file" else uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def read_text(uri: str) -> str:
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        import boto3  # noqa: PLC0415 - only on AWS

        body = boto3.client("s3").get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"].read()
        return bytes(body).decode("utf-8")
    return Path(parsed.path if parsed.scheme == "file" else uri).read_text(encoding="utf-8")


def write_json(uri: str, document: Any) -> None:
    write_text(uri, json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")
