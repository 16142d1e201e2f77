"""Deduplication: the raw zone keeps every replay and duplicate; the curated table keeps one row.

Clinical records: one row per record_id, the one ingested last (max ingested_at). Ties (the same
record ingested twice at the same instant, e.g. the same batch replayed) are broken by the SHA-256
of the whole line's JSON, largest first, so the result does not depend on file order or Spark's
partitioning. Device readings: one row per reading_id (<device>:<epoch ms>), same ordering.
"""

from __future__ import annotations

from typing import NamedTuple

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from dxops_etl.raw_schemas import SOURCE_FILE_COLUMN


class Deduplicated(NamedTuple):
    kept: DataFrame
    duplicates: DataFrame  # the rows dropped as duplicates (same columns as kept)


def deduplicate(frame: DataFrame, key: str, order_by: str = "ingested_at") -> Deduplicated:
    payload = [F.col(c) for c in frame.columns if c != SOURCE_FILE_COLUMN]
    fingerprint = F.sha2(F.to_json(F.struct(*payload)), 256)
    window = Window.partitionBy(key).orderBy(F.col(order_by).desc_nulls_last(), fingerprint.desc())
    ranked = frame.withColumn("_rank", F.row_number().over(window))
    return Deduplicated(
        kept=ranked.filter(F.col("_rank") == 1).drop("_rank"),
        duplicates=ranked.filter(F.col("_rank") > 1).drop("_rank"),
    )


def deduplicate_records(records: DataFrame) -> Deduplicated:
    return deduplicate(records, "record_id")


def deduplicate_readings(readings: DataFrame) -> Deduplicated:
    return deduplicate(readings, "reading_id")
