"""dxops-rank: phenotype-only cases in, top-10 rankings out, with no trained model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml.knowledge import default_model
from ml.rank import main


def write_cases(path: Path, cases: list[object]) -> Path:
    path.write_text("".join((c if isinstance(c, str) else json.dumps(c)) + "\n" for c in cases))
    return path


def test_rank_without_a_trained_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    disease = next(d for d in default_model().diseases if d.id == "OMIM:122470")  # Cornelia de Lange 1
    observed = sorted(disease.frequencies, key=lambda t: (-disease.frequencies[t], t))[:5]
    cases = write_cases(
        tmp_path / "cases.jsonl",
        [
            {"id": "case-1", "observed": observed, "excluded": []},
            {"id": 2, "observed": ["HP:0001250", "HP:9999999"]},  # one unknown id, no excluded key
        ],
    )
    out = tmp_path / "out" / "rankings.jsonl"
    assert main(["--cases", str(cases), "--out", str(out)]) == 0
    first, second = (json.loads(line) for line in out.read_text().splitlines())
    assert first["id"] == "case-1" and first["ranking"][0]["disease_id"] == "OMIM:122470"
    assert second["id"] == 2
    for line in (first, second):
        assert len(line["ranking"]) == 10
        assert all(set(r) == {"disease_id", "name", "score"} for r in line["ranking"])
        assert all(r["disease_id"].startswith(("ORPHA:", "OMIM:")) for r in line["ranking"])
        scores = [r["score"] for r in line["ranking"]]
        assert scores == sorted(scores, reverse=True)
    assert "1 unknown HPO ids left out" in capsys.readouterr().err


def test_a_line_that_is_not_a_case_is_refused_with_its_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = write_cases(tmp_path / "cases.jsonl", [{"id": "ok", "observed": []}, "{not json"])
    assert main(["--cases", str(cases), "--out", str(tmp_path / "out.jsonl")]) == 2
    assert "line 2: not JSON" in capsys.readouterr().err


def test_a_trained_model_is_not_accepted_yet(tmp_path: Path) -> None:
    cases = write_cases(tmp_path / "cases.jsonl", [{"id": "ok", "observed": []}])
    with pytest.raises(SystemExit) as exit_info:
        main(["--cases", str(cases), "--out", str(tmp_path / "o.jsonl"), "--model", str(tmp_path)])
    assert exit_info.value.code == 2
