"""Generated patients: deterministic, valid for the API, faithful to the annotations, imbalanced, streaming."""

from __future__ import annotations

import json
import tracemalloc
from collections import Counter
from functools import cache

import pytest

from cohorts.catalog import Catalog, build_catalog
from cohorts.patients import CohortConfig, CohortGenerator, Patient
from dxops.schemas import ClinicalRecord
from dxops.schemas.device import DevicePublication


@cache
def catalog() -> Catalog:
    return build_catalog()


@cache
def cohort(records: int = 3000, seed: int = 7) -> tuple[Patient, ...]:
    return tuple(CohortGenerator(CohortConfig(records=records, seed=seed), catalog()))


def test_same_seed_same_records_and_order_does_not_matter() -> None:
    generator = CohortGenerator(CohortConfig(records=400, seed=7), catalog())
    first = [json.dumps(p.record) for p in generator]
    assert first == [json.dumps(p.record) for p in CohortGenerator(CohortConfig(records=400, seed=7), catalog())]
    assert [json.dumps(generator.patient(i).record) for i in reversed(range(400))] == first[::-1]
    other = [json.dumps(p.record) for p in CohortGenerator(CohortConfig(records=400, seed=8), catalog())]
    assert sum(a != b for a, b in zip(first, other, strict=True)) > 390


def test_every_record_and_device_message_is_valid_for_the_api() -> None:
    devices = 0
    for patient in cohort():
        record = ClinicalRecord.model_validate(patient.record)
        assert record.diagnosis is not None and record.diagnosis.code == patient.label
        if patient.device is not None:
            devices += 1
            assert "patient_id" not in json.dumps(patient.device.messages)
            for message in patient.device.messages:
                DevicePublication.model_validate(message)
    assert devices > 50


def test_true_phenotype_frequencies_match_the_annotations() -> None:
    """Before incompleteness, each term appears with its annotation frequency: within 4 binomial SDs."""
    cat = build_catalog(common=["ICD10:J44.9"], rare=["ORPHA:558"], rare_count=0)
    generator = CohortGenerator(CohortConfig(records=4000, seed=3, rare_share=0.5), cat)
    present: dict[str, Counter[str]] = {"ICD10:J44.9": Counter(), "ORPHA:558": Counter()}
    observed: dict[str, Counter[str]] = {"ICD10:J44.9": Counter(), "ORPHA:558": Counter()}
    cases: Counter[str] = Counter()
    for patient in generator:
        cases[patient.label] += 1
        present[patient.label].update(patient.true_terms)
        observed[patient.label].update(p["hpo_id"] for p in patient.record["phenotypes"] if p["status"] == "observed")
    for code, counts in present.items():
        n = cases[code]
        assert n > 1500
        report = generator.report_probability(code)
        for term, frequency in cat.by_code(code).phenotypes:
            sd = (frequency * (1 - frequency) / n) ** 0.5
            assert abs(counts[term] / n - frequency) <= 4 * sd + 1e-9, (code, term)
            # After incompleteness: recorded with probability report (plus the keep-one rule and false positives).
            assert observed[code][term] / n >= frequency * report - 4 * sd - 0.01, (code, term)
    # Marfan syndrome has far more annotated terms than a case report lists: about 7 are recorded.
    mean_observed = sum(observed["ORPHA:558"].values()) / cases["ORPHA:558"]
    assert generator.report_probability("ORPHA:558") < 0.5
    assert abs(mean_observed - 7.0) < 1.0, mean_observed


def test_realistic_imbalance() -> None:
    patients = cohort()
    kinds = Counter(p.kind for p in patients)
    assert 0.03 < kinds["rare"] / len(patients) < 0.08
    labels = Counter(p.label for p in patients)
    rare_codes = [d.code for d in catalog().diseases if d.kind == "rare"]
    few = sum(1 for code in rare_codes if labels[code] <= 5)
    assert few / len(rare_codes) > 0.8  # most rare diseases have 0 to 5 cases
    assert labels.most_common(1)[0][0].startswith("ICD10:")


def test_demographics_follow_onset() -> None:
    cat = build_catalog(common=[], rare=["ORPHA:558", "ORPHA:79430"])  # Marfan; a neonatal-onset disorder
    ages = {d.code: d.onset for d in cat.diseases}
    assert ages["ORPHA:79430"]  # onset classes from the Orphanet table
    for patient in CohortGenerator(CohortConfig(records=300, seed=1), cat):
        for phenotype in patient.record["phenotypes"]:
            if "onset_age_years" in phenotype:
                assert phenotype["onset_age_years"] <= patient.record["age_years"] + 0.05


def test_labs_are_noisy_and_sometimes_missing() -> None:
    patients = cohort()
    glucose = [lab["value"] for p in patients for lab in p.record["labs"] if lab["loinc"] == "2345-7"]
    assert 0.55 < len(glucose) / len(patients) < 0.85
    assert len(set(glucose)) > 50
    diabetics = [
        lab["value"]
        for p in patients
        if p.label == "ICD10:E11.9"
        for lab in p.record["labs"]
        if lab["loinc"] == "4548-4"
    ]
    assert diabetics and sum(diabetics) / len(diabetics) > 7.0


def test_streaming_memory_does_not_grow_with_the_number_of_records() -> None:
    generator = CohortGenerator(CohortConfig(records=10_000, seed=5, monitored_rate=0.0), catalog())

    def peak(count: int) -> int:
        tracemalloc.start()
        for _ in generator.stream(0, count):
            pass
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, large = peak(1_000), peak(10_000)
    assert large < 2_000_000
    assert large < small * 1.5 + 200_000


@pytest.mark.parametrize("field", ["rare_share", "lab_missing_rate"])
def test_config_rejects_bad_rates(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        CohortConfig(**{field: 1.5})  # type: ignore[arg-type]
