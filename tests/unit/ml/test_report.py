"""The evaluation report: report.md with its tables, four PNG plots it links to, nothing per patient."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

# The report is tooling (dxops-evaluate, make demo): matplotlib is in the dev environment, not in
# the SageMaker image's (make ml-compat runs these tests there too and skips this file).
pytest.importorskip("matplotlib")

from ml.metrics import bootstrap_intervals, classification_metrics, rare_labels
from ml.report import PLOTS, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(7)
    n, n_classes = 400, 30
    classes = [f"ORPHA:{i}" if i % 3 == 0 else f"ICD10:X{i:02d}" for i in range(n_classes)]
    weights = 1 / np.arange(1, n_classes + 1)
    truth = rng.choice(n_classes, size=n, p=weights / weights.sum())
    logits = rng.normal(size=(n, n_classes))
    logits[np.arange(n), truth] += 2.0
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y_true = [classes[i] for i in truth]
    y_true[:4] = ["OMIM:999"] * 4  # a disease the model has no class for
    rare = rare_labels({*y_true, *classes})
    metrics = classification_metrics(y_true, proba, classes, rare=rare)
    intervals = bootstrap_intervals(y_true, proba, classes, n_boot=20)
    return write_report(
        tmp_path_factory.mktemp("report") / "out",
        title="Model 7 on the test split",
        y_true=y_true,
        proba=proba,
        classes=classes,
        metrics=metrics,
        intervals=intervals,
        extra_sections={"Model selection": "| Candidate | Macro F1 |\n|---|---:|\n| xgboost | 0.41 |\n"},
        rare=rare,
    )


def test_report_and_plots_are_written(report: Path) -> None:
    assert report.name == "report.md"
    assert sorted(p.name for p in report.parent.iterdir()) == sorted(["report.md", *PLOTS.values()])
    text = report.read_text(encoding="utf-8")
    for name in PLOTS.values():
        png = (report.parent / name).read_bytes()
        assert png.startswith(PNG_SIGNATURE), name
        assert len(png) > 10_000, name  # a drawn plot, not an empty canvas
        assert f"]({name})" in text, name


def test_report_tables(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    assert text.startswith("# Model 7 on the test split\n")
    assert "400 evaluation rows, 30 model classes" in text
    assert re.search(r"\| Accuracy \| 0\.\d{4} \| \[0\.\d{4}, 0\.\d{4}\] \|", text)
    assert re.search(r"\| rare \| \d+ \| 0\.\d{4} \|", text) and re.search(r"\| common \| \d+ \| 0\.\d{4} \|", text)
    worst = text.split("### Worst 20 recalls")[1].split("###")[0]
    best = text.split("### Best 10 recalls")[1].split("##")[0]
    assert worst.count("\n| ") == 21 and best.count("\n| ") == 11  # header + rows, not every class
    assert "| OMIM:999 | rare, not a model class | 4 | 0.0000 |" in worst
    assert text.endswith("## Model selection\n\n| Candidate | Macro F1 |\n|---|---:|\n| xgboost | 0.41 |\n\n")
