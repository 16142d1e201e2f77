"""dxops-monitor: late labels joined to predictions, a quality drop detected (and none with
correct labels), and the processing contract end to end on a small trained model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ml.live_quality import QualityConfig, join, quality
from ml.monitor import main
from ml.train import TrainConfig, train
from tests.unit.ml.tables import clinical_table, write_table

CLASSES = [f"ICD10:A{i:02d}" for i in range(8)] + ["ORPHA:1", "ORPHA:2"]
REFERENCE = {"macro_f1": 0.8, "rare_recall": 0.7, "ece": 0.05, "accuracy": 0.8}


def _served(n: int, accuracy: float, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    predictions, diagnoses = [], []
    for i in range(n):
        truth = CLASSES[int(rng.integers(len(CLASSES)))]
        right = rng.random() < accuracy
        top = truth if right else CLASSES[(CLASSES.index(truth) + 1) % len(CLASSES)]
        predictions.append(
            {
                "prediction_id": f"p{i}",
                "record_id": f"r{i}",
                "source": "site-a",
                "served_at": f"2025-01-01T00:{i % 60:02d}:00Z",
                "predicted": [{"code": top, "probability": accuracy}],
            }
        )
        by_id = i % 2 == 0  # half named by prediction id, half by (source, record id)
        diagnosis = {
            "prediction_id": f"p{i}" if by_id else None,
            "record_id": None if by_id else f"r{i}",
            "source": "site-a",
            "code": truth,
            "confirmed_at": "2025-02-01",
            "received_at": "2025-02-01T00:00:00Z",
        }
        diagnoses.append(diagnosis)
        if i % 10 == 0:
            diagnoses.append(dict(diagnosis))  # stored twice
    return predictions, diagnoses


def test_correct_labels_show_no_drop_and_wrong_ones_do() -> None:
    config = QualityConfig(min_labels=50)
    good = quality(join(*_served(300, 0.8, 1))[0], REFERENCE, config)
    assert good["status"] == "ok" and good["labelled"] == 300
    bad = quality(join(*_served(300, 0.5, 2))[0], REFERENCE, config)
    assert bad["status"] == "drop" and bad["macro_f1_drop"] > 0.2
    few = quality(join(*_served(30, 0.3, 3))[0], REFERENCE, config)
    assert few["status"] == "insufficient_labels"


def test_the_latest_diagnosis_wins_and_duplicates_count_once() -> None:
    predictions, diagnoses = _served(10, 1.0, 4)
    corrected = {**diagnoses[0], "code": "ICD10:Z99", "confirmed_at": "2025-03-01"}
    pairs, unmatched = join(predictions, [*diagnoses, corrected, {**diagnoses[1], "prediction_id": "nope"}])
    assert len(pairs) == 10 and unmatched == 1
    assert dict((p["prediction_id"], code) for p, code in pairs)["p0"] == "ICD10:Z99"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("monitor")
    write_table(folder / "table.csv", clinical_table(240, seed=3))
    train(
        folder / "table.csv",
        folder / "model",
        TrainConfig.from_hyperparameters({"candidates": "logreg+class_weights", "threads": "1"}),
    )
    return folder / "model"


def test_the_processing_job_contract(model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ml.model import DiagnosisModel

    model = DiagnosisModel.load(model_dir)
    root = tmp_path / "processing"
    records = [
        {
            "record_id": f"r{i}",
            "sex": "female",
            "age_years": 40.0 + i % 30,
            "history": [],
            "labs": [],
            "vitals": [],
            "phenotypes": [{"hpo_id": "HP:0000822", "status": "observed"}],
        }
        for i in range(150)
    ]
    served = model.predict_records(records, top_k=3, explain=False)
    lines = [
        json.dumps(
            {
                "prediction_id": f"p{i}",
                "request_id": "q",
                "record_id": record["record_id"],
                "source": "site-a",
                "patient_pseudonym": f"SECRET-{i}",
                "pseudonym_key_id": "k",
                "model_version": model.version,
                "predicted": [
                    {"code": d.disease_id, "name": d.name, "probability": d.probability} for d in p.diagnoses
                ],
                "rare_candidates": [],
                "served_at": "2025-01-01T10:00:00Z",
                "inputs": record,
            }
        )
        for i, (record, p) in enumerate(zip(records, served, strict=True))
    ]
    (root / "input" / "predictions" / "date=2025-01-01").mkdir(parents=True)
    (root / "input" / "predictions" / "date=2025-01-01" / "q.ndjson").write_text("\n".join([*lines, "{bad"]) + "\n")
    (root / "input" / "diagnoses").mkdir(parents=True)
    (root / "input" / "diagnoses" / "b.ndjson").write_text(
        "\n".join(
            json.dumps(
                {
                    "batch_id": "b",
                    "prediction_id": f"p{i}",
                    "record_id": None,
                    "source": "site-a",
                    "patient_pseudonym": None,
                    "pseudonym_key_id": None,
                    "code": "ICD10:E11.9",
                    "confirmed_at": "2025-01-05",
                    "received_at": "2025-01-05T00:00:00Z",
                }
            )
            for i in range(60)
        )
        + "\n"
    )
    import shutil

    shutil.copytree(model_dir, root / "input" / "model")
    monkeypatch.setenv("DXOPS_PROCESSING_ROOT", str(root))
    assert main(["--window-start", "2025-01-01T00:00:00Z", "--window-end", "2025-01-02T00:00:00Z"]) == 0
    document = json.loads((root / "output" / "monitoring.json").read_text())
    assert document["counts"]["predictions_in_window"] == 150
    assert document["counts"]["malformed_skipped"] == {"prediction: not JSON": 1}
    assert document["drift"]["status"] == "drift"  # one phenotype, one sex: far from the training rows
    assert document["quality"]["labelled"] == 60
    text = (root / "output" / "monitoring.json").read_text() + (root / "output" / "monitoring.md").read_text()
    assert "SECRET" not in text and '"r1"' not in text


def test_a_model_without_a_baseline_cannot_be_monitored(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    (copy / "drift_baseline.json").unlink()
    assert main(["--model", str(copy), "--predictions", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    assert "drift_baseline.json" in capsys.readouterr().err


def test_expanded_records_never_bring_the_ontologys_roots_as_terms() -> None:
    """An ETL table has no column for the root or the sub-ontology roots (dxops.vocab.hpo): the
    records of a window expanded along the ontology must not bring them either, or every window of
    an expanded model would drift on HP:0000001."""
    from dxops.vocab.hpo import hpo_parents, uninformative_terms
    from ml.drift_profile import record_terms
    from ml.knowledge import KnowledgeModel

    knowledge = KnowledgeModel([], hpo_parents())  # the ontology alone: its ancestors
    record = {"phenotypes": [{"hpo_id": "HP:0001250", "status": "observed"}]}  # seizure
    terms = record_terms([record], knowledge.ancestors)
    assert "HP:0001250" in terms and "HP:0012638" in terms  # the term and an informative ancestor
    assert not terms & uninformative_terms(hpo_parents())
    assert {"HP:0000001", "HP:0000118"} <= uninformative_terms(hpo_parents())
