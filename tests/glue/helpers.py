"""Tiny raw-zone documents for the transform tests (shapes of PseudonymisedRecord / Reading)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PATIENT_A = "a" * 64
PATIENT_B = "b" * 64


def record(record_id: str, **changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "record_id": record_id,
        "source": "site-a",
        "encounter_date": "2025-03-10",
        "sex": "female",
        "age_years": 42.0,
        "phenotypes": [],
        "history": [],
        "labs": [],
        "vitals": [],
        "diagnosis": {"code": "ICD10:E11.9", "status": "confirmed"},
        "patient_pseudonym": PATIENT_A,
        "pseudonym_key_id": "k1",
        "ingested_at": "2025-03-11T08:00:00Z",
        "schema_version": "1.0",
    }
    document.update(changes)
    return document


def reading(device: str, timestamp: str, measurements: list[dict[str, Any]], **changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "reading_id": f"{device}:{timestamp}",
        "device_id": device,
        "source": "site-a",
        "patient_pseudonym": PATIENT_A,
        "pseudonym_key_id": "k1",
        "timestamp": timestamp,
        "received_at": timestamp,
        "ingested_at": "2025-03-11T08:00:00Z",
        "measurements": measurements,
        "schema_version": "1.0",
    }
    document.update(changes)
    return document


def write_ndjson(folder: Path, name: str, lines: list[dict[str, Any] | str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path
