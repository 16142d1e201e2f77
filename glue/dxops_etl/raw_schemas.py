"""Explicit Spark schemas of the raw zone's NDJSON lines (no schema inference: a stray line cannot
change a column's type). They mirror dxops.schemas.clinical.PseudonymisedRecord and
dxops.schemas.device.PseudonymisedReading; a line that does not fit lands in CORRUPT_COLUMN.
"""

from __future__ import annotations

from pyspark.sql.types import (
    ArrayType,
    DateType,
    DoubleType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

CORRUPT_COLUMN = "_corrupt_record"
SOURCE_FILE_COLUMN = "_source_file"

MEASUREMENT = StructType(
    [
        StructField("name", StringType()),
        StructField("value", DoubleType()),
        StructField("unit", StringType()),
    ]
)

CLINICAL_RECORD = StructType(
    [
        StructField("record_id", StringType()),
        StructField("source", StringType()),
        StructField("encounter_date", DateType()),
        StructField("sex", StringType()),
        StructField("age_years", DoubleType()),
        StructField(
            "phenotypes",
            ArrayType(
                StructType(
                    [
                        StructField("hpo_id", StringType()),
                        StructField("status", StringType()),
                        StructField("onset_age_years", DoubleType()),
                    ]
                )
            ),
        ),
        StructField("history", ArrayType(StringType())),
        StructField(
            "labs",
            ArrayType(
                StructType(
                    [
                        StructField("loinc", StringType()),
                        StructField("value", DoubleType()),
                        StructField("unit", StringType()),
                        StructField("reference_low", DoubleType()),
                        StructField("reference_high", DoubleType()),
                    ]
                )
            ),
        ),
        StructField("vitals", ArrayType(MEASUREMENT)),
        StructField("diagnosis", StructType([StructField("code", StringType()), StructField("status", StringType())])),
        StructField("patient_pseudonym", StringType()),
        StructField("pseudonym_key_id", StringType()),
        StructField("ingested_at", TimestampType()),
        StructField("schema_version", StringType()),
        StructField(CORRUPT_COLUMN, StringType()),
    ]
)

DEVICE_READING = StructType(
    [
        StructField("reading_id", StringType()),
        StructField("device_id", StringType()),
        StructField("source", StringType()),
        StructField("patient_pseudonym", StringType()),
        StructField("pseudonym_key_id", StringType()),
        StructField("timestamp", TimestampType()),
        StructField("received_at", TimestampType()),
        StructField("ingested_at", TimestampType()),
        StructField("measurements", ArrayType(MEASUREMENT)),
        StructField("schema_version", StringType()),
        StructField(CORRUPT_COLUMN, StringType()),
    ]
)

# Fields without which a line cannot be used: the line goes to the quarantine with reason
# "missing:<field>" (first missing field in this order).
CLINICAL_REQUIRED = ("record_id", "source", "patient_pseudonym", "encounter_date", "ingested_at")
DEVICE_REQUIRED = ("reading_id", "source", "patient_pseudonym", "timestamp", "ingested_at")
