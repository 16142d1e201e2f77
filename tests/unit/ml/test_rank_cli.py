"""dxops-rank: phenotype-only cases in, top-10 rankings out, with and without a trained model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml.knowledge import default_model
from ml.rank import main
from ml.table import read_table
from ml.train import TrainConfig, train
from tests.unit.ml.tables import clinical_table, rare_diseases, write_table


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


def test_rank_with_a_trained_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = write_table(tmp_path / "table.csv", clinical_table(240, seed=1))
    model = tmp_path / "model"
    train(table, model, TrainConfig.from_hyperparameters({"candidates": "logreg+class_weights", "threads": "1"}))
    rare = rare_diseases()[1]
    case = read_table(table).query("label == @rare").iloc[0]
    observed = [name for name in case.index if name.startswith("HP:") and case[name] == 1]
    cases = write_cases(tmp_path / "cases.jsonl", [{"id": "rare", "observed": observed}, {"id": "empty"}])
    out = tmp_path / "rankings.jsonl"
    assert main(["--cases", str(cases), "--out", str(out), "--model", str(model)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["id"] for line in lines] == ["rare", "empty"]
    ranking = lines[0]["ranking"]
    assert len(ranking) == 10 and ranking[0]["disease_id"] == rare
    assert [r["score"] for r in ranking] == sorted((r["score"] for r in ranking), reverse=True)
    assert "ranked with model" in capsys.readouterr().err


def test_a_directory_that_is_not_a_model_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = write_cases(tmp_path / "cases.jsonl", [{"id": "ok", "observed": []}])
    assert main(["--cases", str(cases), "--out", str(tmp_path / "o.jsonl"), "--model", str(tmp_path)]) == 2
    assert "not a model directory (missing model.json)" in capsys.readouterr().err
