"""Every rule of the ruleset failing on purpose, and passing on clean data (one cuallee pass each)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from dxops_etl.dq import DQContext, RulesetError, evaluate, parse_ruleset
from dxops_etl.pipeline import default_ruleset

RUN_TIME = dt.datetime(2025, 3, 20, tzinfo=dt.UTC)
SCHEMA = (
    "record_id string, patient_id string, encounter_date date, label string, ingested_at timestamp, "
    "age_years double, `2345-7` double, `8867-4` double, `dev_8867-4_mean` double"
)
FRESH = dt.datetime(2025, 3, 19)
STALE = dt.datetime(2024, 1, 1)


def good_rows() -> list[tuple[Any, ...]]:
    day = dt.date(2025, 3, 1)
    labels = ["ICD10:E11.9", "ORPHA:558", "OMIM:154700"]
    return [(f"r{i}", f"p{i}", day, labels[i % 3], FRESH, 40.0, 95.0, 70.0, 72.0) for i in range(12)]


def bad_rows() -> list[tuple[Any, ...]]:
    day = dt.date(2025, 3, 1)
    return [
        ("r1", None, None, "ICD10:E11.9", STALE, 140.0, 95.0, 70.0, 72.0),  # patient, date, age
        ("r1", "p2", day, "E11.9", STALE, 40.0, 9000.0, 400.0, 500.0),  # duplicate id, bad code, lab, vitals
        (None, "p3", day, "ICD10:E11.9", STALE, 40.0, 95.0, 70.0, 72.0),  # no record id
        ("r4", "p4", day, "ICD10:E11.9", STALE, 40.0, 95.0, 70.0, 72.0),
    ]


def test_every_rule_passes_on_clean_data(spark: Any) -> None:
    orphans = spark.createDataFrame([], "patient_id string, readings long")
    context = DQContext(
        RUN_TIME,
        previous_row_count=12,
        known_labels=["ICD10:E11.9", "ORPHA:558", "OMIM:154700"],
        orphan_device_patients=orphans,
        device_patients=3,
    )
    outcome = evaluate(spark.createDataFrame(good_rows(), SCHEMA), default_ruleset(), context)
    assert outcome.report.status == "pass", [r.id for r in outcome.report.failed]
    assert outcome.failing_rows is None
    assert {r.status for r in outcome.report.rules} == {"pass"}
    json.dumps(outcome.report.to_dict())  # JSON-serialisable


def test_every_rule_fails_on_purpose(spark: Any) -> None:
    orphans = spark.createDataFrame([("p9", 5)], "patient_id string, readings long")
    context = DQContext(
        RUN_TIME, previous_row_count=100, known_labels=["ORPHA:558"], orphan_device_patients=orphans, device_patients=2
    )
    outcome = evaluate(spark.createDataFrame(bad_rows(), SCHEMA), default_ruleset(), context)
    report = outcome.report
    status = {r.id: r.status for r in report.rules}
    expected_failures = {
        "record_id_complete",
        "patient_id_complete",
        "encounter_date_complete",
        "record_id_unique",
        "age_range",
        "labs_plausible:2345-7",
        "vitals_plausible:8867-4",
        "vitals_plausible:dev_8867-4_mean",
        "label_code",
        "label_known",
        "device_patients_have_records",
        "label_balance:labelled_rows",
        "fresh_data",
        "row_count_change:drop",
    }
    assert {k for k, v in status.items() if v == "fail"} == expected_failures
    assert status["row_count_change:growth"] == "pass"
    assert report.status == "fail"
    # every rule of the ruleset is represented by at least one failing result
    assert {r.rule for r in report.failed} == {r.id for r in default_ruleset().rules}
    # (max_class_fraction: test_one_dominant_class_fails_label_balance; growth: test_row_count_growth_fails)
    by_id = {r.id: r for r in report.rules}
    assert by_id["age_range"].failing_rows == 1
    assert by_id["patient_id_complete"].observed == pytest.approx(0.75)
    assert by_id["row_count_change:drop"].observed == pytest.approx(-0.96)
    assert by_id["device_patients_have_records"].observed == pytest.approx(0.5)
    assert by_id["fresh_data"].observed == pytest.approx(444, abs=1)
    assert outcome.failing_rows is not None
    failing = {(r["dq_rule"], r["record_id"]) for r in outcome.failing_rows.collect()}
    assert ("age_range", "r1") in failing
    assert ("labs_plausible:2345-7", "r1") in failing
    assert {("record_id_unique", "r1")} <= failing
    assert outcome.orphans is not None
    assert json.loads(json.dumps(report.to_dict()))["failed_rules"]


def _only(rule_id: str) -> Any:
    ruleset = default_ruleset()
    return type(ruleset)(ruleset.name, ruleset.version, tuple(r for r in ruleset.rules if r.id == rule_id))


def test_one_dominant_class_fails_label_balance(spark: Any) -> None:
    rows = [(*row[:3], "ICD10:E11.9", *row[4:]) for row in good_rows()]
    outcome = evaluate(spark.createDataFrame(rows, SCHEMA), _only("label_balance"), DQContext(RUN_TIME))
    by_id = {r.id: r for r in outcome.report.rules}
    assert by_id["label_balance:max_class_fraction"].status == "fail"
    assert by_id["label_balance:max_class_fraction"].observed == 1.0
    assert by_id["label_balance:labelled_rows"].status == "pass"


def test_row_count_growth_fails(spark: Any) -> None:
    context = DQContext(RUN_TIME, previous_row_count=1)
    outcome = evaluate(spark.createDataFrame(good_rows(), SCHEMA), _only("row_count_change"), context)
    assert {r.id: r.status for r in outcome.report.rules} == {
        "row_count_change:drop": "pass",
        "row_count_change:growth": "fail",
    }


def test_optional_rules_are_skipped_without_their_inputs(spark: Any) -> None:
    outcome = evaluate(spark.createDataFrame(good_rows(), SCHEMA), default_ruleset(), DQContext(RUN_TIME))
    skipped = {r.id for r in outcome.report.rules if r.status == "skipped"}
    assert skipped == {"label_known", "row_count_change:drop", "row_count_change:growth"}
    assert outcome.report.status == "pass"


def test_warning_level_failures_do_not_fail_the_dataset(spark: Any) -> None:
    ruleset = parse_ruleset(
        {"rules": [{"id": "old", "type": "freshness", "column": "ingested_at", "max_age_days": 1, "level": "warning"}]}
    )
    outcome = evaluate(spark.createDataFrame(bad_rows(), SCHEMA), ruleset, DQContext(RUN_TIME))
    assert [(r.id, r.status) for r in outcome.report.rules] == [("old", "fail")]
    assert outcome.report.status == "pass"


@pytest.mark.parametrize(
    "rule",
    [
        {"id": "x", "type": "nonsense"},
        {"id": "x", "type": "range"},
        {"id": "x", "type": "completeness", "column": "a", "level": "fatal"},
    ],
)
def test_invalid_rules_are_refused(rule: dict[str, Any]) -> None:
    with pytest.raises(RulesetError):
        parse_ruleset({"rules": [rule]})
