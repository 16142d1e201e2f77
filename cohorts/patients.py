"""Synthetic patients: one encounter each, as a ClinicalRecord dict, with its ground truth.

Why it is built this way:
- Every patient has its own random streams, seeded by (seed, index, section), so patient i is
  the same whether generated alone, in a stream of a million or in another order, and a drift
  scenario that touches one section (labs, say) leaves the others bit-identical.
- Generation is a generator over indices: memory does not grow with the number of records.
- Phenotypes: each annotated term is present with its annotation frequency (the "true"
  manifestations); a clinician then records each present term with probability
  ``min(1, observed_mean / expected terms)``, so a case lists about ``observed_mean`` terms
  (real case reports list far fewer terms than the annotations), plus a few false-positive
  terms and explicitly excluded ones.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from cohorts.catalog import ONSET_AGES, Catalog, Disease, LabKind
from cohorts.drift import BASELINE, Scenario
from dxops.vocab.measurements import MEASUREMENTS

RECORD_PREFIX = "syn"
LAB_CV = 0.03  # analytical coefficient of variation of lab measurements
SIGNATURE_LAB_MISSING = 0.1  # tests ordered because of the disease are rarely missing
DIAGNOSTIC_DELAY_YEARS = 3.0  # mean delay from onset to the encounter of a rare disease
MAX_AGE = 100.0
NOISE_SLOTS = 3  # false-positive and excluded terms: up to 3 each, a fixed number of draws
VITAL_ORDER = (
    "heart_rate",
    "systolic_bp",
    "diastolic_bp",
    "body_temperature",
    "respiratory_rate",
    "spo2",
    "body_weight",
    "body_height",
)
VITAL_DECIMALS = {"body_temperature": 1, "body_weight": 1}
VITAL_UNITS = {
    "heart_rate": "/min",
    "systolic_bp": "mm[Hg]",
    "diastolic_bp": "mm[Hg]",
    "body_temperature": "Cel",
    "respiratory_rate": "/min",
    "spo2": "%",
    "body_weight": "kg",
    "body_height": "cm",
}


@dataclass(frozen=True)
class CohortConfig:
    """What to generate. Same config and catalog, same records."""

    records: int = 1000
    seed: int = 0
    source: str = "site-sim"
    rare_share: float = 0.05  # share of records with a rare disease
    observed_mean: float = 7.0  # observed true terms per case, about
    false_positive_mean: float = 0.5  # false-positive terms per case
    excluded_mean: float = 1.0  # excluded terms per case
    lab_missing_rate: float = 0.3  # routine labs not measured
    vital_missing_rate: float = 0.2
    monitored_rate: float = 0.3  # patients of "monitored" diseases who wear a device
    device_readings: int = 24
    device_interval_minutes: int = 60
    start_date: dt.date = dt.date(2024, 1, 1)
    days: int = 730  # encounter dates span start_date .. start_date + days
    scenario: Scenario = BASELINE

    def __post_init__(self) -> None:
        for name in ("rare_share", "lab_missing_rate", "vital_missing_rate", "monitored_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.records < 0 or self.days < 1:
            raise ValueError("records must be >= 0 and days >= 1")
        if not 0 <= self.false_positive_mean <= NOISE_SLOTS or not 0 <= self.excluded_mean <= NOISE_SLOTS:
            raise ValueError(f"false_positive_mean and excluded_mean must be between 0 and {NOISE_SLOTS}")
        if self.observed_mean <= 0:
            raise ValueError("observed_mean must be positive")


@dataclass(frozen=True)
class DeviceSeries:
    """A monitored patient's device: its id, its binding request and its published messages."""

    device_id: str
    binding: dict[str, str] = field(repr=False)  # body of PUT /devices/{id}/binding: holds patient_id
    messages: list[dict[str, Any]] = field(repr=False)  # DevicePublication documents


@dataclass(frozen=True)
class Patient:
    """One generated patient; ``record`` is the ClinicalRecord JSON document (with patient_id)."""

    index: int
    label: str
    kind: str
    record: dict[str, Any] = field(repr=False)
    true_terms: tuple[str, ...] = field(repr=False)  # manifestations before incompleteness
    device: DeviceSeries | None = None


