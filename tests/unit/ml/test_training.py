"""The training job: container contract, splits, resampling inside folds, reproducibility, the
artifact, and the inference round trip on it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import ml.candidates
from dxops.vocab.training_metrics import METRIC_DEFINITIONS
from ml import inference
from ml.candidates import Candidate, Settings, SupervisedModel
from ml.imbalance import oversample
from ml.model import DiagnosisModel, ModelError
from ml.table import LABEL, PATIENT_ID, TableError, column_roles, conform, labelled, read_table
from ml.train import TrainConfig, Trainer, train
from ml.validation import cv_folds, holdout_split
from tests.unit.ml.tables import clinical_table, rare_diseases, write_table

ROOT = Path(__file__).resolve().parents[3]
FAST = {"candidates": "logreg+class_weights,xgboost+none", "xgb_rounds": "10", "forest_trees": "20", "threads": "1"}


@pytest.fixture(scope="module")
def table_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_table(tmp_path_factory.mktemp("data") / "table.parquet", clinical_table(360, seed=3))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, table_path: Path) -> Path:
    out = tmp_path_factory.mktemp("model")
    train(table_path, out, TrainConfig.from_hyperparameters(FAST))
    return out


def test_the_training_script_runs_under_the_sagemaker_container_contract(tmp_path: Path, table_path: Path) -> None:
    channel, model, output = tmp_path / "input" / "data" / "train", tmp_path / "model", tmp_path / "output"
    # The Glue ETL's layout: a folder of Parquet files partitioned by source, with the curated
    # table's reserved date and timestamp columns.
    frame = pd.read_parquet(table_path)
    frame["encounter_date"] = pd.Timestamp("2026-01-02").date()
    frame["ingested_at"] = pd.Timestamp("2026-01-03T04:05:06Z")
    frame["label_status"] = "confirmed"
    frame.to_parquet(channel, partition_cols=["source"], index=False)
    env = {
        **os.environ,
        "SM_MODEL_DIR": str(model),
        "SM_CHANNEL_TRAIN": str(channel),
        "SM_OUTPUT_DIR": str(output),
        "SM_HPS": json.dumps({**FAST, "dataset_version": "v-test"}),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "shared"), str(ROOT)]),
    }
    # The toolkit also passes each hyperparameter as an argument (script mode).
    arguments = [part for key, value in sorted(FAST.items()) for part in (f"--{key}", value)]
    run = subprocess.run(
        [sys.executable, "-m", "ml.train", *arguments],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert {"model.json", "supervised.joblib", "evaluation.json", "model_card.md"} <= {p.name for p in model.iterdir()}
    manifest = json.loads((model / "model.json").read_text())
    assert manifest["dataset_version"] == "v-test" and manifest["seed"] == 0 and manifest["code_version"]
    assert manifest["rows"]["table"] == len(frame) and not manifest["column_roles"]["ignored"].keys() - {"note"}
    # Every metric definition matches a line the job printed.
    for definition in METRIC_DEFINITIONS:
        assert re.search(definition["Regex"], run.stdout), definition["Name"]
    for row in pd.read_parquet(table_path)[PATIENT_ID].head(50):
        assert row not in run.stdout and row not in run.stderr  # no identifier in the job's output


def test_a_failing_job_writes_its_reason_where_sagemaker_reads_it(tmp_path: Path) -> None:
    channel = tmp_path / "train"
    write_table(channel / "table.csv", clinical_table(40).drop(columns=[PATIENT_ID]))
    env = {
        **os.environ,
        "SM_MODEL_DIR": str(tmp_path / "model"),
        "SM_CHANNEL_TRAIN": str(channel),
        "SM_OUTPUT_DIR": str(tmp_path / "output"),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "shared"), str(ROOT)]),
    }
    run = subprocess.run(
        [sys.executable, "-m", "ml.train"], env=env, check=False, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 2
    assert "missing required column(s): patient_id" in (tmp_path / "output" / "failure").read_text()


def test_the_inference_round_trip_on_the_artifact(model_dir: Path, table_path: Path) -> None:
    model = inference.model_fn(str(model_dir))
    rare = rare_diseases()[0]
    case = read_table(table_path).query("label == @rare").iloc[0]
    observed = [name for name in case.index if name.startswith("HP:") and case[name] == 1]
    records = [
        {  # a full record: labs in another unit (mmol/L glucose), history, vitals
            "record_id": "r-1",
            "sex": "female",
            "age_years": 61,
            "phenotypes": [{"hpo_id": "HP:0000822", "status": "observed"}],
            "labs": [
                {"loinc": "2345-7", "value": 11.0, "unit": "mmol/L"},
                {"loinc": "4548-4", "value": 9.1, "unit": "%"},
            ],
        },
        {  # phenotype-only: no labs, no history, no demographics
            "record_id": "r-2",
            "phenotypes": [{"hpo_id": term} for term in observed],
        },
    ]
    body = inference.input_fn(json.dumps({"records": records, "top_k": 5}), "application/json")
    answer, media_type = inference.output_fn(inference.predict_fn(body, model), "application/json")
    document = json.loads(answer)
    assert media_type == "application/json" and document["model_version"] == model.version
    first, second = document["predictions"]
    assert [p["record_id"] for p in document["predictions"]] == ["r-1", "r-2"]
    for prediction in (first, second):
        probabilities = [d["probability"] for d in prediction["diagnoses"]]
        assert len(probabilities) == 5 and probabilities == sorted(probabilities, reverse=True)
        assert 0 < sum(probabilities) <= 1.0 + 1e-6
        assert prediction["rare_candidates"] and all(
            c["disease_id"].split(":")[0] in ("ORPHA", "OMIM") for c in prediction["rare_candidates"]
        )
    assert first["diagnoses"][0]["disease_id"] == "ICD10:E11.9"  # high glucose and HbA1c
    assert any(c["feature"].startswith(("2345-7", "4548-4")) for c in first["contributions"])
    assert second["diagnoses"][0]["disease_id"] == rare
    assert rare in [c["disease_id"] for c in second["rare_candidates"]]


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        ("{not json", "application/json", "body is not JSON"),
        ("[]", "application/json", "expected 1 to 1000 records"),
        ('{"records": [{}], "top_k": 0}', "application/json", "top_k"),
        ("{}", "text/csv", "content type"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(body: str, content_type: str, message: str) -> None:
    with pytest.raises(inference.RequestError, match=message):
        inference.input_fn(body, content_type)


def test_a_bad_record_is_refused_with_its_position(model_dir: Path) -> None:
    model = inference.model_fn(str(model_dir))
    body = inference.input_fn('[{"phenotypes": []}, {"labs": [{"loinc": "2345-7", "value": "high"}]}]')
    with pytest.raises(inference.RequestError, match=r"records\[1\]\.labs\[0\]\.value"):
        inference.predict_fn(body, model)


def test_an_altered_artifact_is_refused(tmp_path: Path, model_dir: Path) -> None:
    copy = tmp_path / "model"
    copy.mkdir()
    for path in model_dir.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    (copy / "supervised.joblib").write_bytes((copy / "supervised.joblib").read_bytes() + b"\0")
    with pytest.raises(ModelError, match="does not match its SHA-256"):
        DiagnosisModel.load(copy)


def test_the_same_seed_gives_the_same_model(tmp_path: Path, table_path: Path, model_dir: Path) -> None:
    again = tmp_path / "again"
    train(table_path, again, TrainConfig.from_hyperparameters(FAST))
    first, second = (json.loads((d / "model.json").read_text()) for d in (model_dir, again))
    assert first == second  # includes the SHA-256 of the fitted model
    frame = read_table(table_path).head(40)
    a, b = DiagnosisModel.load(model_dir), DiagnosisModel.load(again)
    first, second = a.metric_matrices(frame, a.classes), b.metric_matrices(frame, b.classes)
    assert first[0] == second[0]
    for first_matrix, second_matrix in zip(first[1:], second[1:], strict=True):
        assert np.array_equal(first_matrix, second_matrix)


def test_another_seed_gives_another_model(tmp_path: Path, table_path: Path, model_dir: Path) -> None:
    other = tmp_path / "other"
    train(table_path, other, TrainConfig.from_hyperparameters({**FAST, "seed": "1"}))
    first, second = (json.loads((d / "model.json").read_text()) for d in (model_dir, other))
    assert first["supervised_sha256"] != second["supervised_sha256"] and second["seed"] == 1


def test_no_patient_is_on_both_sides_of_a_split() -> None:
    frame = labelled(clinical_table(300, seed=5, records_per_patient=3))
    labels, groups = frame[LABEL].to_numpy(dtype=str), frame[PATIENT_ID].to_numpy(dtype=str)
    train_rows, test_rows = holdout_split(labels, groups, 0.2, seed=0)
    assert not set(groups[train_rows]) & set(groups[test_rows])
    assert len(train_rows) + len(test_rows) == len(frame)
    folds = cv_folds(labels[train_rows], groups[train_rows], k=3, repeats=2, seed=0)
    assert len(folds) == 6
    for fold in folds:
        assert not set(groups[train_rows][fold.train]) & set(groups[train_rows][fold.valid])


def test_a_patient_with_several_diagnoses_is_on_one_side_only() -> None:
    """A patient with a common diagnosis and a rare one seen in no other patient: all of the
    patient's records stay in training (the rare class cannot be tested)."""
    labels = np.array(["A"] * 40 + ["B"] * 20 + ["A", "RARE"])
    groups = np.array([f"a{i}" for i in range(40)] + [f"b{i}" for i in range(20)] + ["both", "both"])
    for seed in range(8):
        train_rows, test_rows = holdout_split(labels, groups, 0.25, seed=seed)
        assert "both" not in set(groups[test_rows]) and not set(groups[train_rows]) & set(groups[test_rows])


