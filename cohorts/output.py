"""Writing a cohort: NDJSON for the ingestion API, device messages, a curated CSV, ground truth.

Files written into the output directory (streamed, one record at a time):
- records.ndjson: one ClinicalRecord JSON document per line (POST /records takes them in
  batches: see ``batches``); malformed ones included when asked, listed in malformed.json.
- devices.ndjson: one line per device message, {"device_id", "message"}, where "message" is the
  DevicePublication document the device publishes on dxops/devices/<device_id>/readings.
- device_bindings.ndjson: {"device_id", "binding"}, the body of PUT /devices/{id}/binding
  (it holds the patient identifier: treat the file as PHI, never print it).
- curated.csv (optional): the table for the training code, see ``CURATED_FORMAT``.
- manifest.json: config, scenario ground truth, counts per class (no identifiers).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from cohorts.catalog import Catalog
from cohorts.malformed import damage, ground_truth, malformed_choice
from cohorts.patients import VITAL_ORDER, CohortConfig, CohortGenerator, Patient
from dxops.vocab.measurements import MEASUREMENTS

CURATED_FORMAT = """\
curated.csv: one row per record, comma-separated, header first.
  record_id, patient_id, label (diagnosis code), age_years, sex (female/male/other/unknown),
  then one column per HPO term of the catalog's phenotype profiles, named by its id (HP:0001250):
    1 = observed, -1 = excluded, 0 = not recorded (absence is not exclusion);
  then one column per lab, named by LOINC (2345-7), value in the catalog's UCUM unit, empty if not
  measured; then one per vital sign, named by its LOINC (8867-4 heart rate ...), empty if missing.
Columns are fixed by the catalog (not the data), so the file streams; it is wide (about 10 columns
per rare disease): use it for cohorts up to about 100,000 records and NDJSON beyond.
"""
PROGRESS_EVERY = 10_000


def batches(records: Iterable[dict[str, Any]], size: int = 100) -> Iterator[list[dict[str, Any]]]:
    """Records in lists of ``size``: bodies for POST /records."""
    batch: list[dict[str, Any]] = []
    for record in records:
        batch.append(record)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class CuratedWriter:
    """Streams patients into curated.csv; the columns come from the catalog."""

    def __init__(self, stream: IO[str], generator: CohortGenerator) -> None:
        self.terms = generator.all_terms
        self.labs = tuple(sorted(generator.catalog.labs))
        self.vitals = tuple(MEASUREMENTS[name].loinc for name in VITAL_ORDER)
        self._vital_names = dict(zip(VITAL_ORDER, self.vitals, strict=True))
        self._writer = csv.writer(stream, lineterminator="\n")
        self._writer.writerow(
            ["record_id", "patient_id", "label", "age_years", "sex", *self.terms, *self.labs, *self.vitals]
        )

    def write(self, patient: Patient) -> None:
        record = patient.record
        status = {p["hpo_id"]: 1 if p["status"] == "observed" else -1 for p in record["phenotypes"]}
        labs = {lab["loinc"]: lab["value"] for lab in record["labs"]}
        vitals = {self._vital_names[v["name"]]: v["value"] for v in record["vitals"]}
        self._writer.writerow(
            [
                record["record_id"],
                record["patient_id"],
                patient.label,
                record["age_years"],
                record["sex"],
                *(status.get(term, 0) for term in self.terms),
                *(labs.get(loinc, "") for loinc in self.labs),
                *(vitals.get(loinc, "") for loinc in self.vitals),
            ]
        )


def _dumps(document: Any) -> str:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def write_cohort(
    out: Path,
    config: CohortConfig,
    catalog: Catalog,
    *,
    malformed_rate: float = 0.0,
    curated: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate and write a cohort into ``out``; returns the manifest (counts, no identifiers)."""
    out.mkdir(parents=True, exist_ok=True)
    generator = CohortGenerator(config, catalog)
    labels: Counter[str] = Counter()
    defects: Counter[str] = Counter()
    truth: list[dict[str, Any]] = []
    devices = messages = 0
    with (
        (out / "records.ndjson").open("w", encoding="utf-8") as records_file,
        (out / "devices.ndjson").open("w", encoding="utf-8") as devices_file,
        (out / "device_bindings.ndjson").open("w", encoding="utf-8") as bindings_file,
        (out / "curated.csv").open("w", encoding="utf-8", newline="") if curated else _null() as curated_file,
    ):
        curated_writer = CuratedWriter(curated_file, generator) if curated_file is not None else None
        for line, patient in enumerate(generator, start=1):
            record = patient.record
            defect = malformed_choice(config.seed, patient.index, malformed_rate) if malformed_rate else None
            if defect is not None:
                record = damage(record, defect, config.seed, patient.index)
                truth.append(ground_truth(line, patient.index, defect, record))
                defects[defect] += 1
            else:
                labels[patient.label] += 1
                if curated_writer is not None:
                    curated_writer.write(patient)
            records_file.write(_dumps(record) + "\n")
            if patient.device is not None:
                devices += 1
                bindings_file.write(
                    _dumps({"device_id": patient.device.device_id, "binding": patient.device.binding}) + "\n"
                )
                for message in patient.device.messages:
                    messages += 1
                    devices_file.write(_dumps({"device_id": patient.device.device_id, "message": message}) + "\n")
            if progress and line % PROGRESS_EVERY == 0:
                print(f"\rgenerated {line}/{config.records} records", end="", file=sys.stderr, flush=True)
    if progress and config.records:
        print(f"\rgenerated {config.records}/{config.records} records", file=sys.stderr, flush=True)
    manifest = {
        "config": {k: v for k, v in dataclasses.asdict(config).items() if k != "scenario"}
        | {"start_date": config.start_date.isoformat(), "malformed_rate": malformed_rate},
        "scenario": config.scenario.ground_truth(),
        "catalog": {
            "common": sum(d.kind == "common" for d in catalog.diseases),
            "rare": sum(d.kind == "rare" for d in catalog.diseases),
        },
        "records": config.records,
        "valid_records_per_label": dict(sorted(labels.items())),
        "malformed": dict(sorted(defects.items())),
        "devices": devices,
        "device_messages": messages,
    }
    (out / "malformed.json").write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    if curated:
        (out / "curated.README.txt").write_text(CURATED_FORMAT, encoding="utf-8")
    return manifest


class _null:
    """A context manager yielding None (no curated file)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None