def record_id(seed: int, index: int) -> str:
    return f"{RECORD_PREFIX}-{seed}-{index:08d}"


def patient_id(seed: int, index: int) -> str:
    return f"SYN-{seed}-{index:08d}"


def _rng(seed: int, index: int, section: str) -> random.Random:
    return random.Random(f"dxops-cohort:{seed}:{index}:{section}")


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def _round(value: float, decimals: int) -> float:
    return float(round(value, decimals))


class CohortGenerator:
    """Draws patients from a catalog under a config; ``patient(i)`` is pure in (config, i)."""

    def __init__(self, config: CohortConfig, catalog: Catalog) -> None:
        self.config = config
        self.catalog = catalog
        scenario = config.scenario
        self.diseases = tuple(self._presented(d) for d in catalog.diseases)
        self.injected = tuple((self._presented(catalog.by_code(c)), share) for c, share in scenario.injected.items())
        self._cumulative = self._class_cdf()
        self._injected_cdf = list(_accumulate(share for _, share in self.injected))
        # False positives and excluded terms come from the catalog's own profiles, before any
        # scenario: a drift then leaves the noise of unaffected records unchanged.
        self.term_pool = tuple(sorted({t for d in catalog.diseases for t, _ in d.phenotypes}))
        drawn = (*self.diseases, *(i for i, _ in self.injected))
        self.all_terms = tuple(sorted(set(self.term_pool) | {t for d in drawn for t, _ in d.phenotypes}))
        self._report_probability = {
            d.code: min(1.0, config.observed_mean / max(sum(f for _, f in d.phenotypes), 1e-9))
            for d in (*self.diseases, *(i for i, _ in self.injected))
        }
        self._common = tuple(d for d in self.diseases if d.kind == "common")

    def _presented(self, disease: Disease) -> Disease:
        changes = self.config.scenario.presentation.get(disease.code)
        if not changes:
            return disease
        terms = dict(disease.phenotypes)
        terms.update(changes)
        return disease.with_changes(phenotypes=tuple(terms.items()))

    def _class_cdf(self) -> list[float]:
        common = [d for d in self.diseases if d.kind == "common"]
        rare = [d for d in self.diseases if d.kind == "rare"]
        rare_share = self.config.rare_share if rare and common else (1.0 if rare else 0.0)
        common_total = sum(d.prevalence for d in common) or 1.0
        rare_total = sum(d.prevalence for d in rare) or 1.0
        weights = [
            (1 - rare_share) * d.prevalence / common_total
            if d.kind == "common"
            else rare_share * d.prevalence / rare_total
            for d in self.diseases
        ]
        return list(_accumulate(weights))

    def class_probabilities(self) -> dict[str, float]:
        """Expected share of each class (after injections), for the imbalance report and tests."""
        injected_total = sum(share for _, share in self.injected)
        previous = 0.0
        shares: dict[str, float] = {}
        for disease, cumulative in zip(self.diseases, self._cumulative, strict=True):
            shares[disease.code] = (cumulative - previous) / self._cumulative[-1] * (1 - injected_total)
            previous = cumulative
        for disease, share in self.injected:
            shares[disease.code] = shares.get(disease.code, 0.0) + share
        return shares

    def report_probability(self, code: str) -> float:
        return self._report_probability[code]

    # ---------------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Patient]:
        return self.stream()

    def stream(self, start: int = 0, stop: int | None = None) -> Iterator[Patient]:
        for index in range(start, self.config.records if stop is None else stop):
            yield self.patient(index)

    def choose(self, index: int) -> Disease:
        rng = _rng(self.config.seed, index, "class")
        inject, draw = rng.random(), rng.random()  # both drawn always: a prior shift moves only injected cases
        position = bisect.bisect_right(self._injected_cdf, inject)
        if position < len(self.injected):
            return self.injected[position][0]
        position = bisect.bisect_right(self._cumulative, draw * self._cumulative[-1])
        return self.diseases[min(position, len(self.diseases) - 1)]

    def patient(self, index: int) -> Patient:
        config, seed = self.config, self.config.seed
        disease = self.choose(index)
        sex, age, onset_age = self._demographics(disease, _rng(seed, index, "demographics"))
        true_terms, phenotypes = self._phenotypes(disease, onset_age, _rng(seed, index, "phenotypes"))
        phenotypes += self._noise(disease, {p["hpo_id"] for p in phenotypes}, _rng(seed, index, "noise"))
        encounter = config.start_date + dt.timedelta(days=_rng(seed, index, "encounter").randrange(config.days))
        record: dict[str, Any] = {
            "record_id": record_id(seed, index),
            "source": config.scenario.site or config.source,
            "patient_id": patient_id(seed, index),
            "encounter_date": encounter.isoformat(),
            "sex": sex,
            "age_years": _round(age, 1),
            "phenotypes": phenotypes,
            "history": self._history(disease, _rng(seed, index, "history")),
            "labs": self._labs(disease, _rng(seed, index, "labs")),
            "vitals": self._vitals(disease, sex, age, _rng(seed, index, "vitals")),
            "diagnosis": {"code": disease.code, "status": "confirmed"},
        }
        device = self._device(disease, index, record, _rng(seed, index, "device"))
        return Patient(index, disease.code, disease.kind, record, tuple(true_terms), device)

    # --- sections ------------------------------------------------------------------------------

    def _demographics(self, disease: Disease, rng: random.Random) -> tuple[str, float, float | None]:
        scenario = self.config.scenario
        sex_draw, unknown_draw = rng.random(), rng.random()
        if disease.kind == "common" and disease.age is not None:
            mean, sd, minimum = disease.age
            age = _clamp(rng.gauss(mean + scenario.age_shift_years, sd), minimum, MAX_AGE)
            onset_age: float | None = None
            female = _clamp(disease.female + scenario.female_shift, 0.0, 1.0)
        else:
            low, high = ONSET_AGES.get(rng.choice(disease.onset), ONSET_AGES["All ages"])
            onset_age = rng.uniform(low, high)
            age = min(onset_age + rng.expovariate(1 / DIAGNOSTIC_DELAY_YEARS), MAX_AGE)
            female = disease.female
        sex = "unknown" if unknown_draw < 0.01 else ("female" if sex_draw < female else "male")
        return sex, age, onset_age

    def _phenotypes(
        self, disease: Disease, onset_age: float | None, rng: random.Random
    ) -> tuple[list[str], list[dict[str, Any]]]:
        true_terms = [term for term, frequency in disease.phenotypes if rng.random() < frequency]
        report = self._report_probability[disease.code]
        observed = [term for term in true_terms if rng.random() < report]
        if not observed and true_terms:
            observed = [rng.choice(true_terms)]  # a case is recorded because something was seen
        phenotypes: list[dict[str, Any]] = []
        for term in observed:
            entry: dict[str, Any] = {"hpo_id": term, "status": "observed"}
            if rng.random() < 0.5 and onset_age is not None:
                entry["onset_age_years"] = _round(onset_age, 2)
            phenotypes.append(entry)
        return true_terms, phenotypes

    def _noise(self, disease: Disease, recorded: set[str], rng: random.Random) -> list[dict[str, Any]]:
        """False-positive observed terms and excluded terms, a fixed number of draws."""
        annotated = {term for term, _ in disease.phenotypes}
        noise: list[dict[str, Any]] = []
        used = set(recorded)
        for status, mean in (("observed", self.config.false_positive_mean), ("excluded", self.config.excluded_mean)):
            for _ in range(NOISE_SLOTS):
                present, pick, from_not = rng.random(), rng.choice(self.term_pool), rng.random()
                if status == "excluded" and disease.excluded and from_not < 0.5:
                    pick = disease.excluded[int(from_not * 2 * len(disease.excluded))]
                if present < mean / NOISE_SLOTS and pick not in annotated and pick not in used:
                    noise.append({"hpo_id": pick, "status": status})
                    used.add(pick)
        return noise

    def _history(self, disease: Disease, rng: random.Random) -> list[str]:
        codes = [code for code, p in sorted(disease.comorbidities.items()) if rng.random() < p]
        # Background comorbidities at a fraction of their prevalence, whatever the disease.
        codes += [d.code for d in self._common if rng.random() < 0.2 * d.prevalence and d.code != disease.code]
        return sorted(set(codes) - {disease.code})

    def _labs(self, disease: Disease, rng: random.Random) -> list[dict[str, Any]]:
        calibration = self.config.scenario.lab_calibration
        labs = []
        for loinc in sorted(set(self.catalog.routine_panel) | set(disease.labs)):
            kind: LabKind = self.catalog.labs[loinc]
            missing, z, noise = rng.random(), rng.gauss(0, 1), rng.gauss(0, 1)
            rate = SIGNATURE_LAB_MISSING if loinc in disease.labs else self.config.lab_missing_rate
            if missing < rate:
                continue
            mean, sd = disease.labs.get(loinc, (kind.mean, kind.sd))
            smallest = 10.0**-kind.decimals
            value = max(mean + sd * z, smallest) * (1 + LAB_CV * noise)
            multiplier, offset = calibration.get(loinc, (1.0, 0.0))
            value = max(_round(value * multiplier + offset, kind.decimals), smallest)
            lab: dict[str, Any] = {"loinc": loinc, "value": value, "unit": kind.unit}
            if kind.low is not None:
                lab["reference_low"] = kind.low
            if kind.high is not None:
                lab["reference_high"] = kind.high
            labs.append(lab)
        return labs

    def _vitals(self, disease: Disease, sex: str, age: float, rng: random.Random) -> list[dict[str, Any]]:
        normal = _normal_vitals(sex, age)
        adult = age >= 18
        draws = {name: (rng.random(), rng.gauss(0, 1)) for name in (*VITAL_ORDER, "bmi")}
        values: dict[str, float] = {}
        for name in (*VITAL_ORDER, "bmi"):
            mean, sd = disease.vitals[name] if adult and name in disease.vitals else normal[name]
            values[name] = mean + sd * draws[name][1]
        values["diastolic_bp"] = min(values["diastolic_bp"], values["systolic_bp"] - 20)
        if not (adult and "body_weight" in disease.vitals):
            values["body_weight"] = max(values["bmi"], 10.0) * (values["body_height"] / 100) ** 2
        vitals = []
        for name in VITAL_ORDER:
            if draws[name][0] < self.config.vital_missing_rate:
                continue
            unit = VITAL_UNITS[name]
            low, high = MEASUREMENTS[name].units[unit]
            value = _round(_clamp(values[name], low, high), VITAL_DECIMALS.get(name, 0))
            vitals.append({"name": name, "value": value, "unit": unit})
        return vitals

    def _device(self, disease: Disease, index: int, record: dict[str, Any], rng: random.Random) -> DeviceSeries | None:
        if not disease.monitored or rng.random() >= self.config.monitored_rate:
            return None
        from cohorts.devices import device_series  # noqa: PLC0415 - needs paho-mqtt; only for monitored patients

        return device_series(self.config, disease, index, record)