def test_a_table_where_no_class_has_two_patients_is_refused() -> None:
    labels, groups = np.array(["A", "B", "C"]), np.array(["p1", "p2", "p3"])
    with pytest.raises(TableError, match="no class has 2 or more patients"):
        holdout_split(labels, groups, 0.2, seed=0)


def test_a_class_with_a_single_patient_stays_in_training() -> None:
    labels = np.array(["A"] * 40 + ["B"] * 20 + ["RARE"] * 3)
    groups = np.array([f"a{i}" for i in range(40)] + [f"b{i}" for i in range(20)] + ["one-patient"] * 3)
    for seed in range(5):
        train_rows, test_rows = holdout_split(labels, groups, 0.25, seed=seed)
        assert "RARE" not in set(labels[test_rows])  # 3 records, 1 patient: cannot be learnt and tested
        assert (labels[train_rows] == "RARE").sum() == 3
        assert {"A", "B"} <= set(labels[test_rows])


def test_smote_never_sees_validation_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = labelled(clinical_table(240, seed=4))
    roles = column_roles(frame)
    prepared = pd.concat([frame[[LABEL, PATIENT_ID]], conform(frame, roles)], axis=1)
    seen: list[set[int]] = []
    fitted_on: list[set[int]] = []
    original_fit, original_oversample = SupervisedModel.fit, ml.candidates.oversample

    def fit(self: SupervisedModel, rows: pd.DataFrame, labels: Any) -> SupervisedModel:
        fitted_on.append(set(rows.index))
        return original_fit(self, rows, labels)

    def oversample(matrix: Any, labels: Any, **options: Any) -> Any:
        seen.append(fitted_on[-1])  # the rows of the fit that is resampling
        assert matrix.shape[0] == len(fitted_on[-1])  # and only those rows
        return original_oversample(matrix, labels, **options)

    monkeypatch.setattr(SupervisedModel, "fit", fit)
    monkeypatch.setattr(ml.candidates, "oversample", oversample)
    config = TrainConfig.from_hyperparameters(
        {"candidates": "xgboost+smote", "xgb_rounds": "5", "repeats": "1", "threads": "1"}
    )
    results, cv = Trainer(config).cross_validate(prepared, roles)
    folds = [fold for fold, _classes, _proba in cv["pieces"]["xgboost+smote"]]
    assert len(seen) == len(folds) == 3
    for rows, fold in zip(seen, folds, strict=True):
        assert rows == set(fold.train) and not rows & set(fold.valid)
    assert results[0].name == "xgboost+smote"


