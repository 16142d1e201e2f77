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
from pathlib import Path
from typing import Any

from ml.model import DiagnosisModel, ModelError
from ml.report import write_report
from ml.scoring import score_rows
from ml.table import TableError, labelled, read_table


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
