"""GDPR erasure in the curated bucket: every dataset (each version's table, the quarantine's failing
rows, orphan device patients and quarantined lines) rewritten without one patient's rows.

Safe rewrite: the rows kept are written to a scratch folder next to the dataset, then copied over
the dataset (overwrite), then the scratch folder is deleted; the original is replaced only once the
copy is complete. Datasets without the patient are not touched. Tables get a new content hash
(dxops_etl.fingerprint), the figure the version's manifest is amended with. Older S3 versions of the
rewritten files are purged afterwards by the state machine's completion step.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from dxops_etl.curated_schema import PARTITION_COLUMNS
from dxops_etl.fingerprint import content_hash
from dxops_etl.io import join_uri, read_text, write_text

PATIENT_COLUMNS = ("patient_id", "patient_pseudonym")
# (glob under the curated root, kind, format); the version id is the folder above the match.
DATASET_GLOBS = (
    ("datasets/*/table", "table", "parquet"),
    ("quarantine/*/dq_failing_rows", "quarantine", "parquet"),
    ("quarantine/*/dq_orphan_device_patients", "quarantine", "parquet"),
    ("quarantine/*/lines", "quarantine", "json"),  # quarantined raw lines: the pseudonym is in their text
)
QUARANTINED_LINE = StructType([StructField(n, StringType()) for n in ("reason", "source_file", "line")])


def _file_system(spark: SparkSession, uri: str) -> tuple[Any, Any]:
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), jvm.org.apache.hadoop.fs.Path


class ErasableDataset(NamedTuple):
    uri: str
    version: str
    kind: str  # table | quarantine
    data_format: str  # parquet | json


def erasable_datasets(spark: SparkSession, curated_root: str) -> list[ErasableDataset]:
    """Every dataset under the curated root that may hold a patient's rows."""
    found = []
    fs, path_class = _file_system(spark, curated_root)
    for pattern, kind, data_format in DATASET_GLOBS:
        for status in fs.globStatus(path_class(join_uri(curated_root, pattern))) or []:
            # Named under the root as given (Hadoop writes file:/x for file:///x); every glob is 3 deep.
            relative = str(status.getPath().toString()).rstrip("/").split("/")[-3:]
            found.append(ErasableDataset(join_uri(curated_root, *relative), relative[1], kind, data_format))
    return sorted(found)


def _read(spark: SparkSession, uri: str, data_format: str) -> DataFrame:
    if data_format == "json":
        return spark.read.schema(QUARANTINED_LINE).json(uri)  # + the kind=... partition column
    return spark.read.parquet(uri)


def _write(frame: DataFrame, uri: str, data_format: str, partitions: list[str]) -> None:
    writer = frame.write.mode("overwrite").partitionBy(*partitions)
    if data_format == "json":
        writer.json(uri)
    else:
        writer.parquet(uri)


def _is_patients(frame: DataFrame, data_format: str, pseudonym: str) -> Column | None:
    if data_format == "json":
        return F.col("line").contains(pseudonym)
    column = next((c for c in PATIENT_COLUMNS if c in frame.columns), None)
    return None if column is None else F.coalesce(F.col(column) == pseudonym, F.lit(False))


def erase_patient(
    spark: SparkSession, dataset: ErasableDataset, pseudonym: str, request_id: str
) -> dict[str, Any] | None:
    """Rewrite one dataset without the patient; None if it holds none of their rows.

    Crash-safe: the kept rows go to a scratch folder, marked complete (with the count removed) before
    the dataset is overwritten; a rerun that finds a complete scratch folder finishes from it (the
    dataset may be half overwritten, and no longer shows the patient), one that finds an incomplete
    one starts again."""
    uri, version, kind, data_format = dataset
    scratch = uri.rstrip("/") + f"__erasure_{request_id}"
    marker = join_uri(scratch, "_ERASURE.json")
    fs, path_class = _file_system(spark, scratch)
    if fs.exists(path_class(marker)):
        removed = int(json.loads(read_text(marker))["rows_removed"])
        partitions = list(json.loads(read_text(marker))["partitions"])
    else:
        fs.delete(path_class(scratch), True)  # an attempt that died while writing it
        frame = _read(spark, uri, data_format)
        patients = _is_patients(frame, data_format, pseudonym)
        if patients is None:
            return None
        removed = frame.filter(patients).count()
        if removed == 0:
            return None
        partitions = [c for c in (*PARTITION_COLUMNS, "kind") if c in frame.columns]
        kept = frame.filter(~patients)
        if kept.limit(1).count() == 0:
            # Nothing kept: one unpartitioned, empty file keeps the schema readable (a partitioned
            # write of no rows writes no file at all).
            kept, partitions = kept.coalesce(1), []
        _write(kept, scratch, data_format, partitions)
        write_text(marker, json.dumps({"rows_removed": removed, "partitions": partitions}))
    _write(_read(spark, scratch, data_format), uri, data_format, partitions)
    fs.delete(path_class(scratch), True)
    rewritten = _read(spark, uri, data_format)
    return {
        "path": uri if uri.endswith("/") else uri + "/",
        "dataset_version": version,
        "kind": kind,
        "rows_removed": int(removed),
        "rows_after": int(rewritten.count()),
        "content_hash": content_hash(rewritten) if kind == "table" else None,
    }


def erase_everywhere(spark: SparkSession, curated_root: str, pseudonym: str, request_id: str) -> list[dict[str, Any]]:
    changes = []
    for dataset in erasable_datasets(spark, curated_root):
        change = erase_patient(spark, dataset, pseudonym, request_id)
        if change is not None:
            changes.append(change)
    return changes
