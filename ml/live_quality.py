"""Live model quality from late labels: confirmed diagnoses joined to the predictions they confirm.

Join: a diagnosis names its prediction (prediction_id), else its record (source, record_id); a
record predicted several times takes the latest prediction served. The same diagnosis can be
stored twice (a client retries POST /diagnoses) and a diagnosis can be corrected: per prediction
the diagnosis with the latest confirmed_at wins (then the latest received_at, then the code).

Metrics of the matched predictions (the top-1 served, predicted[0]): accuracy, macro-F1 over the
classes present among the labels, rare-disease recall (macro recall over the ORPHA:/OMIM:
labels present, ml.metrics.is_rare_code), and the expected calibration error of the top-1
probability (15 equal-width bins). The reference of each is the model's held-out figure
(evaluation.json "test"). A quality drop is declared when at least `min_labels` predictions are
labelled, live macro-F1 is below the reference by more than `tolerance`, and the one-sided 95 %
bootstrap upper bound of live macro-F1 (resampled predictions) is below the reference: the
drop is large enough to matter and not a small sample's noise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ml.metrics import is_rare_code

ECE_BINS = 15
DIGITS = 6


@dataclass(frozen=True)
class QualityConfig:
    min_labels: int = 50
    tolerance: float = 0.05  # macro-F1 drop beyond which quality dropped
    resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0


def _round(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), DIGITS)


def latest_diagnoses(diagnoses: Sequence[Mapping[str, Any]]) -> dict[tuple[str, ...], Mapping[str, Any]]:
    """One diagnosis per key (("id", prediction_id) or ("record", source, record_id)): the latest."""
    chosen: dict[tuple[str, ...], Mapping[str, Any]] = {}
    for diagnosis in diagnoses:
        if diagnosis.get("prediction_id"):
            key: tuple[str, ...] = ("id", str(diagnosis["prediction_id"]))
        elif diagnosis.get("record_id"):
            key = ("record", str(diagnosis.get("source")), str(diagnosis["record_id"]))
        else:
            continue
        order = (str(diagnosis.get("confirmed_at")), str(diagnosis.get("received_at")), str(diagnosis.get("code")))
        held = chosen.get(key)
        if held is None or order > (str(held.get("confirmed_at")), str(held.get("received_at")), str(held.get("code"))):
            chosen[key] = diagnosis
    return chosen


def join(
    predictions: Sequence[Mapping[str, Any]], diagnoses: Sequence[Mapping[str, Any]]
) -> tuple[list[tuple[Mapping[str, Any], str]], int]:
    """(prediction, confirmed code) pairs, and the count of diagnoses that matched no prediction."""
    chosen = latest_diagnoses(diagnoses)
    by_record: dict[tuple[str, ...], Mapping[str, Any]] = {}
    for prediction in sorted(predictions, key=lambda p: str(p.get("served_at"))):
        by_record[("record", str(prediction.get("source")), str(prediction.get("record_id")))] = prediction
    pairs: dict[str, tuple[Mapping[str, Any], str, str]] = {}  # prediction_id -> (prediction, code, order)
    by_id = {str(p.get("prediction_id")): p for p in predictions}
    unmatched = 0
    for key, diagnosis in chosen.items():
        served: Mapping[str, Any] | None = by_id.get(key[1]) if key[0] == "id" else by_record.get(key)
        if served is None:
            unmatched += 1
            continue
        order = str(diagnosis.get("confirmed_at")) + str(diagnosis.get("received_at"))
        held = pairs.get(str(served.get("prediction_id")))
        if held is None or order > held[2]:  # named by id and by record: the latest still wins
            pairs[str(served.get("prediction_id"))] = (served, str(diagnosis["code"]), order)
    return [(prediction, code) for prediction, code, _ in pairs.values()], unmatched


def _macro_f1(truth: NDArray[np.int64], predicted: NDArray[np.int64], weights: NDArray[np.float64], k: int) -> float:
    """Macro-F1 over the classes 0..k-1 (the labels present), rows weighted (bootstrap resamples)."""
    support = np.bincount(truth, weights=weights, minlength=k)[:k]
    guessed = np.bincount(predicted, weights=weights, minlength=k + 1)[:k]
    hit = truth == predicted
    hits = np.bincount(truth[hit], weights=weights[hit], minlength=k)[:k]
    present = support > 0
    return float(np.mean(2 * hits[present] / (support[present] + guessed[present])))


def expected_calibration_error(confidence: NDArray[np.float64], correct: NDArray[np.bool_]) -> float:
    bins = np.minimum((confidence * ECE_BINS).astype(np.int64), ECE_BINS - 1)
    total = 0.0
    for b in np.unique(bins).tolist():
        rows = bins == b
        total += rows.sum() * abs(float(correct[rows].mean()) - float(confidence[rows].mean()))
    return total / len(confidence)


def reference_of(evaluation: Mapping[str, Any] | None) -> dict[str, float | None]:
    """The model's held-out figures (evaluation.json "test")."""
    test = (evaluation or {}).get("test") or {}
    rare = ((test.get("groups") or {}).get("rare") or {}).get("macro_recall")
    return {
        "macro_f1": test.get("macro_f1"),
        "rare_recall": rare,
        "ece": test.get("ece"),
        "accuracy": test.get("accuracy"),
    }


