"""The content hash of a curated table: rows and schema, not files or order."""

from __future__ import annotations

from typing import Any

from dxops_etl.fingerprint import content_hash, source_objects


def frame(spark: Any, rows: list[tuple[Any, ...]], partitions: int = 1) -> Any:
    # A dotted column name, as history codes have (hx_ICD10:E78.5).
    return (
        spark.createDataFrame(rows, "record_id string, age double, label string")
        .withColumnRenamed("label", "hx_ICD10:E78.5")
        .repartition(partitions)
    )


ROWS = [("r1", 30.0, "A"), ("r2", None, "B"), ("r3", 71.5, None)]


def test_hash_ignores_row_order_and_partitioning(spark: Any) -> None:
    assert content_hash(frame(spark, ROWS)) == content_hash(frame(spark, list(reversed(ROWS)), partitions=3))


def test_hash_changes_with_a_value_a_row_or_the_schema(spark: Any) -> None:
    base = content_hash(frame(spark, ROWS))
    changed = content_hash(frame(spark, [("r1", 30.5, "A"), *ROWS[1:]]))
    removed = content_hash(frame(spark, ROWS[:2]))
    duplicated = content_hash(frame(spark, [*ROWS, ROWS[0]]))
    renamed = content_hash(spark.createDataFrame(ROWS, "record_id string, age_years double, `hx_ICD10:E78.5` string"))
    assert len({base, changed, removed, duplicated, renamed}) == 5


def test_source_objects_count_valid_and_quarantined_lines_per_object(spark: Any) -> None:
    valid = spark.createDataFrame(
        [("s3://b/raw/a.ndjson",), ("s3://b/raw/a.ndjson",), ("s3://b/raw/b.ndjson",)], "f string"
    )
    quarantined = spark.createDataFrame([("s3://b/raw/b.ndjson",)], "source_file string")
    assert source_objects(("clinical", valid, "f"), ("clinical", quarantined, "source_file")) == [
        {"kind": "clinical", "uri": "s3://b/raw/a.ndjson", "lines": 2},
        {"kind": "clinical", "uri": "s3://b/raw/b.ndjson", "lines": 2},
    ]
