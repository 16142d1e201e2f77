"""dxops-evaluate: a model on a labelled table -> metrics.json and a report with plots.

    dxops-evaluate --model MODEL_DIR --data TABLE --out DIR

DIR/metrics.json: accuracy, macro_f1, weighted_f1, balanced_accuracy, auc_macro_ovr,
top3_accuracy, ece, brier, per_class {label: {recall, precision, f1, support}}, groups (rare /
common), bootstrap intervals, and the rows scored. DIR/report.md with PNG plots (confusion
matrix, recall against support, ROC, calibration). Unlabelled rows are left out (counted).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ml.metrics import bootstrap_intervals, classification_metrics, is_rare_code
from ml.model import DiagnosisModel, ModelError
from ml.report import write_report
from ml.table import LABEL, TableError, labelled, read_table

DECISION_INTERVALS = ("accuracy", "balanced_accuracy", "macro_f1", "top3_accuracy")
CALIBRATION = ("ece", "brier", "log_loss", "auc_macro_ovr")


@dataclass(frozen=True)
class Scored:
    """A model's metrics on labelled rows: ranking metrics from its decisions (the order it shows,
    threshold correction included), calibration and AUC from its calibrated probabilities."""

    truth: list[str]
    classes: list[str]  # the model's classes and the rows' labels, then "(other)": every other disease
    calibrated: NDArray[np.float64]
    decisions: NDArray[np.float64]
    rare: set[str]
    metrics: dict[str, Any]
    intervals: dict[str, Any]


def score_rows(model: DiagnosisModel, rows: pd.DataFrame, seed: int = 0) -> Scored:
    truth = rows[LABEL].astype(str).tolist()
    columns = sorted(set(model.classes) | set(truth))
    classes = [*columns, "(other)"]
    rare = {label for label in columns if is_rare_code(label)}
    calibrated, decisions = model.probability_matrices(rows, columns)
    metrics = classification_metrics(truth, decisions, classes, rare=rare)
    calibration = classification_metrics(truth, calibrated, classes, rare=rare, top_k=(1,))
    metrics.update({key: calibration[key] for key in CALIBRATION})
    intervals = bootstrap_intervals(truth, decisions, classes, metrics=DECISION_INTERVALS, seed=seed)
    intervals.update(bootstrap_intervals(truth, calibrated, classes, metrics=("auc_macro_ovr", "ece"), seed=seed))
    return Scored(truth, classes, calibrated, decisions, rare, metrics, intervals)


def evaluate(model: DiagnosisModel, data: Path, out: Path) -> dict[str, Any]:
    started = time.perf_counter()
    table = read_table(data)
    rows = labelled(table)
    if rows.empty:
        raise TableError("no labelled row to evaluate on")
    print(f"[dxops-evaluate] scoring {len(rows)} labelled rows of {len(table)}", file=sys.stderr, flush=True)
    scored = score_rows(model, rows)
    metrics = {
        **scored.metrics,
        "intervals": scored.intervals,
        "model_version": model.version,
        "threshold_correction": model.weights.threshold,
        "rows": {"table": len(table), "labelled": len(rows), "unlabelled": len(table) - len(rows)},
        "seconds": round(time.perf_counter() - started, 1),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    write_report(
        out,
        title=f"dxops model {model.version} on {data.name}",
        y_true=scored.truth,
        proba=scored.calibrated,
        decisions=scored.decisions,
        classes=scored.classes,
        metrics=scored.metrics,
        intervals=scored.intervals,
        rare=scored.rare,
    )
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dxops-evaluate", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", type=Path, required=True, help="a model directory (dxops-train)")
    parser.add_argument("--data", type=Path, required=True, help="a labelled table: Parquet or CSV")
    parser.add_argument("--out", type=Path, required=True, help="folder for metrics.json and the report")
    args = parser.parse_args(argv)
    try:
        metrics = evaluate(DiagnosisModel.load(args.model), args.data, args.out)
    except (ModelError, TableError) as error:
        print(f"dxops-evaluate: {error}", file=sys.stderr)
        return 2
    summary = {key: metrics[key] for key in ("accuracy", "macro_f1", "top3_accuracy", "ece")}
    print(json.dumps({"out": str(args.out), **summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