def test_smote_brings_small_classes_up_and_leaves_single_cases() -> None:
    rng = np.random.default_rng(0)
    matrix = sp.csr_matrix(rng.normal(size=(60, 4)).astype(np.float32))
    labels = np.array([0] * 50 + [1] * 6 + [2] * 3 + [3] * 1)
    resampled, new_labels = oversample(matrix, labels, target=20, categorical_indices=[], seed=0)
    counts = np.bincount(new_labels)
    assert counts.tolist() == [50, 20, 20, 1]
    assert (resampled[:60] != matrix).nnz == 0  # the original rows first, untouched


def test_hyperparameters_arrive_as_strings_and_unknown_ones_are_refused() -> None:
    config = TrainConfig.from_hyperparameters({"folds": "4", "xgb_eta": "0.2", "candidates": "forest+none"})
    assert config.folds == 4 and config.settings.xgb_eta == 0.2 and config.candidates == ("forest+none",)
    with pytest.raises(ValueError, match="unknown hyperparameter 'fold'"):
        TrainConfig.from_hyperparameters({"fold": "4"})
    with pytest.raises(ValueError, match="focal loss is an XGBoost objective"):
        TrainConfig.from_hyperparameters({"candidates": "logreg+focal"})


def test_column_roles_follow_the_documented_format() -> None:
    frame = clinical_table(80)
    frame["admitted"] = pd.Timestamp("2026-01-02").date()  # a date column of a hospital export
    roles = column_roles(frame)
    assert all(name.startswith("HP:") for name in roles.phenotypes)
    assert set(roles.numeric) == {"age_years", "2345-7", "4548-4", "1988-5", "6690-2", "718-7", "2276-4"}
    assert set(roles.categorical) == {"sex", "smoker"}
    assert "note" in roles.ignored and "source" not in roles.features and LABEL not in roles.features
    assert roles.ignored["admitted"].startswith("date or time")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_table_with_bad_phenotype_values_is_refused_without_quoting_them(tmp_path: Path, suffix: str) -> None:
    frame = clinical_table(60)
    frame["HP:0000822"] = frame["HP:0000822"].astype(object)
    frame.loc[0, "HP:0000822"] = "present"
    frame.loc[1, "HP:0000822"] = 2
    with pytest.raises(TableError, match=r"column HP:0000822: 2 value\(s\) are not 1, -1, 0 or empty") as error:
        read_table(write_table(tmp_path / f"t{suffix}", frame.astype({"HP:0000822": str})))
    assert "present" not in str(error.value)