def _accumulate(values: Iterator[float] | Any) -> Iterator[float]:
    total = 0.0
    for value in values:
        total += value
        yield total


def _normal_vitals(sex: str, age: float) -> Mapping[str, tuple[float, float]]:
    """Mean and SD of each vital sign for a healthy person of this age and sex (crude growth curves)."""
    male = sex == "male"
    if age < 18:
        height = 50 + 25 * min(age, 1.0) + 6.2 * max(age - 1, 0.0)
        bmi = 16.0 if age < 10 else 19.0
        heart = 130 if age < 1 else 110 if age < 6 else 88
        breathing = 40 if age < 1 else 25 if age < 6 else 18
        systolic = 85 + 2 * age
    else:
        height = 176.0 if male else 163.0
        bmi = 26.0
        heart, breathing = 74, 15
        systolic = 118 + 0.4 * (age - 18)
    return {
        "heart_rate": (heart, 9),
        "systolic_bp": (systolic, 11),
        "diastolic_bp": (systolic * 0.63, 7),
        "body_temperature": (36.8, 0.3),
        "respiratory_rate": (breathing, 2),
        "spo2": (97.5, 1.0),
        "body_height": (height, 7 if age >= 18 else max(2.0, height * 0.04)),
        "body_weight": (0.0, 0.0),  # derived from height and BMI unless a disease sets it
        "bmi": (bmi, 4.0 if age >= 18 else 1.5),
    }


def expected_terms(disease: Disease) -> float:
    return math.fsum(f for _, f in disease.phenotypes)
