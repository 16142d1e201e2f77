"""Unit normalisation tables: every lab and vital value converted to one canonical UCUM unit per LOINC.

``canonical = value * multiplier + offset``. The canonical unit of a lab is the one the cohort
simulator's catalog uses (cohorts/data/common_diseases.json), so that the curated Parquet and the
simulator's curated.csv agree; the canonical unit of a vital is the metric unit of
dxops.vocab.measurements. A (LOINC, unit) pair missing from this table is never guessed: the value
becomes null (missing); a LOINC missing from the table has no column. Units are matched exactly
(UCUM is case-sensitive).

``plausible`` bounds what a living patient can show in the canonical unit (not a normal range).
Pure Python: the Glue ETL (glue/dxops_etl/units.py joins it as a Spark frame) and the model's
inference script (ml/records.py) read the same table.
"""

from __future__ import annotations

from typing import NamedTuple

from dxops.vocab.measurements import MEASUREMENTS


class Conversion(NamedTuple):
    canonical: str
    others: dict[str, tuple[float, float]]  # unit -> (multiplier, offset) into the canonical unit
    plausible: tuple[float, float]


# Molar masses behind the factors: glucose 180.16 g/mol, creatinine 113.12, urea N 28.01 (BUN),
# cholesterol 386.65, triglycerides 885.7, haemoglobin (monomer) 16.11 kg/mol, iron 55.85,
# urate 168.11, calcium 40.08, free T4 776.87, 25-OH vitamin D 400.6.
_MMOL_CHOLESTEROL = 38.67
LABS: dict[str, Conversion] = {
    "2345-7": Conversion("mg/dL", {"mmol/L": (18.016, 0.0)}, (10, 1500)),  # glucose
    "4548-4": Conversion("%", {"mmol/mol": (0.09148, 2.152)}, (2, 25)),  # HbA1c (IFCC -> NGSP)
    "2160-0": Conversion("mg/dL", {"umol/L": (1 / 88.42, 0.0)}, (0.05, 30)),  # creatinine
    "33914-3": Conversion("mL/min/{1.73_m2}", {}, (0, 250)),  # eGFR
    "3094-0": Conversion("mg/dL", {"mmol/L": (2.801, 0.0)}, (1, 300)),  # urea nitrogen
    "2951-2": Conversion("mmol/L", {"meq/L": (1.0, 0.0)}, (90, 200)),  # sodium
    "2823-3": Conversion("mmol/L", {"meq/L": (1.0, 0.0)}, (1, 12)),  # potassium
    "2093-3": Conversion("mg/dL", {"mmol/L": (_MMOL_CHOLESTEROL, 0.0)}, (20, 1500)),  # cholesterol
    "2085-9": Conversion("mg/dL", {"mmol/L": (_MMOL_CHOLESTEROL, 0.0)}, (2, 250)),  # HDL
    "13457-7": Conversion("mg/dL", {"mmol/L": (_MMOL_CHOLESTEROL, 0.0)}, (0, 1000)),  # LDL
    "2571-8": Conversion("mg/dL", {"mmol/L": (88.57, 0.0)}, (5, 10000)),  # triglycerides
    "718-7": Conversion("g/dL", {"g/L": (0.1, 0.0), "mmol/L": (1.611, 0.0)}, (1, 25)),  # haemoglobin
    "787-2": Conversion("fL", {}, (40, 160)),  # MCV
    "6690-2": Conversion("10*3/uL", {"10*9/L": (1.0, 0.0)}, (0, 500)),  # leukocytes
    "777-3": Conversion("10*3/uL", {"10*9/L": (1.0, 0.0)}, (0, 3000)),  # platelets
    "1988-5": Conversion("mg/L", {"mg/dL": (10.0, 0.0)}, (0, 1000)),  # CRP
    "4537-7": Conversion("mm/h", {}, (0, 200)),  # ESR
    "1742-6": Conversion("U/L", {}, (0, 30000)),  # ALT
    "1920-8": Conversion("U/L", {}, (0, 30000)),  # AST
    "3016-3": Conversion("m[IU]/L", {"u[IU]/mL": (1.0, 0.0)}, (0, 1000)),  # TSH
    "3024-7": Conversion("ng/dL", {"pmol/L": (0.07769, 0.0)}, (0, 20)),  # free T4
    "33762-6": Conversion("pg/mL", {"ng/L": (1.0, 0.0)}, (0, 200000)),  # NT-proBNP
    "2276-4": Conversion("ng/mL", {"ug/L": (1.0, 0.0)}, (0, 100000)),  # ferritin
    "2498-4": Conversion("ug/dL", {"umol/L": (5.585, 0.0)}, (0, 1000)),  # iron
    "3084-1": Conversion("mg/dL", {"umol/L": (1 / 59.48, 0.0)}, (0, 30)),  # urate
    "11572-5": Conversion("[IU]/mL", {}, (0, 10000)),  # rheumatoid factor
    "2019-8": Conversion("mm[Hg]", {"kPa": (7.50062, 0.0)}, (5, 200)),  # pCO2
    "33959-8": Conversion("ng/mL", {"ug/L": (1.0, 0.0)}, (0, 1000)),  # procalcitonin
    "10839-9": Conversion("ng/mL", {"ng/L": (0.001, 0.0), "ug/L": (1.0, 0.0)}, (0, 1000)),  # troponin I
    "9318-7": Conversion("mg/g{creat}", {"mg/mmol{creat}": (8.84, 0.0)}, (0, 50000)),  # albumin/creatinine
    "1989-3": Conversion("ng/mL", {"nmol/L": (0.4006, 0.0)}, (0, 300)),  # 25-OH vitamin D
    "2157-6": Conversion("U/L", {}, (0, 500000)),  # creatine kinase
    "17861-6": Conversion("mg/dL", {"mmol/L": (4.008, 0.0)}, (2, 25)),  # calcium
}

# Vitals (and device measurements): name -> LOINC and canonical unit from the measurement table.
_VITAL_CANONICAL = {
    "heart_rate": "/min",
    "spo2": "%",
    "body_temperature": "Cel",
    "systolic_bp": "mm[Hg]",
    "diastolic_bp": "mm[Hg]",
    "respiratory_rate": "/min",
    "glucose": "mg/dL",
    "body_weight": "kg",
    "body_height": "cm",
}
_VITAL_OTHERS: dict[str, dict[str, tuple[float, float]]] = {
    "body_temperature": {"[degF]": (5 / 9, -160 / 9)},
    "glucose": {"mmol/L": (18.016, 0.0)},
    "body_weight": {"[lb_av]": (0.45359237, 0.0)},
    "body_height": {"[in_i]": (2.54, 0.0)},
}
VITAL_LOINC: dict[str, str] = {name: kind.loinc for name, kind in MEASUREMENTS.items()}
VITALS: dict[str, Conversion] = {
    kind.loinc: Conversion(_VITAL_CANONICAL[name], _VITAL_OTHERS.get(name, {}), kind.units[_VITAL_CANONICAL[name]])
    for name, kind in MEASUREMENTS.items()
}


def convert(value: float, loinc: str, unit: str) -> float | None:
    """Plain-Python conversion (for tests and documentation); None for an unknown unit."""
    conversion = LABS.get(loinc) or VITALS.get(loinc)
    if conversion is None:
        return None
    if unit == conversion.canonical:
        return value
    if unit not in conversion.others:
        return None
    multiplier, offset = conversion.others[unit]
    return value * multiplier + offset
