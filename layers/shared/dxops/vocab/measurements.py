"""Vital signs and device measurements: LOINC code, accepted UCUM units and plausible ranges.

One table serves both the vital signs of a clinical record and device readings. Ranges bound
what a living patient can show (values outside are sensor or entry errors), not normal ranges.
"""

from __future__ import annotations

from typing import Literal, NamedTuple


class MeasurementKind(NamedTuple):
    loinc: str
    units: dict[str, tuple[float, float]]  # UCUM unit -> plausible (low, high)


MeasurementName = Literal[
    "heart_rate",
    "spo2",
    "body_temperature",
    "systolic_bp",
    "diastolic_bp",
    "respiratory_rate",
    "glucose",
    "body_weight",
    "body_height",
]

UcumUnit = Literal["/min", "%", "Cel", "[degF]", "mm[Hg]", "mg/dL", "mmol/L", "kg", "[lb_av]", "cm", "[in_i]"]

MEASUREMENTS: dict[str, MeasurementKind] = {
    "heart_rate": MeasurementKind("8867-4", {"/min": (20, 300)}),
    "spo2": MeasurementKind("59408-5", {"%": (50, 100)}),
    "body_temperature": MeasurementKind("8310-5", {"Cel": (25, 45), "[degF]": (77, 113)}),
    "systolic_bp": MeasurementKind("8480-6", {"mm[Hg]": (40, 300)}),
    "diastolic_bp": MeasurementKind("8462-4", {"mm[Hg]": (20, 200)}),
    "respiratory_rate": MeasurementKind("9279-1", {"/min": (2, 80)}),
    "glucose": MeasurementKind("2339-0", {"mg/dL": (10, 1500), "mmol/L": (0.5, 85)}),
    "body_weight": MeasurementKind("29463-7", {"kg": (0.2, 500), "[lb_av]": (0.5, 1100)}),
    "body_height": MeasurementKind("8302-2", {"cm": (20, 272), "[in_i]": (8, 107)}),
}


# The vital sign a LOINC code names (documents in other standards code vitals by LOINC).
MEASUREMENT_BY_LOINC: dict[str, str] = {kind.loinc: name for name, kind in MEASUREMENTS.items()}


def check_measurement(name: str, value: float, unit: str) -> None:
    kind = MEASUREMENTS[name]
    if unit not in kind.units:
        raise ValueError(f"this unit is not accepted for {name}; expected one of {sorted(kind.units)}")
    low, high = kind.units[unit]
    if not low <= value <= high:
        raise ValueError(f"{name} {value} {unit} is outside the plausible range [{low}, {high}]")
