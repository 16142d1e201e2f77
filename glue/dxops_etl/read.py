"""Reading the raw zone: NDJSON lines -> typed DataFrames, with unusable lines quarantined.

Paths are folders (``.../raw/clinical/``) read recursively: the Hive-style folders
(source=<site>/ingest_date=<d>) are not turned into partition columns, since ``source`` is a field
of every line already. Lines are parsed with an explicit schema in PERMISSIVE mode: a line that is
not JSON or whose fields have the wrong type keeps its text in ``_corrupt_record`` and goes to the
quarantine with reason ``malformed``; a line missing a required field goes there with reason
``missing:<field>``. Nothing is dropped silently: ``lines in = valid + quarantined``.
"""

from __future__ import annotations

from typing import NamedTuple

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from dxops_etl.raw_schemas import (
    CLINICAL_RECORD,
    CLINICAL_REQUIRED,
    CORRUPT_COLUMN,
    DEVICE_READING,
    DEVICE_REQUIRED,
    SOURCE_FILE_COLUMN,
)

QUARANTINE_SCHEMA = StructType(
    [
        StructField("kind", StringType(), False),
        StructField("reason", StringType(), False),
        StructField("source_file", StringType()),
        StructField("line", StringType()),
    ]
)


class RawRead(NamedTuple):
    valid: DataFrame
    quarantine: DataFrame  # QUARANTINE_SCHEMA


def read_ndjson(spark: SparkSession, path: str, schema: StructType) -> DataFrame:
    """All NDJSON lines under ``path`` (file://, s3:// or a local folder); an absent path is empty."""
    with_file = StructType([*schema.fields, StructField(SOURCE_FILE_COLUMN, StringType())])
    try:
        frame = (
            spark.read.schema(schema)
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", CORRUPT_COLUMN)
            .option("recursiveFileLookup", "true")
            .option("pathGlobFilter", "*.ndjson")
            .json(path)
        )
    except AnalysisException as error:
        if "PATH_NOT_FOUND" not in str(error) and "Path does not exist" not in str(error):
            raise
        return spark.createDataFrame([], with_file)
    return frame.withColumn(SOURCE_FILE_COLUMN, F.input_file_name())


def _reason(required: tuple[str, ...]) -> Column:
    reason = F.when(F.col(CORRUPT_COLUMN).isNotNull(), F.lit("malformed"))
    for field in required:
        reason = reason.when(F.col(field).isNull(), F.lit(f"missing:{field}"))
    return reason


def split_valid(frame: DataFrame, kind: str, required: tuple[str, ...]) -> RawRead:
    """Valid rows (without the corrupt-record column) and the quarantined lines with a reason."""
    # Spark refuses queries on the raw JSON that reference only the corrupt-record column: the
    # reason is computed once on a cached frame.
    tagged = frame.withColumn("_reason", _reason(required)).cache()
    valid = tagged.filter(F.col("_reason").isNull()).drop("_reason", CORRUPT_COLUMN)
    payload = [c for c in frame.columns if c not in {CORRUPT_COLUMN, SOURCE_FILE_COLUMN}]
    quarantine = tagged.filter(F.col("_reason").isNotNull()).select(
        F.lit(kind).alias("kind"),
        F.col("_reason").alias("reason"),
        F.col(SOURCE_FILE_COLUMN).alias("source_file"),
        F.coalesce(F.col(CORRUPT_COLUMN), F.to_json(F.struct(*[F.col(c) for c in payload]))).alias("line"),
    )
    return RawRead(valid, quarantine)


def read_clinical(spark: SparkSession, path: str) -> RawRead:
    return split_valid(read_ndjson(spark, path, CLINICAL_RECORD), "clinical", CLINICAL_REQUIRED)


def read_device(spark: SparkSession, path: str) -> RawRead:
    return split_valid(read_ndjson(spark, path, DEVICE_READING), "device", DEVICE_REQUIRED)
