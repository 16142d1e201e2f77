"""Every drift scenario of the simulator is detected within the documented window
(docs/monitoring.md, "Drift statistics"); the baseline's records and its curated table give the
same feature values (one code path)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("paho", reason="the cohort simulator's devices need paho-mqtt (dev environment only)")

from ml.drift import DriftConfig, dataset_drift
from ml.drift_profile import Baseline, build_profile, comparisons, records_window, table_window
from ml.table import LABEL, column_roles, labelled
from tests.unit.ml.drift_cohorts import curated_table, endpoint_record, label_predictor, patients

# Scenario -> window (samples) within which it is detected (docs/monitoring.md).
DETECTED_WITHIN = {
    "lab-calibration": 100,
    "new-site": 100,
    "outbreak": 100,
    "new-disease": 100,
    "sensor-drift": 1000,
    "new-presentation": 10000,
}
# Features: a 5,000-row sample of it; presentation: all of it (influenza is 0.5 % of records).
BASELINE_ROWS = 20000


@pytest.fixture(scope="module")
def baseline() -> dict[str, Any]:
    table = curated_table(patients("baseline", BASELINE_ROWS, 1))
    roles = column_roles(table)
    rows = labelled(table)
    predict = label_predictor(rows[LABEL].astype(str).tolist())
    profile = build_profile(rows, roles, predict=predict, expanded=False, presentation_rows=len(rows))
    return {"table": table, "roles": roles, "profile": Baseline(profile)}


def verdict(baseline: dict[str, Any], name: str, samples: int, seed: int = 2) -> dict[str, Any]:
    profile: Baseline = baseline["profile"]
    chosen = patients(name, samples, seed)
    classes = [p.label for p in chosen]
    if name == "sensor-drift":  # device aggregates only reach the monitor in a curated table
        current = table_window(curated_table(chosen, name), baseline["roles"], profile.specs, classes)
    else:
        records = [endpoint_record(p) for p in chosen]
        current = records_window(records, baseline["roles"], profile.specs, None, classes)
    reference = profile.reference
    presentation = (profile.presentation or {}, current.presentation)
    pairs = comparisons(reference, current, profile.specs)
    return dataset_drift(pairs, [], reference.rows, current.rows, DriftConfig(), presentation=presentation)


def test_records_and_the_curated_table_give_the_same_features(baseline: dict[str, Any]) -> None:
    chosen = patients("baseline", 300, 1)
    profile: Baseline = baseline["profile"]
    from_records = records_window([endpoint_record(p) for p in chosen], baseline["roles"], profile.specs, None)
    from_table = table_window(curated_table(chosen), baseline["roles"], profile.specs)
    assert from_records.numeric.keys() <= from_table.numeric.keys()
    for name, values in from_records.numeric.items():
        assert np.array_equal(values, from_table.numeric[name], equal_nan=True), name
    for name, counts in from_records.categorical.items():
        assert counts == from_table.categorical[name], name
    assert from_records.phenotypes == from_table.phenotypes
    assert not any(name.startswith("dev_") for name in from_records.numeric)  # table-only features


@pytest.mark.parametrize("samples", [100, 500, 2000])
def test_the_baseline_does_not_drift(baseline: dict[str, Any], samples: int) -> None:
    result = verdict(baseline, "baseline", samples)
    assert result["status"] == "ok", (result["drifted_features"], result["presentation"]["drifted"])
    assert samples < 500 or result["presentation"]["tested_classes"]  # the presentation was tested too


@pytest.mark.parametrize(("name", "samples"), sorted(DETECTED_WITHIN.items()))
def test_each_scenario_is_detected_within_its_documented_window(
    baseline: dict[str, Any], name: str, samples: int
) -> None:
    result = verdict(baseline, name, samples)
    assert result["status"] == "drift", result["drifted_features"]
    if name == "new-presentation":  # by the presentation of influenza, not by a feature
        drifted = {(row["class"], row["term"]) for row in result["presentation"]["drifted"]}
        assert ("ICD10:J11.1", "HP:0000458") in drifted, result["presentation"]["drifted"]
        assert result["presentation_drifted"] >= 1


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_a_new_presentation_is_detected_whatever_the_seed(baseline: dict[str, Any], seed: int) -> None:
    result = verdict(baseline, "new-presentation", DETECTED_WITHIN["new-presentation"], seed)
    assert result["presentation"]["drifted_any"], result["presentation"]


def test_the_profile_holds_no_identifier(baseline: dict[str, Any]) -> None:
    text = str(baseline["profile"].document)
    table = baseline["table"]
    assert not any(str(value) in text for value in table["record_id"].head(50))
    assert not any(str(value) in text for value in table["patient_id"].head(50))
