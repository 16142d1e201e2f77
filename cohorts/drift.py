"""Drift scenarios: named, recorded changes of a cohort against its baseline (same seed).

Each patient draws every section of its record (class, demographics, phenotypes, labs, vitals,
history, device) from its own random stream, so a scenario changes only the sections it
touches: the records of a drifted cohort equal the baseline's except in the fields that
``Scenario.changed_fields`` names. Tests check exactly that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Scenario:
    """A named drift; empty fields change nothing."""

    name: str
    kind: str  # covariate shift, prior shift, concept change, device drift, or none
    description: str
    # Covariate shift: LOINC -> (multiplier, offset) applied to the measured value.
    lab_calibration: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    # Covariate shift: another site and population (common diseases' ages, share of women).
    site: str | None = None
    age_shift_years: float = 0.0
    female_shift: float = 0.0
    # Prior shift or new disease: code -> share of all records that are injected cases of it.
    injected: Mapping[str, float] = field(default_factory=dict)
    # Concept change: code -> {HPO id: new frequency} (added or replaced annotation).
    presentation: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    # Device sensor drift: measurement name -> (constant offset, additional offset per day).
    device_drift: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if sum(self.injected.values()) >= 1.0:
            raise ValueError("injected shares must sum to less than 1")

    @property
    def changed_fields(self) -> frozenset[str]:
        """Record fields (dotted, list items as []) that may differ from the baseline."""
        changed: set[str] = set()
        if self.lab_calibration:
            changed.add("labs[].value")
        if self.site is not None:
            changed.add("source")
        if self.age_shift_years or self.female_shift:
            # Age and sex set the normal vital signs (children, height and weight by sex).
            changed |= {"age_years", "sex", "vitals[].value", "phenotypes[].onset_age_years"}
        if self.injected:
            changed.add("<whole record of injected cases>")
        if self.presentation:
            changed.add("phenotypes")
        if self.device_drift:
            changed.add("<device readings>")
        return frozenset(changed)

    def ground_truth(self) -> dict[str, Any]:
        """What the scenario changed, as recorded next to the generated data."""
        return {
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "lab_calibration": {k: {"multiplier": m, "offset": o} for k, (m, o) in self.lab_calibration.items()},
            "site": self.site,
            "age_shift_years": self.age_shift_years,
            "female_shift": self.female_shift,
            "injected": dict(self.injected),
            "presentation": {k: dict(v) for k, v in self.presentation.items()},
            "device_drift": {k: {"offset": o, "per_day": d} for k, (o, d) in self.device_drift.items()},
            "changed_fields": sorted(self.changed_fields),
        }


BASELINE = Scenario("baseline", "none", "No drift.")

SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        BASELINE,
        Scenario(
            "lab-calibration",
            "covariate shift",
            "The creatinine assay reads 15 % high (e.g. a Jaffe method calibrated against another "
            "standard); reference ranges are unchanged.",
            lab_calibration={"2160-0": (1.15, 0.0)},
        ),
        Scenario(
            "new-site",
            "covariate shift",
            "A new site with an older, more female population: common-disease patients are 8 years "
            "older, 10 points more likely to be women; records come from site-north.",
            site="site-north",
            age_shift_years=8.0,
            female_shift=0.1,
        ),
        Scenario(
            "outbreak",
            "prior shift",
            "An influenza outbreak: 25 % of all records are influenza cases.",
            injected={"ICD10:J11.1": 0.25},
        ),
        Scenario(
            "new-disease",
            "concept change",
            "Lyme disease, absent from the baseline cohort, appears in 5 % of records.",
            injected={"ICD10:A69.2": 0.05},
        ),
        Scenario(
            "new-presentation",
            "concept change",
            "Influenza presents differently (a new strain): anosmia in 40 % and diarrhoea in 30 % of cases.",
            presentation={"ICD10:J11.1": {"HP:0000458": 0.4, "HP:0002014": 0.3}},
        ),
        Scenario(
            "sensor-drift",
            "device drift",
            "Pulse oximeters read 1 % low, drifting a further 0.5 % lower per day of monitoring.",
            device_drift={"spo2": (-1.0, -0.5)},
        ),
    )
}


def scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; expected one of {sorted(SCENARIOS)}") from None
