"""Builders of valid and invalid inputs shared by the tests."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
from typing import Any

# Distinctive values: tests search logs and stored objects for them.
PATIENT_IDS = ("MRN-SECRET-000417", "MRN-SECRET-000982", "MRN-SECRET-001553")


def clinical_record(index: int = 0, **overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "record_id": f"rec-{index:05d}",
        "source": "site-a",
        "patient_id": PATIENT_IDS[index % len(PATIENT_IDS)],
        "encounter_date": (dt.date(2026, 11, 1) + dt.timedelta(days=index % 20)).isoformat(),
        "sex": "female",
        "birth_year": 1961,
        "phenotypes": [
            {"hpo_id": "HP:0001250", "status": "observed"},
            {"hpo_id": "HP:0001263", "status": "observed"},
            {"hpo_id": "HP:0000365", "status": "excluded"},
        ],
        "history": ["ICD10:G40.9", "OMIM:154700"],
        "labs": [{"loinc": "2345-7", "value": 5.1, "unit": "mmol/L", "reference_low": 3.9, "reference_high": 5.6}],
        "vitals": [{"name": "heart_rate", "value": 88, "unit": "/min"}],
        "diagnosis": {"code": "ORPHA:558", "status": "confirmed"},
    }
    record.update(overrides)
    return record


def with_change(record: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Copy of record with the value at a dotted path (list indices as numbers) replaced."""
    changed = copy.deepcopy(record)
    *parents, last = path.split(".")
    target: Any = changed
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return changed


def device_publication(readings: int = 2, start: dt.datetime | None = None) -> dict[str, Any]:
    """What a device publishes: readings only, no patient identity."""
    start = start or dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)
    return {
        "readings": [
            {
                "timestamp": (start + dt.timedelta(seconds=30 * i)).isoformat(),
                "measurements": [
                    {"name": "heart_rate", "value": 70 + i, "unit": "/min"},
                    {"name": "spo2", "value": 97, "unit": "%"},
                ],
            }
            for i in range(readings)
        ]
    }


def rule_envelope(payload: object, device: str = "monitor-0001", received_at: int = 1795600800000) -> dict[str, Any]:
    """What the IoT topic rule queues: the payload in base64, the device id, the receive time."""
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return {"payload": base64.b64encode(raw).decode(), "device_id": device, "received_at": received_at}


def binding_request(patient_index: int = 0, source: str = "site-a") -> dict[str, Any]:
    return {"source": source, "patient_id": PATIENT_IDS[patient_index % len(PATIENT_IDS)]}