def quality(
    pairs: Sequence[tuple[Mapping[str, Any], str]], reference: Mapping[str, float | None], config: QualityConfig
) -> dict[str, Any]:
    """The quality section of monitoring.json (aggregates only)."""
    labelled = len(pairs)
    result: dict[str, Any] = {
        "status": "insufficient_labels",
        "labelled": labelled,
        "min_labels": config.min_labels,
        "tolerance": config.tolerance,
        "reference": dict(reference),
        "macro_f1": None,
        "macro_f1_upper": None,
        "rare_recall": None,
        "rare_labelled": 0,
        "ece": None,
        "accuracy": None,
        "macro_f1_drop": None,
    }
    if not labelled:
        return result
    truth = [code for _p, code in pairs]
    predicted = [str((p.get("predicted") or [{}])[0].get("code")) for p, _code in pairs]
    confidence = np.array([float((p.get("predicted") or [{}])[0].get("probability", 0.0)) for p, _c in pairs])
    labels = sorted(set(truth))
    index = {label: i for i, label in enumerate(labels)}
    t = np.array([index[c] for c in truth], dtype=np.int64)
    y = np.array([index.get(c, len(labels)) for c in predicted], dtype=np.int64)  # len(labels): another class
    correct = t == y
    ones = np.ones(labelled)
    macro = _macro_f1(t, y, ones, len(labels))
    rare = [i for i, label in enumerate(labels) if is_rare_code(label)]
    rare_rows = np.isin(t, rare)
    recalls = [float(correct[t == i].mean()) for i in rare]
    rng = np.random.default_rng(config.seed)
    resampled = [
        _macro_f1(
            t, y, np.bincount(rng.integers(0, labelled, labelled), minlength=labelled).astype(np.float64), len(labels)
        )
        for _ in range(config.resamples)
    ]
    upper = float(np.percentile(resampled, 100 * config.confidence))
    result.update(
        macro_f1=_round(macro),
        macro_f1_upper=_round(upper),
        rare_recall=_round(float(np.mean(recalls))) if recalls else None,
        rare_labelled=int(rare_rows.sum()),
        ece=_round(expected_calibration_error(confidence, correct)),
        accuracy=_round(float(correct.mean())),
    )
    ref = reference.get("macro_f1")
    if ref is not None:
        result["macro_f1_drop"] = _round(float(ref) - macro)
    if labelled < config.min_labels:
        return result
    dropped = ref is not None and macro < float(ref) - config.tolerance and upper < float(ref)
    result["status"] = "drop" if dropped else "ok"
    return result
