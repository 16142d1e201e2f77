"""Malformed records fail validation as announced; drift scenarios change exactly what they claim."""

from __future__ import annotations

import copy
import datetime as dt
from collections import Counter
from functools import cache
from typing import Any

import pytest
from pydantic import ValidationError

from cohorts.catalog import Catalog, build_catalog
from cohorts.drift import SCENARIOS, Scenario
from cohorts.malformed import DEFECTS, damage, malformed_choice
from cohorts.patients import CohortConfig, CohortGenerator, Patient, record_id
from dxops.schemas import ClinicalRecord

RECORDS = 1500


@cache
def catalog() -> Catalog:
    return build_catalog(rare_count=50)


@cache
def cohort(name: str) -> tuple[Patient, ...]:
    config = CohortConfig(records=RECORDS, seed=11, scenario=SCENARIOS[name], monitored_rate=0.5)
    return tuple(CohortGenerator(config, catalog()))


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_every_malformed_record_fails_with_the_expected_reason(defect: str) -> None:
    spec = DEFECTS[defect]
    for patient in cohort("baseline")[1:40]:
        broken = damage(patient.record, defect, 11, patient.index)
        if defect == "duplicate":
            ClinicalRecord.model_validate(broken)  # valid: caught downstream by dedup on record_id
            assert broken["record_id"] == record_id(11, patient.index - 1)
            continue
        with pytest.raises(ValidationError) as caught:
            ClinicalRecord.model_validate(broken)
        errors = {(".".join(str(p) for p in e["loc"]), e["type"]) for e in caught.value.errors()}
        assert (spec.loc, spec.type) in errors, errors


def test_malformed_choice_is_deterministic_and_monotonic_in_rate() -> None:
    low = [malformed_choice(3, i, 0.05) for i in range(2000)]
    high = [malformed_choice(3, i, 0.2) for i in range(2000)]
    assert low == [malformed_choice(3, i, 0.05) for i in range(2000)]
    assert all(h == d for d, h in zip(low, high, strict=True) if d is not None)
    assert 40 < sum(d is not None for d in low) < 170
    assert len(Counter(d for d in high if d)) == len(DEFECTS)


def _without(record: dict[str, Any], fields: set[str]) -> dict[str, Any]:
    """The record minus the fields a scenario may change (dotted, list items as [])."""
    stripped = copy.deepcopy(record)
    for name in fields:
        if name.startswith("<"):
            continue
        head, _, tail = name.partition("[].")
        if not tail:
            stripped.pop(head, None)
        else:
            for item in stripped.get(head, []):
                item.pop(tail, None)
    return stripped


@pytest.mark.parametrize("name", sorted(set(SCENARIOS) - {"baseline"}))
def test_scenario_changes_only_what_it_claims(name: str) -> None:
    scenario: Scenario = SCENARIOS[name]
    base, drifted = cohort("baseline"), cohort(name)
    changed = 0
    for before, after in zip(base, drifted, strict=True):
        if scenario.injected and after.label in scenario.injected and before.label != after.label:
            changed += 1
            continue
        fields = set(scenario.changed_fields)
        assert _without(after.record, fields) == _without(before.record, fields)
        changed += after.record != before.record
        changed += (after.device and after.device.messages) != (before.device and before.device.messages)
        if not scenario.device_drift:
            assert (after.device is None) == (before.device is None)
            if after.device and before.device:
                assert after.device.messages == before.device.messages or scenario.site or scenario.age_shift_years
    assert changed > 0, "the scenario changed nothing"


def test_lab_calibration_offset_is_exact() -> None:
    multiplier, offset = SCENARIOS["lab-calibration"].lab_calibration["2160-0"]
    pairs = 0
    for before, after in zip(cohort("baseline"), cohort("lab-calibration"), strict=True):
        old = {lab["loinc"]: lab["value"] for lab in before.record["labs"]}
        new = {lab["loinc"]: lab["value"] for lab in after.record["labs"]}
        assert old.keys() == new.keys()
        for loinc, value in new.items():
            if loinc == "2160-0":
                pairs += 1
                assert value == pytest.approx(old[loinc] * multiplier + offset, abs=0.011 * multiplier)
            else:
                assert value == old[loinc]
    assert pairs > 500


def test_prior_shift_only_adds_cases_of_the_outbreak_disease() -> None:
    ((code, share),) = SCENARIOS["outbreak"].injected.items()
    base, outbreak = cohort("baseline"), cohort("outbreak")
    moved = [a for b, a in zip(base, outbreak, strict=True) if a.label != b.label]
    assert all(a.label == code for a in moved)
    assert abs(len(moved) / RECORDS - share) < 0.05
    absent = cohort("new-disease")
    assert not any(p.label == "ICD10:A69.2" for p in base)
    assert any(p.label == "ICD10:A69.2" for p in absent)


def test_new_site_shifts_population() -> None:
    base, site = cohort("baseline"), cohort("new-site")
    assert {p.record["source"] for p in site} == {"site-north"}
    common = [(b, a) for b, a in zip(base, site, strict=True) if a.kind == "common"]
    shift = sum(a.record["age_years"] - b.record["age_years"] for b, a in common) / len(common)
    assert 6 < shift < 9
    women = sum(a.record["sex"] == "female" for _, a in common) - sum(b.record["sex"] == "female" for b, _ in common)
    assert women > 0.05 * len(common)


def test_new_presentation_changes_only_that_disease() -> None:
    ((code, terms),) = SCENARIOS["new-presentation"].presentation.items()
    for before, after in zip(cohort("baseline"), cohort("new-presentation"), strict=True):
        if before.label != code:
            assert before.record == after.record
    cases = [p for p in cohort("new-presentation") if p.label == code]
    assert cases
    for term in terms:
        assert any(term in p.true_terms for p in cases)


def test_sensor_drift_shifts_device_readings_only() -> None:
    offset, per_day = SCENARIOS["sensor-drift"].device_drift["spo2"]
    compared = 0
    for before, after in zip(cohort("baseline"), cohort("sensor-drift"), strict=True):
        assert before.record == after.record
        if before.device is None or after.device is None:
            assert before.device is after.device
            continue
        start = dt.datetime.fromisoformat(before.record["encounter_date"] + "T00:00:00+00:00")
        for old, new in zip(before.device.messages, after.device.messages, strict=True):
            for r_old, r_new in zip(old["readings"], new["readings"], strict=True):
                days = (dt.datetime.fromisoformat(r_old["timestamp"]) - start).total_seconds() / 86400
                for m_old, m_new in zip(r_old["measurements"], r_new["measurements"], strict=True):
                    if m_old["name"] == "spo2":
                        expected = min(max(m_old["value"] + offset + per_day * days, 50), 100)
                        assert abs(m_new["value"] - expected) <= 0.5 + 1e-9
                        compared += 1
                    else:
                        assert m_new == m_old
    assert compared > 100
