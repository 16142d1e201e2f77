"""Evaluation metrics: hand-checked values on a tiny case, and the bootstrap's fast paths against scikit-learn."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

from ml.metrics import (
    _bootstrap_values,
    align,
    bootstrap_intervals,
    calibration_curve_points,
    classification_metrics,
    is_rare_code,
    rare_labels,
)

# Six rows over the classes A, B, C (columns deliberately not in sorted order); D is no model class.
CLASSES = ["C", "A", "B"]
ROWS = [  # true label, P(A), P(B), P(C)            prediction, top-1 confidence
    ("A", 0.75, 0.15, 0.10),  # A, 0.75 (right)
    ("A", 0.30, 0.65, 0.05),  # B, 0.65 (wrong, true class second)
    ("B", 0.05, 0.85, 0.10),  # B, 0.85 (right)
    ("C", 0.15, 0.10, 0.75),  # C, 0.75 (right)
    ("C", 0.65, 0.05, 0.30),  # A, 0.65 (wrong, true class second)
    ("D", 0.10, 0.15, 0.75),  # C, 0.75 (wrong: the model cannot predict D)
]
Y_TRUE = [row[0] for row in ROWS]
PROBA = np.array([[c, a, b] for _, a, b, c in ROWS])


@pytest.fixture(scope="module")
def tiny() -> dict[str, Any]:
    return classification_metrics(Y_TRUE, PROBA, CLASSES, rare={"C", "D"}, top_k=(1, 2, 3), ece_bins=10)


def test_headline_metrics_by_hand(tiny: dict[str, Any]) -> None:
    assert tiny["n"] == 6
    assert tiny["accuracy"] == 0.5
    # F1: A 0.5 (1 of 2 found, 1 of 2 predictions right), B 2/3, C 0.5, D 0 -> over the union of labels.
    assert tiny["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 0.5 + 0) / 4, abs=1e-6)
    assert tiny["weighted_f1"] == pytest.approx((2 * 0.5 + 2 / 3 + 2 * 0.5) / 6, abs=1e-6)
    assert tiny["balanced_accuracy"] == pytest.approx((0.5 + 1 + 0.5 + 0) / 4)
    assert tiny["top1_accuracy"] == 0.5
    assert tiny["top2_accuracy"] == tiny["top3_accuracy"] == pytest.approx(5 / 6)  # rows 2 and 5, not D's
    assert "top5_accuracy" not in tiny
    # OvR AUC: A 7/8, B 1, C (one positive tied with a negative at 0.75) 6.5/8; D has no score column.
    assert tiny["auc_macro_ovr"] == pytest.approx((7 / 8 + 1 + 6.5 / 8) / 3, abs=1e-6)
    # Brier: per row sum of (p - onehot)^2; D's row adds 1 for the probability 0 it got.
    assert tiny["brier"] == pytest.approx((0.095 + 0.915 + 0.035 + 0.095 + 0.915 + 1.595) / 6, abs=1e-6)
    true_p = [0.75, 0.30, 0.85, 0.75, 0.30, 1e-15]
    assert tiny["log_loss"] == pytest.approx(-sum(math.log(p) for p in true_p) / 6, abs=1e-6)


def test_expected_calibration_error_by_hand(tiny: dict[str, Any]) -> None:
    # Bins of 0.1: (0.6, 0.7] holds two wrong rows at 0.65, (0.7, 0.8] three rows at 0.75 of which two are
    # right, (0.8, 0.9] one right row at 0.85: ECE = 2/6 * 0.65 + 3/6 * (0.75 - 2/3) + 1/6 * 0.15 = 17/60.
    assert tiny["ece"] == pytest.approx(17 / 60, abs=1e-6)
    points = calibration_curve_points(Y_TRUE, PROBA, CLASSES, bins=10)
    assert [p["count"] for p in points] == [2, 3, 1]
    assert [p["accuracy"] for p in points] == pytest.approx([0, 2 / 3, 1])
    assert [p["confidence"] for p in points] == pytest.approx([0.65, 0.75, 0.85])
    assert [p["low"] for p in points] == pytest.approx([0.6, 0.7, 0.8])
    assert [p["high"] for p in points] == pytest.approx([0.7, 0.8, 0.9])


def test_ece_is_zero_when_confidence_matches_accuracy() -> None:
    # Every row 0.8 confident, 4 of 5 right: perfectly calibrated.
    y_true = ["A", "A", "A", "A", "B"]
    proba = np.tile([0.8, 0.2], (5, 1))
    assert classification_metrics(y_true, proba, ["A", "B"])["ece"] == 0.0


def test_a_label_the_model_cannot_predict_is_an_error_with_a_per_class_row(tiny: dict[str, Any]) -> None:
    assert tiny["per_class"]["D"] == {"recall": 0.0, "precision": 0.0, "f1": 0.0, "support": 1}
    assert tiny["per_class"]["B"] == {
        "recall": 1.0,
        "precision": 0.5,
        "f1": pytest.approx(2 / 3, abs=1e-6),
        "support": 1,
    }
    assert set(tiny["per_class"]) == {"A", "B", "C", "D"}
    # Without the D row the top-3 accuracy would be 1: the model ranks only three classes.
    assert tiny["top3_accuracy"] == pytest.approx(5 / 6)


def test_groups_split_rows_by_their_true_label(tiny: dict[str, Any]) -> None:
    rare, common = tiny["groups"]["rare"], tiny["groups"]["common"]
    assert rare == {
        "n": 3,
        "accuracy": pytest.approx(1 / 3),
        "top3_accuracy": pytest.approx(2 / 3),  # the D row is never a hit
        "macro_recall": 0.25,  # C 0.5, D 0
        "macro_f1": 0.25,  # C 0.5, D 0
    }
    assert common == {
        "n": 3,
        "accuracy": pytest.approx(2 / 3),
        "top3_accuracy": 1.0,
        "macro_recall": 0.75,  # A 0.5, B 1
        "macro_f1": pytest.approx((0.5 + 2 / 3) / 2, abs=1e-6),
    }
    empty = classification_metrics(Y_TRUE, PROBA, CLASSES)["groups"]["rare"]
    assert empty == {"n": 0, "accuracy": None, "top3_accuracy": None, "macro_recall": None, "macro_f1": None}


def test_rare_rule() -> None:
    assert is_rare_code("ORPHA:558") and is_rare_code("OMIM:154700")
    assert not is_rare_code("ICD10:E11") and not is_rare_code("orpha:558")
    assert rare_labels(["ORPHA:1", "ICD10:I10", "OMIM:2"]) == {"ORPHA:1", "OMIM:2"}


def walk(value: Any) -> None:
    """Only plain JSON types, no numpy scalars, no NaN."""
    if isinstance(value, dict):
        assert all(isinstance(k, str) for k in value)
        for item in value.values():
            walk(item)
    else:
        assert value is None or type(value) in (int, float, str), type(value)
        assert not (isinstance(value, float) and not math.isfinite(value))


def test_output_is_plain_json(tiny: dict[str, Any]) -> None:
    walk(tiny)
    json.dumps(tiny, allow_nan=False)
    assert list(tiny) == [
        "accuracy",
        "macro_f1",
        "weighted_f1",
        "balanced_accuracy",
        "auc_macro_ovr",
        "top1_accuracy",
        "top2_accuracy",
        "top3_accuracy",
        "ece",
        "brier",
        "log_loss",
        "n",
        "per_class",
        "groups",
    ]


def test_undefined_auc_is_none() -> None:
    # Every row is A: no class has both positives and negatives.
    metrics = classification_metrics(["A", "A"], np.array([[0.9, 0.1], [0.4, 0.6]]), ["A", "B"])
    assert metrics["auc_macro_ovr"] is None
    assert bootstrap_intervals(
        ["A", "A"], np.array([[0.9, 0.1], [0.4, 0.6]]), ["A", "B"], metrics=["auc_macro_ovr"], n_boot=5
    ) == {"auc_macro_ovr": {"low": None, "high": None}}


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        classification_metrics(["A"], np.array([[1.0, 0.0, 0.0]]), ["A", "B"])
    with pytest.raises(ValueError, match="sum"):
        classification_metrics(["A"], np.array([[0.5, 0.1]]), ["A", "B"])
    with pytest.raises(ValueError, match="distinct"):
        classification_metrics(["A"], np.array([[0.5, 0.5]]), ["A", "A"])


def synthetic(n: int = 600, n_classes: int = 12, seed: int = 1) -> tuple[list[str], np.ndarray, list[str]]:
    """Skewed labels, an informative but noisy model, tied probabilities and a few labels it does not know."""
    rng = np.random.default_rng(seed)
    classes = [f"ORPHA:{i}" if i % 3 == 0 else f"ICD10:X{i:02d}" for i in range(n_classes)]
    weights = 1 / np.arange(1, n_classes + 1)
    truth = rng.choice(n_classes, size=n, p=weights / weights.sum())
    logits = rng.normal(size=(n, n_classes))
    logits[np.arange(n), truth] += 1.5
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    proba = np.round(proba, 2)  # ties, as calibrated (isotonic) probabilities have
    proba[:, 0] += 1 - proba.sum(axis=1)
    proba = np.clip(proba, 0, 1)
    proba /= proba.sum(axis=1, keepdims=True)
    y_true = [classes[i] for i in truth]
    y_true[:7] = ["OMIM:999"] * 7
    return y_true, proba, classes


BOOTSTRAPPED = ["accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "top1_accuracy", "top3_accuracy"]
BOOTSTRAPPED += ["top5_accuracy", "auc_macro_ovr", "ece", "brier", "log_loss"]


def test_bootstrap_fast_paths_match_the_point_estimates() -> None:
    y_true, proba, classes = synthetic()
    metrics = classification_metrics(y_true, proba, classes)
    data = align(y_true, proba, classes)
    unit = np.ones((1, data.n), dtype=np.int32)
    for metric in BOOTSTRAPPED:
        assert _bootstrap_values(data, unit, metric, 15)[0] == pytest.approx(metrics[metric], abs=1e-6), metric


def test_bootstrap_on_a_resample_matches_scikit_learn_on_the_resampled_rows() -> None:
    y_true, proba, classes = synthetic()
    data = align(y_true, proba, classes)
    weights = np.bincount(np.random.default_rng(5).integers(0, data.n, data.n), minlength=data.n).astype(np.int32)
    rows = np.repeat(np.arange(data.n), weights)
    truth, pred, index = data.y_true[rows], data.y_pred[rows], data.y_index[rows]
    aucs = [
        roc_auc_score(index == c, data.proba[rows, c])
        for c in range(len(classes))
        if 0 < (index == c).sum() < rows.size
    ]
    expected = {
        "accuracy": float(np.mean(truth == pred)),
        "macro_f1": f1_score(truth, pred, average="macro", zero_division=0),
        "balanced_accuracy": balanced_accuracy_score(truth, pred),
        "auc_macro_ovr": float(np.mean(aucs)),
    }
    for metric, value in expected.items():
        assert _bootstrap_values(data, weights[None, :], metric, 15)[0] == pytest.approx(value, abs=1e-9), metric


def test_bootstrap_is_deterministic_and_brackets_the_point_estimate() -> None:
    y_true, proba, classes = synthetic()
    metrics = classification_metrics(y_true, proba, classes)
    intervals = bootstrap_intervals(y_true, proba, classes, metrics=BOOTSTRAPPED, n_boot=50, seed=3)
    assert intervals == bootstrap_intervals(y_true, proba, classes, metrics=BOOTSTRAPPED, n_boot=50, seed=3)
    other_seed = bootstrap_intervals(y_true, proba, classes, metrics=["accuracy", "auc_macro_ovr"], n_boot=50, seed=4)
    assert other_seed != {metric: intervals[metric] for metric in other_seed}
    assert list(intervals) == BOOTSTRAPPED
    for metric, bounds in intervals.items():
        assert set(bounds) == {"low", "high"}
        assert bounds["low"] is not None and bounds["high"] is not None
        assert bounds["low"] <= metrics[metric] <= bounds["high"], metric
        assert bounds["low"] < bounds["high"], metric
    walk(intervals)
    json.dumps(intervals, allow_nan=False)
    narrow = bootstrap_intervals(y_true, proba, classes, metrics=["accuracy"], n_boot=50, seed=3, confidence=0.5)
    wide = [intervals["accuracy"]["low"], intervals["accuracy"]["high"]]
    inner = [narrow["accuracy"]["low"], narrow["accuracy"]["high"]]
    assert wide[0] is not None and wide[1] is not None and inner[0] is not None and inner[1] is not None
    assert wide[0] <= inner[0] <= inner[1] <= wide[1]


def test_bootstrap_refuses_an_unknown_metric() -> None:
    with pytest.raises(ValueError, match="no bootstrap"):
        bootstrap_intervals(Y_TRUE, PROBA, CLASSES, metrics=["recall_at_7"], n_boot=2)
