"""Unit normalisation in Spark: the conversion table of dxops.vocab.units as a broadcastable frame.

A (LOINC, unit) pair missing from the table becomes null (missing) and is counted as
``unknown_unit``; a LOINC missing from it is counted as ``unknown_loinc`` and has no column. The
data-quality ruleset's lab_ranges / vital_ranges rules check curated values against ``plausible``.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import DoubleType, StringType, StructField, StructType

from dxops.vocab.units import LABS, VITAL_LOINC, VITALS, Conversion, convert

__all__ = ["LABS", "VITALS", "VITAL_LOINC", "Conversion", "conversion_rows", "conversions_frame", "convert"]

CONVERSION_SCHEMA = StructType(
    [
        StructField("loinc", StringType(), False),
        StructField("unit", StringType(), False),
        StructField("multiplier", DoubleType(), False),
        StructField("offset", DoubleType(), False),
    ]
)


def conversion_rows(table: dict[str, Conversion]) -> list[tuple[str, str, float, float]]:
    rows = []
    for loinc, conversion in sorted(table.items()):
        rows.append((loinc, conversion.canonical, 1.0, 0.0))
        rows.extend((loinc, unit, float(m), float(o)) for unit, (m, o) in sorted(conversion.others.items()))
    return rows


def conversions_frame(spark: SparkSession, table: dict[str, Conversion]) -> DataFrame:
    """(loinc, unit, multiplier, offset): joined to long-format values (a broadcast join)."""
    return spark.createDataFrame(conversion_rows(table), CONVERSION_SCHEMA)
