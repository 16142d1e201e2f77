"""The ETL transforms on tiny DataFrames, in the shared local Spark session."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from dxops_etl import features, phenotypes
from dxops_etl.curated import CuratedOptions, build_curated
from dxops_etl.curated_schema import RESERVED_COLUMNS
from dxops_etl.dedup import deduplicate_readings, deduplicate_records
from dxops_etl.read import read_clinical, read_device
from dxops_etl.units import LABS, VITALS, convert
from pyspark.sql import DataFrame

from tests.glue.helpers import PATIENT_B, reading, record, write_ndjson
from tests.toy_ontology import PARENTS


def clinical(spark: Any, tmp_path: Path, lines: list[Any]) -> Any:
    write_ndjson(tmp_path / "clinical" / "source=site-a" / "ingest_date=2025-03-11", "b1.ndjson", lines)
    return read_clinical(spark, str(tmp_path / "clinical"))


def by_id(frame: DataFrame, key: str = "record_id") -> dict[str, dict[str, Any]]:
    return {row[key]: row.asDict() for row in frame.collect()}


def test_read_quarantines_corrupt_and_incomplete_lines_with_a_reason(spark: Any, tmp_path: Path) -> None:
    lines = [record("r1"), "{not json", record("r2", age_years="old"), record("r3", patient_pseudonym=None)]
    result = clinical(spark, tmp_path, lines)
    assert sorted(r["record_id"] for r in result.valid.collect()) == ["r1"]
    reasons = sorted(r["reason"] for r in result.quarantine.collect())
    assert reasons == ["malformed", "malformed", "missing:patient_pseudonym"]
    assert all(r["line"] and r["source_file"].endswith("b1.ndjson") for r in result.quarantine.collect())


def test_absent_device_folder_reads_as_empty(spark: Any, tmp_path: Path) -> None:
    result = read_device(spark, str(tmp_path / "nothing-here"))
    assert result.valid.count() == 0
    assert result.quarantine.count() == 0


def test_dedup_keeps_latest_ingestion_and_breaks_ties_deterministically(spark: Any, tmp_path: Path) -> None:
    lines = [
        record("r1", age_years=40.0, ingested_at="2025-03-11T08:00:00Z"),
        record("r1", age_years=41.0, ingested_at="2025-03-12T08:00:00Z"),  # latest: kept
        record("r2", age_years=50.0),
        record("r2", age_years=51.0),  # same instant: tie broken by content hash
        record("r3"),
    ]
    first = deduplicate_records(clinical(spark, tmp_path / "a", lines).valid)
    second = deduplicate_records(clinical(spark, tmp_path / "b", list(reversed(lines))).valid)
    kept = by_id(first.kept)
    assert kept["r1"]["age_years"] == 41.0
    assert first.duplicates.count() == 2
    assert kept["r2"]["age_years"] == by_id(second.kept)["r2"]["age_years"]


def test_readings_deduplicated_by_reading_id(spark: Any, tmp_path: Path) -> None:
    hr = [{"name": "heart_rate", "value": 70.0, "unit": "/min"}]
    lines = [reading("d1", "2025-03-10T10:00:00Z", hr), reading("d1", "2025-03-10T10:00:00Z", hr)]
    write_ndjson(tmp_path / "device" / "source=site-a", "x.ndjson", lines)
    result = deduplicate_readings(read_device(spark, str(tmp_path / "device")).valid)
    assert (result.kept.count(), result.duplicates.count()) == (1, 1)


def test_plain_conversions_of_the_table() -> None:
    assert convert(5.5, "2345-7", "mmol/L") == pytest.approx(99.09, abs=0.01)
    assert convert(88.42, "2160-0", "umol/L") == pytest.approx(1.0)
    assert convert(135.0, "718-7", "g/L") == pytest.approx(13.5)
    assert convert(98.6, "8310-5", "[degF]") == pytest.approx(37.0)
    assert convert(154.0, "29463-7", "[lb_av]") == pytest.approx(69.85, abs=0.01)
    assert convert(1.0, "2345-7", "g/L") is None  # unknown unit: never guessed
    assert convert(1.0, "9999-9", "mg/dL") is None
    for conversion in (*LABS.values(), *VITALS.values()):
        assert conversion.plausible[0] < conversion.plausible[1]


def test_measurements_are_normalised_and_unknown_units_become_missing(spark: Any, tmp_path: Path) -> None:
    labs = [
        {"loinc": "2345-7", "value": 5.5, "unit": "mmol/L"},
        {"loinc": "2160-0", "value": 1.0, "unit": "furlong"},
        {"loinc": "1234-5", "value": 1.0, "unit": "mg/dL"},
    ]
    vitals = [{"name": "body_temperature", "value": 98.6, "unit": "[degF]"}]
    records = clinical(spark, tmp_path, [record("r1", labs=labs, vitals=vitals)]).valid
    long = features.measurements_long(records)
    statuses = sorted(r["status"] for r in long.collect())
    assert statuses == ["ok", "ok", "unknown_loinc", "unknown_unit"]
    wide = by_id(features.measurement_features(long))["r1"]
    assert wide["2345-7"] == pytest.approx(99.09, abs=0.01)
    assert wide["8310-5"] == pytest.approx(37.0)
    assert wide["2160-0"] is None
    assert "1234-5" not in wide


def test_labels_only_for_confirmed_diagnoses(spark: Any, tmp_path: Path) -> None:
    lines = [
        record("r1"),
        record("r2", diagnosis={"code": "ORPHA:558", "status": "suspected"}),
        record("r3", diagnosis=None),
    ]
    labels = by_id(features.labels(clinical(spark, tmp_path, lines).valid))
    assert (labels["r1"]["label"], labels["r1"]["label_status"]) == ("ICD10:E11.9", "confirmed")
    assert (labels["r2"]["label"], labels["r2"]["label_status"]) == (None, "suspected")
    assert (labels["r3"]["label"], labels["r3"]["label_status"]) == (None, "none")


def test_observed_terms_propagate_to_ancestors_and_excluded_stay(spark: Any, tmp_path: Path) -> None:
    lines = [
        record("r1", phenotypes=[{"hpo_id": "HP:0007359"}, {"hpo_id": "HP:0000478", "status": "excluded"}]),
        # excluded seizure but observed focal seizure: observed wins on HP:0001250
        record("r2", phenotypes=[{"hpo_id": "HP:0007359"}, {"hpo_id": "HP:0001250", "status": "excluded"}]),
    ]
    records = clinical(spark, tmp_path, lines).valid
    expanded = phenotypes.expand(phenotypes.phenotypes_long(records), PARENTS)
    rows = {(r["record_id"], r["hpo_id"]): r["value"] for r in expanded.collect()}
    assert rows == {
        ("r1", "HP:0007359"): 1,
        ("r1", "HP:0001250"): 1,
        ("r1", "HP:0000707"): 1,
        ("r1", "HP:0000478"): -1,
        ("r2", "HP:0007359"): 1,
        ("r2", "HP:0001250"): 1,
        ("r2", "HP:0000707"): 1,
    }  # no HP:0000118 / HP:0000001: sub-ontology roots are never columns
    assert phenotypes.term_vocabulary(expanded, 2) == ["HP:0000707", "HP:0001250", "HP:0007359"]


def test_device_window_aggregates(spark: Any, tmp_path: Path) -> None:
    def hr(value: float) -> list[dict[str, Any]]:
        return [{"name": "heart_rate", "value": value, "unit": "/min"}]

    lines = [
        reading("d1", "2025-03-10T01:00:00Z", hr(60.0)),
        reading("d1", "2025-03-10T23:00:00Z", hr(80.0)),  # the last one in the window
        reading("d1", "2025-03-10T12:00:00Z", [{"name": "body_weight", "value": 220.0, "unit": "[lb_av]"}]),
        reading("d1", "2025-03-09T23:00:00Z", hr(200.0)),  # before the 24 h window
        reading("d2", "2025-03-10T10:00:00Z", hr(90.0), patient_pseudonym=PATIENT_B),  # another patient
    ]
    write_ndjson(tmp_path / "device", "x.ndjson", lines)
    readings = features.readings_long(read_device(spark, str(tmp_path / "device")).valid)
    encounters = spark.createDataFrame(
        [("r1", "a" * 64, dt.date(2025, 3, 10))], "record_id string, patient_id string, encounter_date date"
    )
    row = by_id(features.device_features(encounters, readings, 24))["r1"]
    assert row["dev_readings"] == 3
    assert (row["dev_8867-4_mean"], row["dev_8867-4_min"], row["dev_8867-4_max"]) == (70.0, 60.0, 80.0)
    assert row["dev_8867-4_last"] == 80.0
    assert row["dev_29463-7_last"] == pytest.approx(99.79, abs=0.01)
    wider = by_id(features.device_features(encounters, readings, 48))["r1"]
    assert wider["dev_8867-4_max"] == 200.0


def test_curated_table_columns_order_and_missing_values(spark: Any, tmp_path: Path) -> None:
    lines = [
        record("r1", phenotypes=[{"hpo_id": "HP:0001250"}], history=["ICD10:I10"], sex=None, age_years=None),
        record("r2", phenotypes=[{"hpo_id": "HP:0001250"}], history=["ICD10:I10"], diagnosis=None),
        record("r3", labs=[{"loinc": "2345-7", "value": 100.0, "unit": "mg/dL"}]),
    ]
    records = clinical(spark, tmp_path, lines).valid
    empty = read_device(spark, str(tmp_path / "none")).valid
    build = build_curated(records, empty, PARENTS, CuratedOptions(min_term_records=2, history_min_records=2))
    columns = build.table.columns
    assert tuple(columns[: len(RESERVED_COLUMNS)]) == RESERVED_COLUMNS
    assert build.columns["phenotypes"] == ["HP:0000707", "HP:0001250"]
    assert build.columns["history"] == ["hx_ICD10:I10"]
    rows = by_id(build.table)
    assert (rows["r1"]["sex"], rows["r1"]["age_years"]) == ("unknown", None)
    assert (rows["r1"]["HP:0001250"], rows["r3"]["HP:0001250"]) == (1, 0)
    assert (rows["r2"]["hx_ICD10:I10"], rows["r3"]["hx_ICD10:I10"]) == (1, 0)
    assert (rows["r3"]["2345-7"], rows["r1"]["2345-7"]) == (100.0, None)
    assert (rows["r1"]["dev_readings"], rows["r1"]["dev_8867-4_mean"]) == (0, None)
    assert rows["r2"]["label"] is None
    vocabulary = build_curated(records, empty, PARENTS, CuratedOptions(phenotype_vocabulary=["HP:0000478"]))
    assert vocabulary.columns["phenotypes"] == ["HP:0000478"]
