"""The promotion gate's evaluation (dxops-compare): both models on the candidate's verified held-out
split, less the champion's training patients; the gate's checks; the processing job contract."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from ml.compare import (
    COMPARISON_JSON,
    COMPARISON_MD,
    Evaluation,
    Tolerances,
    group_table,
    macro_f1_weighted,
    main,
)
from ml.table import LABEL, PATIENT_ID, labelled, read_table
from ml.train import TRAINING_PATIENTS, TrainConfig, patient_digests, train
from ml.validation import holdout_split
from tests.unit.ml.tables import clinical_table, write_table

ROOT = Path(__file__).resolve().parents[3]
FAST = {"candidates": "logreg+class_weights", "folds": "2", "threads": "1"}
# A candidate that has learnt little: its common-disease recall collapses.
WEAK = {**FAST, "candidates": "logreg+none", "logreg_c": "0.0001"}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Dataset v1 (the champion's), v2 = v1 plus new patients (the candidate's), and v1 with its
    labels shuffled (a champion that learnt nothing); the models trained on them."""
    root = tmp_path_factory.mktemp("compare")
    old = clinical_table(240, seed=1)
    fresh = clinical_table(240, seed=2)
    fresh["record_id"] = "n" + fresh["record_id"]
    fresh[PATIENT_ID] = "q" + fresh[PATIENT_ID]
    new = pd.concat([old, fresh], ignore_index=True)
    for column in new.columns:
        if column.startswith("HP:"):
            new[column] = new[column].fillna(0).astype("int8")
    shuffled = old.assign(**{LABEL: np.random.default_rng(0).permutation(old[LABEL].to_numpy())})
    paths = {
        name: write_table(root / f"{name}.parquet", t) for name, t in (("v1", old), ("v2", new), ("shuffled", shuffled))
    }
    models = {
        "champion": ("v1", FAST),
        "bad_champion": ("shuffled", FAST),
        "candidate": ("v2", FAST),
        "weak": ("v2", WEAK),
    }
    for name, (data, hyperparameters) in models.items():
        train(paths[data], root / name, TrainConfig.from_hyperparameters({**hyperparameters, "dataset_version": data}))
        paths[name] = root / name
    paths["root"] = root
    return paths


def run(
    capsys: pytest.CaptureFixture[str],
    out: Path,
    candidate: Path,
    data: Path,
    *flags: str,
    champion: Path | None = None,
) -> tuple[int, dict[str, Any] | None, str]:
    argv = ["--candidate", str(candidate), "--data", str(data), "--out", str(out), *flags]
    code = main([*argv, "--champion", str(champion)] if champion else argv)
    captured = capsys.readouterr()
    document = json.loads((out / COMPARISON_JSON).read_text()) if (out / COMPARISON_JSON).exists() else None
    return code, document, captured.out + captured.err


def assert_no_identifier(data: Path, *texts: str) -> None:
    table = read_table(data)
    identifiers = set(table[PATIENT_ID]) | set(table["record_id"])
    for text in texts:
        leaked = [identifier for identifier in identifiers if identifier in text]
        assert not leaked, leaked[:3]


def check(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in document["checks"] if c["name"] == name)


