"""Evaluation metrics for the disease classifier, as plain JSON-ready numbers.

`classification_metrics` scores calibrated class probabilities against true labels: headline metrics,
per-class precision/recall/F1 and a rare-vs-common split (rare diseases are the point of the project and
vanish in a macro average over hundreds of common ones). `bootstrap_intervals` puts percentile
bootstrap intervals on the headline numbers so that two models are not ranked on noise.

True labels the model has no class for (a disease first seen in the test set) are kept, not dropped:
dropping them would flatter the model. They count as errors everywhere (the prediction is always one of
the model's classes), get a per-class row with recall 0, cost 1 in the Brier score and -log(1e-15) in
the log loss (the model gave them probability 0), and are negatives in every class's one-vs-rest ROC
curve; having no score column they get no ROC curve of their own, so they are not among the classes
the macro AUC averages over.

Point estimates come from scikit-learn's metric functions. The bootstrap cannot afford to call them
a few hundred times on large test sets, so it resamples per-row quantities computed once (hit or miss
at each k, per-row Brier and log loss, calibration bin) and computes the macro AUC with a vectorised
weighted Mann-Whitney statistic; tests check both agree with scikit-learn on the full sample.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.calibration import calibration_curve
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    brier_score_loss,
    f1_score,
    log_loss,
    precision_recall_fscore_support,
    recall_score,
    roc_auc_score,
    top_k_accuracy_score,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
WeightArray = npt.NDArray[np.int32]
BoolArray = npt.NDArray[np.bool_]
LabelArray = npt.NDArray[np.object_]

RARE_PREFIXES = ("ORPHA:", "OMIM:")
"""Label prefixes of the default rare-disease rule (Orphanet and OMIM codes)."""
LOG_LOSS_EPS = 1e-15
"""Probabilities are clipped to [LOG_LOSS_EPS, 1] in the log loss, so a probability of 0 costs ~34.5, not inf."""
DIGITS = 6
"""Every float in the output is rounded to this many decimals."""
DEFAULT_BOOTSTRAP_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "top3_accuracy", "auc_macro_ovr", "ece")
"""What `bootstrap_intervals` covers by default: ~4 s on 20,000 rows x 200 classes x 200 resamples (AUC ~2.3 s)."""

_CHUNK_CELLS = 4_000_000
"""Row or column blocks of the probability matrix are sized to about this many cells to bound memory."""
_TOP_K = re.compile(r"top([1-9][0-9]*)_accuracy")


def is_rare_code(label: str) -> bool:
    """The default rare-disease rule: Orphanet and OMIM codes are rare diseases, anything else common.

    The training code decides what is rare and passes the set to `classification_metrics(rare=...)`;
    this is the rule it uses unless it has a better one (e.g. a prevalence threshold).
    """
    return label.startswith(RARE_PREFIXES)


def rare_labels(labels: Iterable[str], rule: Callable[[str], bool] = is_rare_code) -> frozenset[str]:
    """The labels that `rule` calls rare: the `rare` argument of `classification_metrics`."""
    return frozenset(label for label in labels if rule(label))


@dataclass(frozen=True)
class Predictions:
    """Labels and probabilities validated and aligned once, shared by the metrics and the report.

    The probability columns are in sorted label order because scikit-learn's probabilistic metrics
    (top-k accuracy, log loss, Brier) take `labels` in sorted order only.
    """

    y_true: LabelArray
    """True labels (str), one per row."""
    y_pred: LabelArray
    """The argmax class of each row (the first of tied classes in the caller's class order)."""
    classes: LabelArray
    """The model's classes, sorted."""
    proba: FloatArray
    """(n, len(classes)), columns in `classes` order, each row clipped to [0, 1] and summing to 1."""
    y_index: IntArray
    """Column of the true label in `proba`, -1 for a label the model has no class for."""

    @property
    def n(self) -> int:
        return len(self.y_true)

    @property
    def correct(self) -> BoolArray:
        return np.asarray(self.y_true == self.y_pred, dtype=np.bool_)

    @property
    def confidence(self) -> FloatArray:
        """Top-1 probability of each row."""
        return np.asarray(self.proba.max(axis=1), dtype=np.float64)

    @property
    def known(self) -> BoolArray:
        """Rows whose true label is one of the model's classes."""
        return np.asarray(self.y_index >= 0, dtype=np.bool_)

    def unknown_labels(self) -> list[str]:
        """True labels the model has no class for, sorted."""
        return sorted(set(self.y_true[~self.known].tolist()))

    def calibration_points(self, bins: int = 15) -> list[dict[str, float | int]]:
        """See `calibration_curve_points`."""
        if bins < 1:
            raise ValueError("bins must be at least 1")
        confidence = self.confidence
        accuracy, mean_confidence = calibration_curve(
            self.correct.astype(np.int64), confidence, pos_label=1, n_bins=bins, strategy="uniform"
        )
        counts = np.bincount(_bin_ids(confidence, bins), minlength=bins)
        edges = np.linspace(0.0, 1.0, bins + 1)
        filled = np.flatnonzero(counts)
        return [
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "confidence": float(conf),
                "accuracy": float(acc),
                "count": int(counts[b]),
            }
            for b, conf, acc in zip(filled.tolist(), mean_confidence.tolist(), accuracy.tolist(), strict=True)
        ]


