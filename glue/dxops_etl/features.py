"""Feature transforms: labels, measurements (labs and vitals), history codes and device windows.

Every function takes and returns Spark DataFrames keyed by record_id (or patient_id for readings);
curated.py joins them into the curated table. Missing values stay null (never imputed here: the
training code decides), see curated_schema.py for the per-column rule.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from dxops_etl.units import LABS, VITAL_LOINC, VITALS, conversions_frame

LAB_COLUMNS: tuple[str, ...] = tuple(sorted(LABS))
VITAL_COLUMNS: tuple[str, ...] = tuple(VITAL_LOINC.values())  # measurement-table order
DEVICE_STATS: tuple[str, ...] = ("mean", "min", "max", "last")
DEVICE_COUNT_COLUMN = "dev_readings"
HISTORY_PREFIX = "hx_"

# Values of the measurement status column (counted into run_summary.json).
OK, UNKNOWN_UNIT, UNKNOWN_LOINC, MISSING_VALUE = "ok", "unknown_unit", "unknown_loinc", "missing_value"


def device_column(loinc: str, stat: str) -> str:
    return f"dev_{loinc}_{stat}"


DEVICE_COLUMNS: tuple[str, ...] = (
    DEVICE_COUNT_COLUMN,
    *(device_column(loinc, stat) for loinc in VITAL_COLUMNS for stat in DEVICE_STATS),
)


def labels(records: DataFrame) -> DataFrame:
    """label = the diagnosis code when the diagnosis is confirmed, else null (unlabelled row).

    label_status: "confirmed", "suspected" (a diagnosis that is not confirmed: no label) or
    "none" (no diagnosis). Unlabelled rows are kept: they still carry features (semi-supervised
    use, drift monitoring); the training code filters on label IS NOT NULL.
    """
    status = F.coalesce(F.col("diagnosis.status"), F.lit("confirmed"))
    has_code = F.col("diagnosis.code").isNotNull()
    return records.select(
        "record_id",
        F.when(has_code & (status == "confirmed"), F.col("diagnosis.code")).alias("label"),
        F.when(~has_code, F.lit("none")).otherwise(status).alias("label_status"),
    )


def _normalised(long: DataFrame, spark: SparkSession) -> DataFrame:
    """Adds canonical ``value`` and ``status`` to (..., loinc, raw_value, unit) rows."""
    conversions = F.broadcast(conversions_frame(spark, {**LABS, **VITALS}))
    known = F.col("loinc").isin(*LABS, *VITALS)
    joined = long.join(conversions, on=["loinc", "unit"], how="left")
    status = (
        F.when(F.col("raw_value").isNull(), F.lit(MISSING_VALUE))
        .when(~known | F.col("loinc").isNull(), F.lit(UNKNOWN_LOINC))
        .when(F.col("multiplier").isNull(), F.lit(UNKNOWN_UNIT))
        .otherwise(F.lit(OK))
    )
    value = F.when(status == OK, F.col("raw_value") * F.col("multiplier") + F.col("offset"))
    return joined.withColumn("status", status).withColumn("value", value).drop("multiplier", "offset", "raw_value")


def _vital_loinc(name: Column) -> Column:
    mapping = F.create_map(*[F.lit(x) for pair in VITAL_LOINC.items() for x in pair])
    return mapping[name]


def measurements_long(records: DataFrame) -> DataFrame:
    """(record_id, kind, loinc, unit, value, status): one row per lab result or vital sign."""
    spark = records.sparkSession
    labs = records.select("record_id", F.explode("labs").alias("m")).select(
        "record_id",
        F.lit("lab").alias("kind"),
        F.col("m.loinc").alias("loinc"),
        F.col("m.unit").alias("unit"),
        F.col("m.value").alias("raw_value"),
    )
    vitals = records.select("record_id", F.explode("vitals").alias("m")).select(
        "record_id",
        F.lit("vital").alias("kind"),
        _vital_loinc(F.col("m.name")).alias("loinc"),
        F.col("m.unit").alias("unit"),
        F.col("m.value").alias("raw_value"),
    )
    return _normalised(labs.unionByName(vitals), spark)


def measurement_features(long: DataFrame) -> DataFrame:
    """record_id + one column per LOINC (labs then vitals), canonical unit; several values of the
    same LOINC in one record are averaged; not measured or unknown unit -> null."""
    columns: list[bool | float | int | str] = [*LAB_COLUMNS, *VITAL_COLUMNS]
    return (
        long.filter(F.col("status") == OK)
        .groupBy("record_id")
        .pivot("loinc", columns)
        .agg(F.avg("value"))
        .select("record_id", *[F.col(f"`{c}`").cast("double").alias(str(c)) for c in columns])
    )


def history_vocabulary(records: DataFrame, min_records: int) -> list[str]:
    """History codes present in at least ``min_records`` records (sorted)."""
    counted = (
        records.select("record_id", F.explode("history").alias("code"))
        .distinct()
        .groupBy("code")
        .count()
        .filter(F.col("count") >= min_records)
    )
    return sorted(row["code"] for row in counted.collect())


def history_features(records: DataFrame, vocabulary: Sequence[str]) -> DataFrame:
    """record_id + hx_<code> = 1 when the code is in the record's history, 0 otherwise."""
    present = set(vocabulary)
    codes = records.select("record_id", F.explode("history").alias("code")).filter(F.col("code").isin(*present))
    names = [f"{HISTORY_PREFIX}{code}" for code in vocabulary]
    if not vocabulary:
        return records.select("record_id").distinct()
    wide = codes.distinct().groupBy("record_id").pivot("code", list(vocabulary)).agg(F.lit(1))
    return wide.select(
        "record_id", *[F.col(f"`{code}`").cast("int").alias(name) for code, name in zip(vocabulary, names, strict=True)]
    )


