"""Reading back what the functions stored in the raw bucket (raw zone and quarantine)."""

from __future__ import annotations

from typing import Any

from localcloud.cloud import LocalCloud


def stored_lines(cloud: LocalCloud, prefix: str) -> list[dict[str, Any]]:
    """Every NDJSON line under a prefix of the raw bucket, in key order."""
    return cloud.ndjson_lines(cloud.outputs["RawBucketName"], prefix)
