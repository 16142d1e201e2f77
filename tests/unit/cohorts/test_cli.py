"""python -m cohorts: files for the API and the training code, ground truth, report; no identifiers printed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from cohorts.__main__ import main
from dxops.schemas import ClinicalRecord
from dxops.schemas.device import DevicePublication


def test_generate_writes_valid_files_and_ground_truth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cohort"
    args = ["generate", "--records", "600", "--seed", "3", "--out", str(out), "--malformed-rate", "0.1"]
    assert main([*args, "--curated", "--rare-count", "30"]) == 0
    captured = capsys.readouterr()
    assert "SYN-" not in captured.out + captured.err
    lines = (out / "records.ndjson").read_text().splitlines()
    truth = {entry["line"]: entry for entry in json.loads((out / "malformed.json").read_text())}
    assert len(lines) == 600 and 30 < len(truth) < 100
    for number, line in enumerate(lines, start=1):
        entry = truth.get(number)
        if entry is None or entry["valid"]:
            ClinicalRecord.model_validate_json(line)
        else:
            with pytest.raises(ValidationError):
                ClinicalRecord.model_validate_json(line)
    for line in (out / "devices.ndjson").read_text().splitlines():
        DevicePublication.model_validate(json.loads(line)["message"])
    with (out / "curated.csv").open() as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    assert header[:5] == ["record_id", "patient_id", "label", "age_years", "sex"]
    assert len(rows) == 1 + 600 - len(truth)  # malformed records and duplicates stay out of the curated table
    assert {value for row in rows[1:] for value in row[5 : 5 + 50]} <= {"1", "0", "-1"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["scenario"]["name"] == "baseline" and "SYN-" not in json.dumps(manifest)


def test_scenario_is_recorded(tmp_path: Path) -> None:
    assert main(["generate", "--records", "50", "--out", str(tmp_path), "--scenario", "outbreak", "--quiet"]) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["scenario"]["injected"] == {"ICD10:J11.1": 0.25}


def test_report_writes_markdown_and_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--records", "2000", "--out", str(tmp_path), "--quiet"]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "## Counts per disease" in text and "## Missingness" in text and "cases_per_disease.png" in text
    png = (tmp_path / "cases_per_disease.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    assert "SYN-" not in capsys.readouterr().out
