"""Simulated cohorts for the drift tests: a baseline and every drift scenario of cohorts/drift.py,
as captured prediction inputs (EndpointRecord documents) and as curated tables (with the device
aggregates the ETL adds), small enough for a few seconds."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from cohorts.catalog import Catalog, build_catalog
from cohorts.drift import scenario
from cohorts.output import CuratedWriter
from cohorts.patients import CohortConfig, CohortGenerator, Patient
from dxops.vocab.measurements import MEASUREMENTS
from ml.table import normalise

RARE_DISEASES = 20
SPO2 = MEASUREMENTS["spo2"].loinc
ENDPOINT_FIELDS = ("record_id", "sex", "age_years", "phenotypes", "history", "labs", "vitals")


@cache
def catalog() -> Catalog:
    return build_catalog(rare_count=RARE_DISEASES)


def patients(name: str, records: int, seed: int, start: int = 0) -> list[Patient]:
    config = CohortConfig(records=start + records, seed=seed, scenario=scenario(name))
    return list(CohortGenerator(config, catalog()).stream(start, start + records))


def endpoint_record(patient: Patient) -> dict[str, Any]:
    """What the endpoint receives of a record (dxops.schemas.prediction.EndpointRecord)."""
    record = patient.record
    return {
        "record_id": record["record_id"],
        "sex": record["sex"],
        "age_years": record["age_years"],
        "phenotypes": [{"hpo_id": p["hpo_id"], "status": p["status"]} for p in record["phenotypes"]],
        "history": list(record["history"]),
        "labs": [{"loinc": lab["loinc"], "value": lab["value"], "unit": lab["unit"]} for lab in record["labs"]],
        "vitals": [{"name": v["name"], "value": v["value"], "unit": v["unit"]} for v in record["vitals"]],
    }


def _device_columns(patient: Patient) -> dict[str, float]:
    """The ETL's device aggregates of SpO2 (dev_<LOINC>_{mean,min,max,last}), from the readings."""
    if patient.device is None:
        return {}
    values = [
        float(m["value"])
        for message in patient.device.messages
        for reading in message["readings"]
        for m in reading["measurements"]
        if m["name"] == "spo2"
    ]
    if not values:
        return {}
    return {
        f"dev_{SPO2}_mean": float(np.mean(values)),
        f"dev_{SPO2}_min": min(values),
        f"dev_{SPO2}_max": max(values),
        f"dev_{SPO2}_last": values[-1],
    }


def curated_table(chosen: Sequence[Patient], generator_of: str = "baseline", devices: bool = True) -> pd.DataFrame:
    """The simulator's curated.csv of these patients, with device aggregate columns."""
    generator = CohortGenerator(CohortConfig(records=1, scenario=scenario(generator_of)), catalog())
    stream = io.StringIO()
    writer = CuratedWriter(stream, generator)
    for patient in chosen:
        writer.write(patient)
    stream.seek(0)
    frame = pd.read_csv(stream, dtype={"record_id": "string", "patient_id": "string", "label": "string"})
    if devices:
        columns = [f"dev_{SPO2}_{stat}" for stat in ("mean", "min", "max", "last")]
        aggregates = pd.DataFrame([_device_columns(p) for p in chosen], columns=columns, dtype="float64")
        frame = pd.concat([frame, aggregates], axis=1)
    return normalise(frame)


def label_predictor(labels: Sequence[str]) -> Callable[[pd.DataFrame], tuple[list[str], list[float]]]:
    """A stand-in for the model's top-1 on the baseline's rows: the simulator's own class. A model
    trained on 5,000 baseline records predicts it for 99.7 % of a new-presentation window
    (logistic regression, measured), so the presentation of a predicted class is that of the
    class. The baseline must score every row in order (build_profile with presentation_rows >= rows)."""

    def predict(frame: pd.DataFrame) -> tuple[list[str], list[float]]:
        if len(frame) != len(labels):
            raise ValueError("the stand-in scores the whole baseline table only")
        return list(labels), [1.0] * len(labels)

    return predict