def align(y_true: Sequence[str], proba: npt.ArrayLike, classes: Sequence[str]) -> Predictions:
    """Validate the inputs and put them in the shape every metric here expects.

    Rows must sum to 1 within 1e-4 (calibrated probabilities over the model's classes); they are
    clipped to [0, 1] and renormalised so float noise does not trip scikit-learn's checks.
    """
    labels = [str(label) for label in classes]
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise ValueError("classes must hold at least two distinct labels")
    truth = np.asarray([str(label) for label in y_true], dtype=object)
    matrix = np.asarray(proba, dtype=np.float64)
    if truth.size == 0:
        raise ValueError("no rows to evaluate")
    if matrix.shape != (truth.size, len(labels)):
        raise ValueError(f"proba has shape {matrix.shape}, expected {(truth.size, len(labels))}")
    if not np.isfinite(matrix).all() or not np.allclose(matrix.sum(axis=1), 1.0, rtol=0.0, atol=1e-4):
        raise ValueError("each row of proba must be finite probabilities summing to 1")
    matrix = np.clip(matrix, 0.0, 1.0)
    matrix /= matrix.sum(axis=1, keepdims=True)
    y_pred = np.asarray(labels, dtype=object)[np.argmax(matrix, axis=1)]
    order = sorted(range(len(labels)), key=labels.__getitem__)
    sorted_labels = [labels[i] for i in order]
    column = {label: i for i, label in enumerate(sorted_labels)}
    y_index = np.fromiter((column.get(label, -1) for label in truth.tolist()), dtype=np.int64, count=truth.size)
    return Predictions(
        y_true=truth,
        y_pred=y_pred,
        classes=np.asarray(sorted_labels, dtype=object),
        proba=np.ascontiguousarray(matrix[:, order]),
        y_index=y_index,
    )


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence scikit-learn's warnings about classes absent from a sample: expected here, and handled."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        yield


def _number(value: Any) -> float | None:
    """A plain rounded float, None for a missing or non-finite value."""
    if value is None:
        return None
    number = float(value)
    return round(number, DIGITS) if math.isfinite(number) else None


def _top_k_hits(data: Predictions, k: int, rows: BoolArray | None = None) -> int:
    """Rows (of `rows`) whose true class is among the k most probable, by scikit-learn's tie rule.

    Rows with a label the model does not know are never hits.
    """
    known = data.known if rows is None else data.known & rows
    if not known.any():
        return 0
    scores = data.proba[known]
    if len(data.classes) == 2:
        scores = scores[:, 1]  # scikit-learn takes the positive class's score alone in the binary case
    hits = top_k_accuracy_score(data.y_true[known], scores, k=k, labels=data.classes, normalize=False)
    return round(float(hits))


def _auc_columns(data: Predictions) -> IntArray:
    """Classes with both positives and negatives among the rows: the only ones with a defined ROC AUC."""
    counts = np.bincount(data.y_index[data.known], minlength=len(data.classes))
    return np.flatnonzero((counts > 0) & (counts < data.n)).astype(np.int64)