def readings_long(readings: DataFrame) -> DataFrame:
    """(patient_id, timestamp, loinc, unit, value, status): one row per device measurement."""
    long = readings.select(
        F.col("patient_pseudonym").alias("patient_id"),
        "reading_id",
        "timestamp",
        F.explode("measurements").alias("m"),
    ).select(
        "patient_id",
        "reading_id",
        "timestamp",
        _vital_loinc(F.col("m.name")).alias("loinc"),
        F.col("m.unit").alias("unit"),
        F.col("m.value").alias("raw_value"),
    )
    return _normalised(long, readings.sparkSession)


def device_features(encounters: DataFrame, readings: DataFrame, window_hours: int) -> DataFrame:
    """record_id + dev_readings + dev_<loinc>_{mean,min,max,last} over the window before the encounter.

    ``encounters``: (record_id, patient_id, encounter_date); ``readings``: readings_long(). The
    window of a record ends at the end of its encounter day (00:00 UTC of the next day) and starts
    ``window_hours`` earlier: end - window < timestamp <= end. ``last`` is the value with the
    latest timestamp. Records with no reading in the window get dev_readings = 0 and null stats.
    """
    window_end = F.to_timestamp(F.date_add(F.col("encounter_date"), 1))
    windows = encounters.select(
        "record_id",
        "patient_id",
        window_end.alias("_end"),
        (window_end - F.expr(f"INTERVAL {int(window_hours)} HOURS")).alias("_start"),
    )
    usable = readings.filter(F.col("status") == OK).select("patient_id", "reading_id", "timestamp", "loinc", "value")
    inside = windows.join(usable, on="patient_id").filter(
        (F.col("timestamp") > F.col("_start")) & (F.col("timestamp") <= F.col("_end"))
    )
    aggregates = [F.countDistinct("reading_id").alias(DEVICE_COUNT_COLUMN)]
    for loinc in VITAL_COLUMNS:
        value = F.when(F.col("loinc") == loinc, F.col("value"))
        when = F.when(F.col("loinc") == loinc, F.col("timestamp"))
        aggregates += [
            F.avg(value).alias(device_column(loinc, "mean")),
            F.min(value).alias(device_column(loinc, "min")),
            F.max(value).alias(device_column(loinc, "max")),
            F.max_by(value, when).alias(device_column(loinc, "last")),
        ]
    return inside.groupBy("record_id").agg(*aggregates)


def orphan_device_patients(readings: DataFrame, records: DataFrame) -> DataFrame:
    """(patient_id, readings) for device patients that have no clinical record at all."""
    patients = records.select(F.col("patient_pseudonym").alias("patient_id")).distinct()
    return (
        readings.groupBy(F.col("patient_pseudonym").alias("patient_id"))
        .agg(F.count("*").alias("readings"))
        .join(patients, on="patient_id", how="left_anti")
    )
