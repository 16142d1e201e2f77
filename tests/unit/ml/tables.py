"""Small clinical tables for the ML tests, in the documented training format, made here rather than
by the cohort simulator: other column names and value mixes than the simulator's (a hospital
export's shape: a free-text column, a site column, extra categorical and numeric columns,
several records per patient), and importable on the image's Python 3.10."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd

from ml.knowledge import default_model

# Common classes: a lab signature (LOINC, mean, sd) and typical phenotypes.
COMMON = {
    "ICD10:E11.9": ([("2345-7", 180, 40), ("4548-4", 8.5, 1.2)], ["HP:0000822", "HP:0001959"]),
    "ICD10:I10": ([("2345-7", 95, 12)], ["HP:0000822"]),
    "ICD10:J18.9": ([("1988-5", 90, 30), ("6690-2", 15, 3)], ["HP:0001945", "HP:0012735"]),
    "ICD10:D50.9": ([("718-7", 9.5, 1.0), ("2276-4", 8, 4)], ["HP:0012378", "HP:0000980"]),
}
LABS = ("2345-7", "4548-4", "1988-5", "6690-2", "718-7", "2276-4")
BASELINE = {
    "2345-7": (95, 12),
    "4548-4": (5.4, 0.4),
    "1988-5": (3, 2),
    "6690-2": (7, 1.5),
    "718-7": (14, 1.2),
    "2276-4": (100, 40),
}
# Rare classes: annotated diseases with at least 8 annotated terms (their cases follow the annotations).
RARE_COUNT = 6


def rare_diseases(count: int = RARE_COUNT) -> list[str]:
    diseases = [d for d in default_model().diseases if d.id.startswith("ORPHA:") and len(d.frequencies) >= 8]
    return [d.id for d in sorted(diseases, key=lambda d: d.id)[:count]]


def _rare_terms(disease_id: str, rng: random.Random) -> list[str]:
    disease = next(d for d in default_model().diseases if d.id == disease_id)
    terms = [t for t, f in sorted(disease.frequencies.items()) if rng.random() < max(f, 0.3)]
    return terms[:8] or sorted(disease.frequencies)[:3]


def clinical_table(
    records: int = 400, seed: int = 0, rare_cases: int = 6, records_per_patient: int = 2
) -> pd.DataFrame:
    """`records` rows: the common classes share most of them; each rare disease has `rare_cases`."""
    rng = random.Random(seed)
    rare = rare_diseases()
    labels = [label for label in rare for _ in range(rare_cases)]
    labels += [rng.choice(list(COMMON)) for _ in range(records - len(labels))]
    rng.shuffle(labels)
    terms: set[str] = set()
    rows = []
    for index, label in enumerate(labels):
        patient = f"p{index // records_per_patient:05d}-{label}"  # a patient keeps one diagnosis
        row: dict[str, object] = {
            "record_id": f"r{index:05d}",
            "patient_id": patient,
            "label": label,
            "source": rng.choice(["site-a", "site-b"]),
            "note": f"free text {rng.random():.6f}",  # never a feature: too many distinct values
            "age_years": round(rng.uniform(1, 85), 1),
            "sex": rng.choice(["female", "male", "unknown"]),
            "smoker": rng.choice(["yes", "no", None]),
        }
        if label in COMMON:
            signature, phenotypes = COMMON[label]
            values = {loinc: rng.gauss(m, s) for loinc, m, s in signature}
            observed = [t for t in phenotypes if rng.random() < 0.7]
        else:
            values = {}
            observed = _rare_terms(label, rng)
        for loinc in LABS:
            if rng.random() < 0.75:
                mean, sd = BASELINE[loinc]
                row[loinc] = round(values.get(loinc, rng.gauss(mean, sd)), 2)
        for term in observed:
            row[term] = 1
        terms.update(observed)
        rows.append(row)
    frame = pd.DataFrame(rows)
    for term in sorted(terms):
        frame[term] = frame[term].fillna(0).astype("int8")
    return frame


def write_table(path: Path, frame: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path
