"""Assembly of the curated table from the deduplicated records and readings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from dxops_etl import features, phenotypes
from dxops_etl.curated_schema import DEMOGRAPHIC_COLUMNS, RESERVED_COLUMNS, SEXES, column_groups


@dataclass(frozen=True)
class CuratedOptions:
    device_window_hours: int = 24
    min_term_records: int = 5  # phenotype columns: terms in at least this many records ...
    phenotype_vocabulary: Sequence[str] | None = None  # ... or exactly these terms
    history_min_records: int = 5


@dataclass(frozen=True)
class CuratedBuild:
    table: DataFrame
    columns: dict[str, list[str]]
    measurements: DataFrame  # measurements_long of the records (status counts)
    device_measurements: DataFrame  # readings_long of the readings (status counts)


def base_columns(records: DataFrame) -> DataFrame:
    sex = F.when(F.col("sex").isin(*SEXES), F.col("sex")).otherwise(F.lit("unknown"))
    return records.select(
        "record_id",
        F.col("patient_pseudonym").alias("patient_id"),
        "source",
        "encounter_date",
        "ingested_at",
        F.col("age_years").cast("double").alias("age_years"),
        sex.alias("sex"),
    )


def build_curated(
    records: DataFrame, readings: DataFrame, parents: Mapping[str, Sequence[str]], options: CuratedOptions
) -> CuratedBuild:
    """One row per (deduplicated) record with all feature groups, in curated_schema's order."""
    base = base_columns(records)
    measurements = features.measurements_long(records)
    device_long = features.readings_long(readings)

    expanded = phenotypes.expand(phenotypes.phenotypes_long(records), parents).cache()
    vocabulary = (
        sorted(set(options.phenotype_vocabulary))
        if options.phenotype_vocabulary is not None
        else phenotypes.term_vocabulary(expanded, options.min_term_records)
    )
    history = features.history_vocabulary(records, options.history_min_records)
    encounters = base.select("record_id", "patient_id", "encounter_date")

    parts = [
        features.labels(records),
        phenotypes.phenotype_features(expanded, vocabulary),
        features.measurement_features(measurements),
        features.device_features(encounters, device_long, options.device_window_hours),
        features.history_features(records, history),
    ]
    table = base
    for part in parts:
        table = table.join(part, on="record_id", how="left")
    history_columns = [f"{features.HISTORY_PREFIX}{code}" for code in history]
    zero_filled = {*vocabulary, features.DEVICE_COUNT_COLUMN, *history_columns}
    columns = column_groups(
        vocabulary, features.LAB_COLUMNS, features.VITAL_COLUMNS, features.DEVICE_COLUMNS, history_columns
    )
    ordered = [*RESERVED_COLUMNS, *DEMOGRAPHIC_COLUMNS, *vocabulary]
    ordered += [*features.LAB_COLUMNS, *features.VITAL_COLUMNS, *features.DEVICE_COLUMNS, *history_columns]
    # Names hold ':' and '.' (HP:0001250, hx_ICD10:E11.9): always quoted with backticks.
    table = table.select(
        *[
            F.coalesce(F.col(f"`{c}`"), F.lit(0)).cast("int").alias(c) if c in zero_filled else F.col(f"`{c}`")
            for c in ordered
        ]
    )
    return CuratedBuild(table, columns, measurements, device_long)