def _auc_macro_ovr(data: Predictions) -> float | None:
    """Macro one-vs-rest ROC AUC over the classes present with positives and negatives."""
    columns = _auc_columns(data)
    if columns.size == 0:
        return None
    aucs = [roc_auc_score(data.y_index == c, data.proba[:, c]) for c in columns.tolist()]
    return float(np.mean(aucs))


def _bin_ids(confidence: FloatArray, bins: int) -> IntArray:
    """Equal-width bin of each confidence, bins closed on the right: the binning of sklearn's calibration_curve."""
    return np.searchsorted(np.linspace(0.0, 1.0, bins + 1)[1:-1], confidence).astype(np.int64)


def calibration_curve_points(
    y_true: Sequence[str], proba: npt.ArrayLike, classes: Sequence[str], *, bins: int = 15
) -> list[dict[str, float | int]]:
    """Reliability of the top-1 prediction: per non-empty equal-width confidence bin, its bounds
    (`low`, `high`], mean top-1 confidence, accuracy and row count. The reliability diagram and the ECE.
    """
    return align(y_true, proba, classes).calibration_points(bins)


def _ece(points: list[dict[str, float | int]], n: int) -> float:
    """Expected calibration error: the row-weighted mean gap between accuracy and confidence over bins."""
    return sum(p["count"] / n * abs(p["accuracy"] - p["confidence"]) for p in points)


def _extended(data: Predictions) -> tuple[LabelArray, FloatArray]:
    """Labels and probabilities with a zero column for each true label the model does not know.

    scikit-learn's Brier score and log loss need every true label among their `labels`; the model
    gave those labels probability 0, which is what the zero column says.
    """
    unknown = data.unknown_labels()
    if not unknown:
        return data.classes, data.proba
    labels = sorted([*data.classes.tolist(), *unknown])
    column = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((data.n, len(labels)), dtype=np.float64)
    matrix[:, [column[label] for label in data.classes.tolist()]] = data.proba
    return np.asarray(labels, dtype=object), matrix


def _group(data: Predictions, rows: BoolArray, rare: Collection[str], is_rare: bool) -> dict[str, Any]:
    """Metrics of the rows whose true label is in the group.

    macro_recall averages over the group's labels among those rows' true labels; macro_f1 over the
    group's labels present in the true or predicted labels (the headline macro_f1's rule) and on all
    rows, so that another group's rows predicted as one of this group's classes lower its precision.
    """
    n = int(rows.sum())
    if n == 0:
        return {"n": 0, "accuracy": None, "top3_accuracy": None, "macro_recall": None, "macro_f1": None}
    true_labels = sorted(set(data.y_true[rows].tolist()))
    predicted = {label for label in set(data.y_pred.tolist()) if (label in rare) == is_rare}
    f1_labels = sorted(set(true_labels) | predicted)
    recall = recall_score(data.y_true, data.y_pred, labels=true_labels, average="macro", zero_division=0)
    f1 = f1_score(data.y_true, data.y_pred, labels=f1_labels, average="macro", zero_division=0)
    return {
        "n": n,
        "accuracy": _number(accuracy_score(data.y_true[rows], data.y_pred[rows])),
        "top3_accuracy": _number(_top_k_hits(data, 3, rows) / n),
        "macro_recall": _number(recall),
        "macro_f1": _number(f1),
    }


def _per_class(data: Predictions) -> dict[str, dict[str, float | int | None]]:
    labels = sorted(set(data.y_true.tolist()) | set(data.y_pred.tolist()))
    precision, recall, f1, support = precision_recall_fscore_support(
        data.y_true, data.y_pred, labels=labels, zero_division=0
    )
    return {
        label: {"recall": _number(r), "precision": _number(p), "f1": _number(f), "support": int(s)}
        for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
    }


