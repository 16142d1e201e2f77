"""A small synthetic batch of clinical records for the demo, with a known share of bad records.

Deliberately simple (random valid HPO terms, one lab, one vital); the cohort simulator of the
synthetic-cohorts capability will replace it with clinically grounded patients.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from dxops.vocab.hpo import hpo_index

DEFECTS = ("unknown_hpo_term", "implausible_vital", "wrong_type", "missing_patient_id", "free_text")


def _defect(record: dict[str, Any], kind: str) -> None:
    if kind == "unknown_hpo_term":
        record["phenotypes"][0]["hpo_id"] = "HP:9999999"
    elif kind == "implausible_vital":
        record["vitals"][0]["value"] = 420
    elif kind == "wrong_type":
        record["labs"][0]["value"] = "elevated"
    elif kind == "missing_patient_id":
        del record["patient_id"]
    elif kind == "free_text":
        record["notes"] = "patient reports dizziness since last week"


def clinical_batch(
    count: int, bad_share: float, seed: int, sites: tuple[str, ...] = ("site-a", "site-b")
) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """count records, about bad_share of them defective; returns the records and {index: defect}."""
    rng = random.Random(seed)
    terms = sorted(hpo_index().terms)
    today = dt.datetime.now(dt.UTC).date()
    records, defects = [], {}
    for index in range(count):
        record: dict[str, Any] = {
            "record_id": f"demo-{seed}-{index:05d}",
            "source": rng.choice(sites),
            "patient_id": f"MRN-{rng.randrange(10**6, 10**7)}",
            "encounter_date": (today - dt.timedelta(days=rng.randrange(0, 365))).isoformat(),
            "sex": rng.choice(["female", "male"]),
            "age_years": rng.randint(0, 90),
            "phenotypes": [
                {"hpo_id": f"HP:{term:07d}", "status": "excluded" if rng.random() < 0.15 else "observed"}
                for term in rng.sample(terms, rng.randint(3, 9))
            ],
            "labs": [{"loinc": "2345-7", "value": round(rng.gauss(5.3, 0.9), 1), "unit": "mmol/L"}],
            "vitals": [{"name": "heart_rate", "value": rng.randint(55, 125), "unit": "/min"}],
        }
        if rng.random() < bad_share:
            kind = rng.choice(DEFECTS)
            _defect(record, kind)
            defects[index] = kind
        records.append(record)
    return records, defects
