"""What a dataset version is made of: a content hash of the curated table and its source objects.

The content hash depends on the rows and the schema only, not on file layout, partitioning or row
order: two runs over the same raw data give the same hash (the state machine then publishes no new
version), and any changed, added or removed row changes it. Each row is hashed (SHA-256 of its
JSON with columns in a fixed order); the row hashes are sorted within 256 buckets (first byte) on
the executors, and the driver hashes the 256 bucket digests with the schema. Nothing larger than
256 short strings reaches the driver.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def content_hash(table: DataFrame) -> str:
    columns = sorted(table.columns)
    # Backquoted: curated column names hold dots (hx_ICD10:E78.5), which F.col would read as fields.
    row_hash = F.sha2(F.to_json(F.struct(*[F.col(f"`{c}`") for c in columns])), 256)
    buckets = (
        table.select(row_hash.alias("h"))
        .groupBy(F.substring("h", 1, 2).alias("bucket"))
        .agg(F.sha2(F.concat_ws("", F.array_sort(F.collect_list("h"))), 256).alias("digest"), F.count("*").alias("n"))
        .collect()
    )
    digest = hashlib.sha256()
    digest.update(
        ",".join(
            f"{f.name}:{f.dataType.simpleString()}" for f in sorted(table.schema.fields, key=lambda f: f.name)
        ).encode()
    )
    for row in sorted(buckets, key=lambda r: r["bucket"]):
        digest.update(f"|{row['bucket']}:{row['n']}:{row['digest']}".encode())
    return f"sha256:{digest.hexdigest()}"


def source_objects(*frames: tuple[str, DataFrame, str]) -> list[dict[str, Any]]:
    """[(kind, frame, source-file column)] -> one entry per raw object read: kind, uri, lines (valid
    and quarantined lines of an object are passed as separate frames and counted together)."""
    lines: dict[tuple[str, str], int] = {}
    for kind, frame, column in frames:
        for row in frame.groupBy(F.col(column).alias("uri")).count().collect():
            key = (kind, str(row["uri"]))
            lines[key] = lines.get(key, 0) + int(row["count"])
    return [{"kind": kind, "uri": uri, "lines": n} for (kind, uri), n in sorted(lines.items())]