def test_ids_and_labels_read_alike_from_any_format(tmp_path: Path) -> None:
    frame = clinical_table(60)
    frame["label"] = [float(i % 3) for i in range(len(frame))]  # numeric codes, stored as floats
    frame.loc[0, "patient_id"] = None
    frame["name"] = [f"Person {i % 4}" for i in range(len(frame))]  # few distinct values, but an identifier
    for suffix in (".csv", ".parquet"):
        table = read_table(write_table(tmp_path / f"t{suffix}", frame))
        assert set(table["label"]) == {"0", "1", "2"}
        assert table.loc[0, "patient_id"] == "record:r00000"  # its own patient
        assert column_roles(table).ignored["name"].startswith("named as a direct identifier")


def test_every_candidate_fits_and_predicts() -> None:
    frame = labelled(clinical_table(160, seed=6))
    roles = column_roles(frame)
    classes = sorted(set(frame[LABEL]))
    y = np.array([classes.index(label) for label in frame[LABEL]])
    for name in ("logreg+none", "forest+class_weights", "xgboost+focal", "xgboost+smote"):
        model = SupervisedModel(Candidate.parse(name), roles, Settings(xgb_rounds=10, forest_trees=10, threads=1))
        proba = model.fit(conform(frame, roles), y).predict_proba(conform(frame, roles))
        assert proba.shape == (len(frame), len(classes)) and np.allclose(proba.sum(axis=1), 1)
        assert (proba.argmax(axis=1) == y).mean() > 0.6, name  # learns the training rows


def test_a_refused_request_is_an_http_400_for_the_serving_toolkit() -> None:
    with pytest.raises(inference.RequestError) as error:
        inference.input_fn("{not json")
    assert error.value.status_code == 400 and error.value.message.startswith("body is not JSON")