def classification_metrics(
    y_true: Sequence[str],
    proba: npt.ArrayLike,
    classes: Sequence[str],
    *,
    rare: Collection[str] = (),
    top_k: Sequence[int] = (1, 3, 5, 10),
    ece_bins: int = 15,
) -> dict[str, Any]:
    """Headline, per-class and rare-vs-common metrics of calibrated probabilities `proba` (n x classes).

    The prediction of a row is its argmax class. macro_f1 and weighted_f1 are over the union of the
    labels present in y_true and in the predictions (scikit-learn's rule with labels=None), so a class
    predicted but never true counts with F1 0; balanced_accuracy is the mean recall over true labels.
    topK_accuracy follows scikit-learn's tie rule (among equal probabilities the later class in sorted
    order ranks first), so top1_accuracy can differ from accuracy on exactly tied rows only. `rare` is the
    set of rare labels (see `rare_labels`, `is_rare_code`); rows are grouped by their true label.
    Floats are rounded to 6 decimals; undefined values are None.
    """
    if any(k < 1 for k in top_k):
        raise ValueError("top_k values must be at least 1")
    data = align(y_true, proba, classes)
    rare_set = frozenset(rare)
    is_rare = np.fromiter((label in rare_set for label in data.y_true.tolist()), dtype=np.bool_, count=data.n)
    labels, extended = _extended(data)
    with _quiet():
        result: dict[str, Any] = {
            "accuracy": _number(accuracy_score(data.y_true, data.y_pred)),
            "macro_f1": _number(f1_score(data.y_true, data.y_pred, average="macro", zero_division=0)),
            "weighted_f1": _number(f1_score(data.y_true, data.y_pred, average="weighted", zero_division=0)),
            "balanced_accuracy": _number(balanced_accuracy_score(data.y_true, data.y_pred)),
            "auc_macro_ovr": _number(_auc_macro_ovr(data)),
        }
        for k in top_k:
            result[f"top{k}_accuracy"] = _number(_top_k_hits(data, k) / data.n)
        result["ece"] = _number(_ece(data.calibration_points(ece_bins), data.n))
        result["brier"] = _number(brier_score_loss(data.y_true, extended, labels=labels, scale_by_half=False))
        clipped = np.clip(extended, LOG_LOSS_EPS, 1.0)
        result["log_loss"] = _number(log_loss(data.y_true, clipped, labels=labels))
        result["n"] = data.n
        result["per_class"] = _per_class(data)
        result["groups"] = {
            "rare": _group(data, is_rare, rare_set, is_rare=True),
            "common": _group(data, ~is_rare, rare_set, is_rare=False),
        }
    return result


# --- bootstrap -------------------------------------------------------------------------------------------