def test_a_better_candidate_passes_and_is_clearly_better(
    work: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, document, output = run(capsys, tmp_path, work["candidate"], work["v2"], champion=work["bad_champion"])
    assert code == 0 and document is not None
    assert document["verdict"] == "pass" and document["reasons"] == [] and document["clearly_better"] is True
    difference = document["macro_f1_difference"]
    assert difference["low"] > 0 and difference["low"] <= difference["estimate"] <= difference["high"]
    expected = document["candidate"]["macro_f1"] - document["champion"]["macro_f1"]
    assert difference["estimate"] == pytest.approx(expected, abs=2e-6)  # the bootstrap's F1 is scikit-learn's
    assert {"macro_f1", "rare_recall", "ece"} <= {c["name"] for c in document["checks"]}
    groups = {g["group"]: g for g in document["groups"]}
    assert {"disease=rare", "disease=common"} <= set(groups)
    assert any(name.startswith("sex=") for name in groups) and any(name.startswith("source=") for name in groups)
    assert any(name.startswith("age=") for name in groups)
    for group in groups.values():  # judged exactly when large enough
        assert group["judged"] == (group["rows"] >= 20)
        assert group["judged"] or group["status"].startswith("too small to judge")
    markdown = (tmp_path / COMPARISON_MD).read_text()
    assert markdown.startswith("# Promotion gate: pass") and "| macro_f1 |" in markdown
    assert_no_identifier(work["v2"], output, (tmp_path / COMPARISON_JSON).read_text(), markdown)


def test_a_worse_candidate_is_rejected_with_the_checks_it_failed(
    work: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, document, output = run(capsys, tmp_path, work["weak"], work["v2"], champion=work["champion"])
    assert code == 0 and document is not None  # a rejection is a result, not a failure
    assert document["verdict"] == "reject" and document["clearly_better"] is False
    assert check(document, "macro_f1")["passed"] is False
    assert any(reason.startswith("macro-F1 ") and "below the champion's" in reason for reason in document["reasons"])
    assert check(document, "group_recall:disease=common")["passed"] is False
    assert document["macro_f1_difference"]["high"] < 0
    assert "reject: macro-F1" in output
    assert_no_identifier(work["v2"], output, (tmp_path / COMPARISON_JSON).read_text())


def test_rows_of_patients_the_champion_trained_on_are_left_out_and_counted(
    work: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, document, _output = run(capsys, tmp_path, work["candidate"], work["v2"], champion=work["champion"])
    assert code == 0 and document is not None
    # Recomputed here from the two tables: the champion's training side of v1 and the candidate's held-out side of v2.
    v1, v2 = labelled(read_table(work["v1"])), labelled(read_table(work["v2"]))
    champion_train, _ = holdout_split(v1[LABEL].to_numpy(dtype=str), v1[PATIENT_ID].to_numpy(dtype=str), 0.2, 0)
    _, held = holdout_split(v2[LABEL].to_numpy(dtype=str), v2[PATIENT_ID].to_numpy(dtype=str), 0.2, 0)
    seen = set(v1[PATIENT_ID].iloc[champion_train])
    expected = int(v2[PATIENT_ID].iloc[held].isin(seen).sum())
    rows = document["rows"]
    assert expected > 0 and rows["excluded_seen_by_champion"] == expected
    assert rows == {"held_out": len(held), "evaluated": len(held) - expected, "excluded_seen_by_champion": expected}
    assert document["leakage_checked"] is True and document["warnings"] == []
    # The digests in the champion's directory are those of its training patients, nothing else.
    text = gzip.decompress((work["champion"] / TRAINING_PATIENTS).read_bytes()).decode()
    assert set(text.split()) == patient_digests(seen) and text.split() == sorted(text.split())


def test_a_champion_without_training_patients_is_compared_on_every_held_out_row_with_a_warning(
    work: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    older = tmp_path / "older"
    shutil.copytree(work["champion"], older)
    (older / TRAINING_PATIENTS).unlink()
    code, document, _output = run(capsys, tmp_path / "out", work["candidate"], work["v2"], champion=older)
    assert code == 0 and document is not None
    assert document["leakage_checked"] is False and document["rows"]["excluded_seen_by_champion"] == 0
    assert document["rows"]["evaluated"] == document["rows"]["held_out"]
    assert any(TRAINING_PATIENTS in warning for warning in document["warnings"])
    assert "Warnings:" in (tmp_path / "out" / COMPARISON_MD).read_text()


def test_the_same_model_on_both_sides_passes_with_no_difference(
    work: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, document, _output = run(capsys, tmp_path, work["candidate"], work["v2"], champion=work["candidate"])
    assert code == 0 and document is not None
    assert document["verdict"] == "pass" and document["clearly_better"] is False
    assert document["macro_f1_difference"] | {"resamples": 0} == {
        "estimate": 0.0,
        "low": 0.0,
        "high": 0.0,
        "resamples": 0,
        "confidence": 0.95,
        "seed": 0,
    }
    assert document["rows"]["excluded_seen_by_champion"] == 0  # its own held-out patients: never trained on
    assert document["candidate"] | {"source": ""} == document["champion"] | {"source": ""}


def test_a_first_model_is_held_to_the_floors(
    work: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, document, _output = run(capsys, tmp_path / "a", work["candidate"], work["v2"], "--bootstrap", "10")
    assert code == 0 and document is not None
    assert document["verdict"] == "pass" and document["clearly_better"] is False and document["champion"] is None
    assert [c["name"] for c in document["checks"]] == ["macro_f1", "rare_recall"]
    assert all(c["champion"] is None and c["limit"] == 0.0 for c in document["checks"])
    assert document["macro_f1_difference"] == {"estimate": None, "low": None, "high": None}
    assert all(g["status"] == "no champion" and not g["judged"] for g in document["groups"])
    assert document["leakage_checked"] is None and document["rows"]["excluded_seen_by_champion"] == 0
    assert document["tolerances"] == {**Tolerances().__dict__}
    assert set(document) >= {"dataset", "seconds", "candidate", "groups", "rows", "tolerances", "verdict", "reasons"}
    assert document["dataset"]["matches_candidate"] is True and document["dataset"]["rows"]["table"] == 480
    code, document, _output = run(
        capsys, tmp_path / "b", work["candidate"], work["v2"], "--min-macro-f1", "0.999", "--bootstrap", "10"
    )
    assert code == 0 and document is not None and document["verdict"] == "reject"
    assert document["tolerances"]["min_macro_f1"] == 0.999
    assert document["reasons"] == [f"macro-F1 {document['candidate']['macro_f1']:.4f} is below the floor 0.9990"]


def _tampered_seed(work: dict[str, Path], tmp_path: Path) -> tuple[Path, Path]:
    candidate = tmp_path / "candidate"
    shutil.copytree(work["candidate"], candidate)
    manifest = json.loads((candidate / "model.json").read_text())
    manifest["held_out"]["seed"] = 1
    (candidate / "model.json").write_text(json.dumps(manifest))
    return candidate, work["v2"]


def _changed_table(work: dict[str, Path], tmp_path: Path) -> tuple[Path, Path]:
    table = pd.read_parquet(work["v2"])
    table = table[~table[PATIENT_ID].isin(table[PATIENT_ID].drop_duplicates().iloc[::7])]
    return work["candidate"], write_table(tmp_path / "changed.csv", table)


def _no_record(work: dict[str, Path], tmp_path: Path) -> tuple[Path, Path]:
    candidate = tmp_path / "candidate"
    shutil.copytree(work["candidate"], candidate)
    manifest = json.loads((candidate / "model.json").read_text())
    del manifest["held_out"]
    (candidate / "model.json").write_text(json.dumps(manifest))
    return candidate, work["v2"]


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (_tampered_seed, "dxops-compare: held-out split mismatch"),
        (_changed_table, "dxops-compare: held-out split mismatch"),
        (_no_record, "model.json records no held-out split"),
    ],
)
def test_a_split_that_cannot_be_verified_fails_loudly(
    work: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], tamper: Any, message: str
) -> None:
    candidate, data = tamper(work, tmp_path)
    code, document, output = run(capsys, tmp_path / "out", candidate, data, champion=work["champion"])
    assert code == 1 and document is None  # no verdict without a verified split
    assert message in output
    assert_no_identifier(work["v2"], output)


def test_an_altered_training_patients_file_is_refused(
    work: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    champion = tmp_path / "champion"
    shutil.copytree(work["champion"], champion)
    (champion / TRAINING_PATIENTS).write_bytes(gzip.compress(b"0123456789abcdef\n"))
    code, _document, output = run(capsys, tmp_path / "out", work["candidate"], work["v2"], champion=champion)
    assert code == 1 and "does not match its SHA-256" in output


def _model_tar(model: Path, folder: Path) -> None:
    """As a SageMaker training job uploads the model directory: its files at the archive's root."""
    folder.mkdir(parents=True)
    with tarfile.open(folder / "model.tar.gz", "w:gz") as archive:
        for path in sorted(model.iterdir()):
            archive.add(path, arcname=path.name)


def test_the_processing_job_contract(
    work: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    container = tmp_path / "container"  # stands for the container's "/"
    processing = container / "opt" / "ml" / "processing"
    _model_tar(work["candidate"], processing / "input" / "candidate")
    _model_tar(work["bad_champion"], processing / "input" / "champion")
    # The curated table's layout: Parquet partitioned by source (Hive folders).
    pd.read_parquet(work["v2"]).to_parquet(processing / "input" / "data", partition_cols=["source"], index=False)
    config = container / "opt" / "ml" / "config" / "processingjobconfig.json"
    config.parent.mkdir(parents=True)
    inputs = [
        {
            "InputName": name,
            "S3Input": {"S3Uri": f"s3://bucket/{name}/", "LocalPath": f"/opt/ml/processing/input/{name}"},
        }
        for name in ("candidate", "champion", "data")
    ]
    config.write_text(json.dumps({"ProcessingInputs": inputs}))
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("DXOPS_", "LOCALCLOUD_"))},
        "LOCALCLOUD_CONTAINER_ROOT": str(container),  # as the local cloud runs a processing job
        "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "shared"), str(ROOT)]),
    }
    command = [sys.executable, "-m", "ml.compare", "--bootstrap", "200"]
    done = subprocess.run(command, env=env, check=False, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    output = processing / "output"
    document = json.loads((output / COMPARISON_JSON).read_text())
    assert document["verdict"] == "pass" and document["clearly_better"] is True
    assert (
        document["dataset"]["uri"] == "s3://bucket/data/"
        and document["candidate"]["source"] == "s3://bucket/candidate/"
    )
    assert document["macro_f1_difference"]["resamples"] == 200
    assert document["rows"]["held_out"] == json.loads((work["candidate"] / "model.json").read_text())["rows"]["test"]
    assert_no_identifier(work["v2"], done.stdout, done.stderr, *(p.read_text() for p in output.iterdir()))
    # A failure (another table: v1 as one CSV): the reason in /opt/ml/output/message (the job's
    # ExitMessage), exit status 1, no comparison. In this process, with the override of the root.
    shutil.rmtree(processing / "input" / "data")
    shutil.rmtree(output)
    write_table(processing / "input" / "data" / "table.csv", pd.read_parquet(work["v1"]))
    monkeypatch.setenv("DXOPS_PROCESSING_ROOT", str(processing))
    assert main([]) == 1
    captured = capsys.readouterr()
    message = (container / "opt" / "ml" / "output" / "message").read_text()
    assert message.startswith("dxops-compare: held-out split mismatch") and message in captured.err
    assert not (output / COMPARISON_JSON).exists()
    assert_no_identifier(work["v1"], captured.out, captured.err)


def test_the_bootstrap_macro_f1_is_scikit_learns() -> None:
    rng = np.random.default_rng(3)
    truth, predicted = rng.integers(0, 6, 200), rng.integers(0, 7, 200)
    weights = np.bincount(rng.integers(0, 200, 200), minlength=200).astype(np.float64)
    expected = f1_score(
        np.repeat(truth, weights.astype(int)), np.repeat(predicted, weights.astype(int)), average="macro"
    )
    assert macro_f1_weighted(truth, predicted, weights, 7) == pytest.approx(expected)
    assert macro_f1_weighted(truth, predicted, np.ones(200), 7) == pytest.approx(
        f1_score(truth, predicted, average="macro")
    )


def test_a_group_too_small_is_reported_not_judged() -> None:
    groups = {"sex=female": np.array([True] * 19 + [False]), "sex=male": np.ones(20, dtype=bool)}
    empty = np.array([], dtype=object)
    ours = Evaluation({}, empty, {"sex=female": 0.1, "sex=male": 0.5})
    theirs = Evaluation({}, empty, {"sex=female": 0.9, "sex=male": 0.56})
    table, checks = group_table(groups, ours, theirs, Tolerances())
    assert [(g["group"], g["judged"], g["passed"]) for g in table] == [
        ("sex=female", False, None),
        ("sex=male", True, False),
    ]
    assert table[0]["status"] == "too small to judge (fewer than 20 rows)"
    assert [c["name"] for c in checks] == ["group_recall:sex=male"]
    table, checks = group_table(groups, ours, theirs, Tolerances(group_recall=0.06))
    assert table[1]["passed"] is True and checks[0]["limit"] == 0.5
