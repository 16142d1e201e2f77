"""dxops-monitor: the scheduled drift and live-quality check of the champion model.

    dxops-monitor --model DIR --predictions DIR [--diagnoses DIR] [--data TABLE] --out DIR
                  [--model-version V] [--window-start ISO] [--window-end ISO] [settings]

Drift (ml/drift.py, ml/drift_profile.py): the prediction inputs served by `--model-version` in the
window (StoredPrediction NDJSON lines, any nesting of *.ndjson files), or a curated table
(`--data`: a new dataset version, the only place device aggregates appear), against the model's
drift_baseline.json; features and predictions (top-1 class and probability) together, and the
presentation (each term's prevalence among the rows predicted as a class) apart.
Quality (ml/live_quality.py): every given prediction of that version with a confirmed diagnosis
(StoredDiagnosis lines), against the model's held-out figures (evaluation.json).

OUT/monitoring.json and OUT/monitoring.md. Exit status 0 whatever the verdict; 1 when the check
cannot run, the reason on stderr (and in a processing job in /opt/ml/output/message). Only
aggregates are written: never a patient id, pseudonym, record id or a single record's value.

SageMaker Processing contract (no --model): /opt/ml/processing/input/{model,predictions,diagnoses}
and optionally data/; output /opt/ml/processing/output/ (as dxops-compare, ml/compare.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ml.compare import CompareError, load
from ml.drift import CATEGORICAL, NUMERIC, Column, DriftConfig, counts_of, dataset_drift
from ml.drift_profile import (
    BASELINE,
    PREDICTED_CLASS,
    PREDICTED_PROBABILITY,
    Baseline,
    comparisons,
    model_predict,
    records_window,
    table_window,
)
from ml.live_quality import QualityConfig, join, quality, reference_of
from ml.model import ModelError
from ml.processing import failure_message, processing_root, report_failure
from ml.table import TableError, conform, read_table
from ml.train import ConfigError, _table_in

SCHEMA_VERSION = 1
MONITORING_JSON, MONITORING_MD = "monitoring.json", "monitoring.md"


class MonitorError(ValueError):
    """The check cannot run (the message says why; it never quotes a record's value)."""


def progress(message: str) -> None:
    print(f"[dxops-monitor] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Inputs:
    model: Path
    predictions: Path | None
    out: Path
    diagnoses: Path | None = None
    data: Path | None = None


@dataclass(frozen=True)
class Window:
    model_version: str | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None

    def holds(self, served_at: dt.datetime) -> bool:
        return (self.start is None or served_at >= self.start) and (self.end is None or served_at < self.end)


def _instant(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def ndjson(folder: Path | None, skipped: Counter[str], kind: str) -> Iterator[dict[str, Any]]:
    """Every JSON object line of every *.ndjson file under `folder`; bad lines counted by reason."""
    if folder is None or not folder.exists():
        return
    for path in sorted(folder.rglob("*.ndjson")) if folder.is_dir() else [folder]:
        with path.open(encoding="utf-8", errors="replace") as stream:
            for line in stream:
                if not line.strip():
                    continue
                try:
                    document = json.loads(line)
                except ValueError:
                    skipped[f"{kind}: not JSON"] += 1
                    continue
                if isinstance(document, dict):
                    yield document
                else:
                    skipped[f"{kind}: not an object"] += 1


def _prediction_ok(document: dict[str, Any], skipped: Counter[str]) -> dt.datetime | None:
    try:
        served = _instant(str(document["served_at"]))
        predicted = document["predicted"][0]
        float(predicted["probability"])
        str(predicted["code"])
        if not isinstance(document["inputs"], dict):
            raise TypeError
    except (KeyError, IndexError, TypeError, ValueError):
        skipped["prediction: missing or invalid served_at, predicted or inputs"] += 1
        return None
    return served


def read_predictions(
    folder: Path | None, window: Window, counts: Counter[str], skipped: Counter[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(predictions of the model version, those served in the window)."""
    ours, recent = [], []
    for document in ndjson(folder, skipped, "prediction"):
        counts["predictions_read"] += 1
        served = _prediction_ok(document, skipped)
        if served is None:
            continue
        if window.model_version is not None and document.get("model_version") != window.model_version:
            counts["predictions_other_versions"] += 1
            continue
        ours.append(document)
        if window.holds(served):
            recent.append(document)
    counts["predictions_in_window"] = len(recent)
    return ours, recent


def read_diagnoses(folder: Path | None, counts: Counter[str], skipped: Counter[str]) -> list[dict[str, Any]]:
    diagnoses = []
    for document in ndjson(folder, skipped, "diagnosis"):
        counts["diagnoses_read"] += 1
        if not isinstance(document.get("code"), str) or not (
            document.get("prediction_id") or document.get("record_id")
        ):
            skipped["diagnosis: no code, or neither prediction_id nor record_id"] += 1
            continue
        diagnoses.append(document)
    return diagnoses


def _prediction_columns(classes: Sequence[str], probabilities: Sequence[float]) -> dict[str, Column]:
    return {PREDICTED_CLASS: counts_of(classes), PREDICTED_PROBABILITY: np.asarray(probabilities, dtype=np.float64)}


def drift(
    inputs: Inputs, loaded: Any, baseline: Baseline, recent: list[dict[str, Any]], config: DriftConfig
) -> dict[str, Any]:
    model = loaded.model
    reference = baseline.reference
    expanded = bool(baseline.document.get("phenotypes_expanded"))
    if inputs.data is not None:
        progress(f"current data: the table {inputs.data.name}")
        table = read_table(inputs.data)
        classes, probabilities = model_predict(model)(conform(table, model.roles)) if len(table) else ([], [])
        current = table_window(table, model.roles, baseline.specs, classes)
        source = "table"
    else:
        progress(f"current data: {len(recent)} prediction inputs in the window")
        records = [p["inputs"] for p in recent]
        classes = [str(p["predicted"][0]["code"]) for p in recent]
        probabilities = [float(p["predicted"][0]["probability"]) for p in recent]
        ancestors = model.knowledge.ancestors if expanded else None
        current = records_window(records, model.roles, baseline.specs, ancestors, classes)
        source = "predictions"
    pairs = comparisons(reference, current, baseline.specs)
    theirs = _prediction_columns(classes, probabilities)
    ours = baseline.prediction
    predicted = (
        [(name, CATEGORICAL if name == PREDICTED_CLASS else NUMERIC, ours[name], theirs[name]) for name in ours]
        if ours is not None
        else []
    )
    ours_terms = baseline.presentation
    presentation = None if ours_terms is None else (ours_terms, current.presentation)
    verdict = dataset_drift(pairs, predicted, reference.rows, current.rows, config, presentation=presentation)
    return {"source": source, **verdict}


def monitor(
    inputs: Inputs, window: Window, drift_config: DriftConfig, quality_config: QualityConfig, scratch: Path
) -> dict[str, Any]:
    started = time.perf_counter()
    loaded = load(inputs.model, scratch, "model")
    if loaded is None:
        raise MonitorError("no model in its input (an empty or missing folder)")
    if not (loaded.directory / BASELINE).is_file():
        raise MonitorError(f"the model has no {BASELINE} (trained before drift monitoring): retrain it to monitor it")
    baseline = Baseline.load(loaded.directory)
    version = window.model_version or loaded.model.version
    window = Window(version, window.start, window.end)
    counts: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    ours, recent = read_predictions(inputs.predictions, window, counts, skipped)
    diagnoses = read_diagnoses(inputs.diagnoses, counts, skipped)
    pairs, unmatched = join(ours, diagnoses)
    counts["diagnoses_matched"], counts["diagnoses_unmatched"] = len(pairs), unmatched
    evaluation_path = loaded.directory / "evaluation.json"
    evaluation = json.loads(evaluation_path.read_text(encoding="utf-8")) if evaluation_path.is_file() else None
    document = {
        "schema_version": SCHEMA_VERSION,
        "model_version": version,
        "window": {
            "start": None if window.start is None else window.start.isoformat(),
            "end": None if window.end is None else window.end.isoformat(),
        },
        "counts": {
            **{key: counts[key] for key in ("predictions_read", "predictions_in_window", "predictions_other_versions")},
            "malformed_skipped": dict(sorted(skipped.items())),
            **{key: counts[key] for key in ("diagnoses_read", "diagnoses_matched", "diagnoses_unmatched")},
        },
        "drift": drift(inputs, loaded, baseline, recent, drift_config),
        "quality": quality(pairs, reference_of(evaluation), quality_config),
    }
    document["seconds"] = round(time.perf_counter() - started, 1)
    return document


# -- output ---------------------------------------------------------------------------------------
def _shown(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def markdown(document: dict[str, Any]) -> str:
    drifted, quality_ = document["drift"], document["quality"]
    lines = [
        f"# Monitoring of model `{document['model_version']}`",
        "",
        f"Window {document['window']['start'] or 'open'} to {document['window']['end'] or 'open'}; "
        f"{document['counts']['predictions_in_window']} predictions in the window.",
        "",
        f"## Drift: {drifted['status']}",
        "",
        f"{drifted['samples']} samples against {drifted['reference_samples']} reference rows; "
        f"{len(drifted['drifted_features'])} of {drifted['features_tested']} features drifted "
        f"(false-alarm rate {drifted['false_alarm_rate']}); prediction drift: "
        f"{'yes' if drifted['prediction']['drifted'] else 'no'}; presentation: "
        f"{drifted['presentation_drifted']} of {drifted['presentation']['tests']} class-term tests drifted.",
        "",
        "| feature | test | statistic | p-value | threshold | drifted |",
        "|---|---|---|---|---|---|",
    ]
    for row in [*drifted["features"], *drifted["prediction"]["quantities"]]:
        if row["drifted"]:
            cells = [_shown(row[key]) for key in ("test", "statistic", "p_value", "threshold")]
            lines.append(f"| {row['name']} | {' | '.join(cells)} | yes |")
    if drifted["presentation"]["drifted"]:
        lines += ["", "| predicted class | term | reference share | current share | p-value |", "|---|---|---|---|---|"]
        for row in drifted["presentation"]["drifted"]:
            cells = [_shown(row[key]) for key in ("reference_share", "current_share", "p_value")]
            lines.append(f"| {row['class']} | {row['term']} | {' | '.join(cells)} |")
    lines += [
        "",
        f"## Quality: {quality_['status']}",
        "",
        "| metric | live | reference |",
        "|---|---|---|",
    ]
    for key in ("macro_f1", "rare_recall", "ece", "accuracy"):
        lines.append(f"| {key} | {_shown(quality_[key])} | {_shown(quality_['reference'].get(key))} |")
    lines.append(f"\n{quality_['labelled']} labelled predictions (at least {quality_['min_labels']} to judge).")
    return "\n".join(lines) + "\n"


def write(out: Path, document: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / MONITORING_JSON).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (out / MONITORING_MD).write_text(markdown(document), encoding="utf-8")


# -- entry points ---------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    drift_defaults, quality_defaults = DriftConfig(), QualityConfig()
    cli = argparse.ArgumentParser(prog="dxops-monitor", description=__doc__.splitlines()[0] if __doc__ else None)
    for flag, text in (
        ("--model", "the champion: a model directory or a folder with its model.tar.gz"),
        ("--predictions", "folder of StoredPrediction NDJSON files (any nesting)"),
        ("--diagnoses", "folder of StoredDiagnosis NDJSON files (any nesting)"),
        ("--data", "a curated table as the current data instead of the predictions' inputs"),
        ("--out", "folder for monitoring.json and monitoring.md"),
    ):
        cli.add_argument(flag, type=Path, metavar="PATH", help=text)
    cli.add_argument("--model-version", help="only predictions served by this version (default: the model's)")
    cli.add_argument("--window-start", type=_instant, metavar="ISO", help="drift: predictions served at or after")
    cli.add_argument("--window-end", type=_instant, metavar="ISO", help="drift: predictions served before")
    cli.add_argument("--false-alarm-rate", type=float, default=drift_defaults.false_alarm_rate)
    cli.add_argument("--min-samples", type=int, default=drift_defaults.min_samples)
    cli.add_argument("--min-feature-samples", type=int, default=drift_defaults.min_feature_samples)
    cli.add_argument("--share-threshold", type=float, default=drift_defaults.share_threshold)
    cli.add_argument("--distance", choices=("default", "psi"), default=drift_defaults.distance)
    cli.add_argument(
        "--presentation-share",
        type=float,
        default=drift_defaults.presentation_share,
        help="the part of --false-alarm-rate given to the presentation tests",
    )
    cli.add_argument(
        "--min-class-samples",
        type=int,
        default=drift_defaults.min_class_samples,
        help="window rows a predicted class needs for its presentation to be tested",
    )
    cli.add_argument("--min-labels", type=int, default=quality_defaults.min_labels)
    cli.add_argument("--quality-tolerance", type=float, default=quality_defaults.tolerance)
    cli.add_argument("--seed", type=int, default=quality_defaults.seed, help="the bootstrap's seed")
    return cli


def _inputs(args: argparse.Namespace, root: Path | None) -> Inputs:
    if args.model is not None:
        return Inputs(
            args.model, args.predictions, args.out, args.diagnoses, None if args.data is None else _table_in(args.data)
        )
    if root is None:
        raise MonitorError("no --model and not in a SageMaker Processing job")
    folder = root / "input"
    data = folder / "data"
    has_data = data.is_dir() and any(data.iterdir())
    return Inputs(
        folder / "model",
        folder / "predictions",
        root / "output",
        folder / "diagnoses",
        _table_in(data) if has_data else None,
    )


def main(argv: Sequence[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    root = processing_root()
    if args.model is None and root is None:
        cli.error("--model and --out are required outside a SageMaker Processing job")
    if args.model is not None and args.out is None:
        cli.error("--out is required with --model")
    if not 0 < args.false_alarm_rate < 1:
        cli.error("--false-alarm-rate must be in (0, 1)")
    if not 0 < args.presentation_share < 1:
        cli.error("--presentation-share must be in (0, 1)")
    drift_config = DriftConfig(
        false_alarm_rate=args.false_alarm_rate,
        min_samples=args.min_samples,
        min_feature_samples=args.min_feature_samples,
        share_threshold=args.share_threshold,
        distance=args.distance,
        presentation_share=args.presentation_share,
        min_class_samples=args.min_class_samples,
    )
    quality_config = QualityConfig(min_labels=args.min_labels, tolerance=args.quality_tolerance, seed=args.seed)
    window = Window(args.model_version, args.window_start, args.window_end)
    try:
        inputs = _inputs(args, root)
        with tempfile.TemporaryDirectory(prefix="dxops-monitor-") as scratch:
            document = monitor(inputs, window, drift_config, quality_config, Path(scratch))
        write(inputs.out, document)
    except Exception as error:  # every failure is reported, none with a record's value
        ours = (MonitorError, CompareError, TableError, ModelError, ConfigError)
        report_failure(failure_message(error, "dxops-monitor", ours, "check"), root)
        return 1
    progress(f"drift {document['drift']['status']}, quality {document['quality']['status']}")
    print(
        json.dumps(
            {"out": str(inputs.out), "drift": document["drift"]["status"], "quality": document["quality"]["status"]}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