def _true_ranks(data: Predictions) -> IntArray:
    """0-based rank of the true class in each row by scikit-learn's top-k tie rule; n_classes if unknown.

    A row is a top-k hit iff its rank is below k, so the bootstrap resamples ranks, not sorts.
    """
    n_classes = len(data.classes)
    ranks = np.full(data.n, n_classes, dtype=np.int64)
    position = np.arange(n_classes)
    step = max(1, _CHUNK_CELLS // n_classes)
    for start in range(0, data.n, step):
        index = data.y_index[start : start + step]
        rows = np.flatnonzero(index >= 0)
        block = data.proba[start : start + step][rows]
        truth = index[rows]
        true_p = block[np.arange(rows.size), truth][:, None]
        ahead = (block > true_p) | ((block == true_p) & (position[None, :] > truth[:, None]))
        ranks[start + rows] = ahead.sum(axis=1)
    return ranks


def _row_brier(data: Predictions) -> FloatArray:
    """Per-row multi-class Brier score: sum over classes of (p - onehot)^2, 1 + sum p^2 for unknown labels."""
    true_p = np.where(data.known, data.proba[np.arange(data.n), np.maximum(data.y_index, 0)], 0.0)
    return np.asarray((data.proba**2).sum(axis=1) - 2.0 * true_p + 1.0, dtype=np.float64)


def _row_log_loss(data: Predictions) -> FloatArray:
    """Per-row log loss with scikit-learn's clipping of the (already LOG_LOSS_EPS-clipped) probability."""
    true_p = np.where(data.known, data.proba[np.arange(data.n), np.maximum(data.y_index, 0)], 0.0)
    clipped = np.clip(np.clip(true_p, LOG_LOSS_EPS, 1.0), np.finfo(np.float64).eps, 1.0 - np.finfo(np.float64).eps)
    return np.asarray(-np.log(clipped), dtype=np.float64)


def _bootstrap_ece(data: Predictions, weights: WeightArray, bins: int) -> FloatArray:
    bin_ids = _bin_ids(data.confidence, bins)
    confidence, correct = data.confidence, data.correct.astype(np.float64)
    values = np.empty(weights.shape[0], dtype=np.float64)
    for b, w in enumerate(weights):
        gap = np.bincount(bin_ids, w * correct, minlength=bins) - np.bincount(bin_ids, w * confidence, minlength=bins)
        values[b] = np.abs(gap).sum() / data.n
    return values


def _bootstrap_auc(data: Predictions, weights: WeightArray) -> FloatArray:
    """Macro OvR ROC AUC of each resample, resamples given as row multiplicities.

    Weighted Mann-Whitney: AUC_c = sum over positives i and negatives j of w_i w_j ([s_i > s_j] +
    [s_i = s_j] / 2) / (W_pos W_neg). Each class column is sorted once; per resample the weighted
    count of rows below each positive is a prefix sum along the sorted column, from which the positives
    of the class below it are subtracted. Classes without positives or negatives in a resample are left
    out of its average, as in the point estimate. Cost: O(n x classes) per resample.
    """
    n, n_boot = data.n, weights.shape[0]
    total, count = np.zeros(n_boot), np.zeros(n_boot)
    # Gathering one-byte multiplicities is ~3x faster than int64; a row drawn 256 times is not going to happen.
    small = weights.astype(np.uint8) if weights.max() <= np.iinfo(np.uint8).max else weights
    columns = _auc_columns(data)
    step = max(1, _CHUNK_CELLS // n)
    for start in range(0, columns.size, step):
        cols = columns[start : start + step]
        scores = np.ascontiguousarray(data.proba[:, cols].T)  # (k, n): one row per class
        order = np.argsort(scores, axis=1, kind="stable")
        ranked = np.take_along_axis(scores, order, axis=1)
        local = np.full(len(data.classes), -1, dtype=np.int64)
        local[cols] = np.arange(cols.size)
        pos_rows = np.flatnonzero(data.known & (local[np.maximum(data.y_index, 0)] >= 0))
        pos_col = local[data.y_index[pos_rows]]
        pos_score = scores[pos_col, pos_rows]
        sort = np.lexsort((pos_score, pos_col))
        pos_rows, pos_col, pos_score = pos_rows[sort], pos_col[sort], pos_score[sort]
        lo = np.empty(pos_rows.size, dtype=np.int64)
        hi = np.empty(pos_rows.size, dtype=np.int64)
        bounds = np.searchsorted(pos_col, np.arange(cols.size + 1))
        for j in range(cols.size):
            part = slice(bounds[j], bounds[j + 1])
            lo[part] = np.searchsorted(ranked[j], pos_score[part], side="left")
            hi[part] = np.searchsorted(ranked[j], pos_score[part], side="right")
        # Tie groups among the positives of a class (sorted by class, then score).
        new_group = np.ones(pos_rows.size, dtype=np.bool_)
        new_group[1:] = (pos_col[1:] != pos_col[:-1]) | (pos_score[1:] != pos_score[:-1])
        starts = np.flatnonzero(new_group)
        group = np.cumsum(new_group) - 1
        group_start, group_end = starts[group], np.append(starts[1:], pos_rows.size)[group]
        class_start = bounds[pos_col]
        prefix = np.zeros((cols.size, n + 1), dtype=np.int32)
        pos_prefix = np.zeros(pos_rows.size + 1, dtype=np.int64)
        for b, w in enumerate(weights):
            np.cumsum(small[b][order], axis=1, dtype=np.int32, out=prefix[:, 1:])
            below_all = prefix[pos_col, lo]
            tied_all = prefix[pos_col, hi] - below_all
            w_pos = w[pos_rows]
            np.cumsum(w_pos, dtype=np.int64, out=pos_prefix[1:])
            below_pos = pos_prefix[group_start] - pos_prefix[class_start]
            tied_pos = pos_prefix[group_end] - pos_prefix[group_start]
            wins = w_pos * ((below_all - below_pos) + 0.5 * (tied_all - tied_pos))
            numerator = np.bincount(pos_col, wins, minlength=cols.size)
            positives = np.bincount(pos_col, w_pos, minlength=cols.size)
            negatives = n - positives
            defined = (positives > 0) & (negatives > 0)
            total[b] += (numerator[defined] / (positives[defined] * negatives[defined])).sum()
            count[b] += defined.sum()
    macro: FloatArray = np.divide(total, count, out=np.full(n_boot, np.nan), where=count > 0)
    return macro


def _bootstrap_label_metric(data: Predictions, weights: WeightArray, metric: str) -> FloatArray:
    """macro_f1, weighted_f1 or balanced_accuracy of each resample, by scikit-learn on integer-coded labels."""
    codes = {label: i for i, label in enumerate(sorted(set(data.y_true.tolist()) | set(data.y_pred.tolist())))}
    true = np.fromiter((codes[label] for label in data.y_true.tolist()), dtype=np.int64, count=data.n)
    pred = np.fromiter((codes[label] for label in data.y_pred.tolist()), dtype=np.int64, count=data.n)
    rows = np.arange(data.n)
    values = np.empty(weights.shape[0], dtype=np.float64)
    for b, w in enumerate(weights):
        sample = np.repeat(rows, w)
        if metric == "balanced_accuracy":
            values[b] = balanced_accuracy_score(true[sample], pred[sample])
        else:
            average = "macro" if metric == "macro_f1" else "weighted"
            values[b] = f1_score(true[sample], pred[sample], average=average, zero_division=0)
    return values


def _bootstrap_values(data: Predictions, weights: WeightArray, metric: str, ece_bins: int) -> FloatArray:
    """The metric on each resample (NaN where undefined)."""
    per_row: dict[str, Callable[[], FloatArray]] = {
        "accuracy": lambda: data.correct.astype(np.float64),
        "brier": lambda: _row_brier(data),
        "log_loss": lambda: _row_log_loss(data),
    }
    top_k = _TOP_K.fullmatch(metric)
    if top_k:
        hits = (_true_ranks(data) < int(top_k.group(1))).astype(np.float64)
        return np.asarray(weights @ hits / data.n, dtype=np.float64)
    if metric in per_row:
        return np.asarray(weights @ per_row[metric]() / data.n, dtype=np.float64)
    if metric in ("macro_f1", "weighted_f1", "balanced_accuracy"):
        return _bootstrap_label_metric(data, weights, metric)
    if metric == "ece":
        return _bootstrap_ece(data, weights, ece_bins)
    if metric == "auc_macro_ovr":
        return _bootstrap_auc(data, weights)
    raise ValueError(f"no bootstrap for metric {metric!r}")


def bootstrap_intervals(
    y_true: Sequence[str],
    proba: npt.ArrayLike,
    classes: Sequence[str],
    *,
    metrics: Sequence[str] = DEFAULT_BOOTSTRAP_METRICS,
    n_boot: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
    ece_bins: int = 15,
) -> dict[str, dict[str, float | None]]:
    """Percentile bootstrap intervals over rows: {metric: {"low", "high"}}, deterministic for a seed.

    Metrics: accuracy, balanced_accuracy, macro_f1, weighted_f1, topK_accuracy (any K), auc_macro_ovr,
    ece, brier, log_loss, with the definitions of `classification_metrics`. All metrics share the same
    resamples. A resample where a metric is undefined (no class with positives and negatives for the
    AUC) is left out of its percentiles; None bounds if it is undefined in all of them.
    """
    if n_boot < 1 or not 0.0 < confidence < 1.0:
        raise ValueError("n_boot must be positive and confidence in (0, 1)")
    data = align(y_true, proba, classes)
    rng = np.random.default_rng(seed)
    # Resamples as row multiplicities (int32: at most n per row), shared by all metrics.
    weights = np.stack(
        [np.bincount(rng.integers(0, data.n, data.n), minlength=data.n).astype(np.int32) for _ in range(n_boot)]
    )
    tail = 100.0 * (1.0 - confidence) / 2.0
    intervals: dict[str, dict[str, float | None]] = {}
    with _quiet():
        for metric in metrics:
            values = _bootstrap_values(data, weights, metric, ece_bins)
            values = values[np.isfinite(values)]
            if values.size == 0:
                intervals[metric] = {"low": None, "high": None}
                continue
            low, high = np.percentile(values, [tail, 100.0 - tail])
            intervals[metric] = {"low": _number(low), "high": _number(high)}
    return intervals
