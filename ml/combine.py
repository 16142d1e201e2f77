"""Knowledge transfer: the supervised model and the knowledge model combined into one calibrated
distribution over every disease, the knowledge model deciding where training data is thin.

For a case x and a disease d, with n_d its number of training cases and b(n_d) its bin
(0 | 1-2 | 3-5 | 6-20 | > 20 cases):

    z(x, d) = w_sup[b] * log p_sup(d | x)        if the supervised model knows d
            + w_kn[b]  * k(x, d)                 if d has HPO annotations (k: summed log LR)
            + w_prior  * log prior(d)            prior correction (resampling and class weights
                                                 move the supervised model's priors)
            + c[b] + c_annotated * [annotated]
    P(d | x) = softmax over the candidate diseases of z

The 17 weights are fitted by maximum likelihood (L-BFGS, a small L2 penalty) on out-of-fold
predictions, where a disease's count is its count in that fold's training rows: a disease with
no training case in a fold is exactly the situation the knowledge model is for, so the fit learns
how far to trust each source by how much data backs it. This is stacking with a conditional logit
(the features are per disease, the weights shared), which also calibrates: the same fit is a
temperature scaling of each source.

Prior and threshold correction: `w_prior` moves the supervised model's class priors (flattened by
class weights or SMOTE) back to the training frequencies, so the probabilities are calibrated;
`threshold` (lambda, chosen on the same out-of-fold cases by macro-F1 and rare-disease recall)
then divides each supervised class's probability by its prior to the power lambda when ranking
(decision_scores), moving decisions towards small classes without touching the probabilities.

Candidates: the supervised model's classes plus the knowledge model's top `KNOWLEDGE_CANDIDATES`
diseases for the case; the diseases left out have a negligible share of the knowledge posterior
(their absence is the only approximation; the true label is always added while fitting).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize

BIN_EDGES: tuple[int, ...] = (0, 2, 5, 20)  # bins: 0 | 1-2 | 3-5 | 6-20 | > 20 training cases
N_BINS = len(BIN_EDGES) + 1
KNOWLEDGE_CANDIDATES = 100
L2 = 1e-3
THRESHOLDS = (0.0, 0.25, 0.5, 0.75, 1.0)
EPSILON = 1e-12


def count_bin(count: int) -> int:
    return int(np.searchsorted(np.asarray(BIN_EDGES), count, side="left")) if count > 0 else 0


@dataclass
class Weights:
    supervised: list[float] = field(default_factory=lambda: [1.0] * N_BINS)
    knowledge: list[float] = field(default_factory=lambda: [0.0] * N_BINS)
    prior: float = 0.0
    offset: list[float] = field(default_factory=lambda: [0.0] * N_BINS)
    annotated: float = 0.0
    threshold: float = 0.0  # threshold correction (lambda), chosen after the fit: decisions only

    def vector(self) -> NDArray[np.float64]:
        return np.array([*self.supervised, *self.knowledge, self.prior, *self.offset, self.annotated])

    @classmethod
    def from_vector(cls, v: NDArray[np.float64]) -> Weights:
        n = N_BINS
        return cls(
            [float(x) for x in v[:n]],
            [float(x) for x in v[n : 2 * n]],
            float(v[2 * n]),
            [float(x) for x in v[2 * n + 1 : 3 * n + 1]],
            float(v[3 * n + 1]),
        )


@dataclass(frozen=True)
class CandidateTable:
    """Per case, per candidate slot (padded; `valid` marks real slots): the inputs of z."""

    diseases: list[list[str]]  # per case, its candidates' ids (length = its valid slots)
    log_supervised: NDArray[np.float64]  # (n, slots); 0 where the supervised model lacks d
    has_supervised: NDArray[np.bool_]
    knowledge: NDArray[np.float64]  # (n, slots); 0 where d has no annotation
    annotated: NDArray[np.bool_]
    log_prior: NDArray[np.float64]
    bins: NDArray[np.int64]
    valid: NDArray[np.bool_]


def candidate_table(
    supervised_classes: Sequence[str],
    supervised_proba: NDArray[np.float64],
    knowledge_ids: Sequence[Sequence[str]],
    knowledge_scores: Sequence[Mapping[str, float]],
    *,
    counts: Mapping[str, int],
) -> CandidateTable:
    """The candidate slots of each case: every supervised class, then the case's knowledge
    candidates (`knowledge_ids[i]`, scored in `knowledge_scores[i]`, which also scores the
    annotated supervised classes)."""
    total = sum(counts.values())
    n_classes = len(supervised_classes)
    position = {disease: j for j, disease in enumerate(supervised_classes)}
    rows: list[list[str]] = []
    for i in range(len(supervised_proba)):
        diseases = list(supervised_classes)
        diseases.extend(d for d in knowledge_ids[i] if d not in position)
        rows.append(diseases)
    slots = max((len(r) for r in rows), default=n_classes)
    shape = (len(rows), slots)
    table = CandidateTable(
        rows,
        np.zeros(shape),
        np.zeros(shape, dtype=bool),
        np.zeros(shape),
        np.zeros(shape, dtype=bool),
        np.zeros(shape),
        np.zeros(shape, dtype=np.int64),
        np.zeros(shape, dtype=bool),
    )
    table.log_supervised[:, :n_classes] = np.log(np.clip(supervised_proba, EPSILON, 1.0))
    table.has_supervised[:, :n_classes] = True
    normaliser = total + 0.5 * max(len(counts), 1)
    by_disease: dict[str, tuple[int, float]] = {}  # bin and log prior, once per disease
    for i, diseases in enumerate(rows):
        table.valid[i, : len(diseases)] = True
        scores = knowledge_scores[i]
        for j, disease in enumerate(diseases):
            if disease in scores:
                table.knowledge[i, j] = scores[disease]
                table.annotated[i, j] = True
            if disease not in by_disease:
                count = counts.get(disease, 0)
                by_disease[disease] = (count_bin(count), float(np.log((count + 0.5) / normaliser)))
            table.bins[i, j], table.log_prior[i, j] = by_disease[disease]
    return table


def _logits(table: CandidateTable, v: NDArray[np.float64]) -> tuple[NDArray[np.float64], list[Any]]:
    n = N_BINS
    w_sup, w_kn, w_prior, offset, w_ann = v[:n], v[n : 2 * n], v[2 * n], v[2 * n + 1 : 3 * n + 1], v[3 * n + 1]
    sup = table.log_supervised * table.has_supervised
    prior = table.log_prior * table.has_supervised
    kn = table.knowledge * table.annotated
    z = w_sup[table.bins] * sup + w_kn[table.bins] * kn + w_prior * prior + offset[table.bins] + w_ann * table.annotated
    z = np.where(table.valid, z, -np.inf)
    return z, [sup, kn, prior]


def probabilities(table: CandidateTable, weights: Weights) -> NDArray[np.float64]:
    """(n, slots) probabilities over each case's candidates (0 in padding slots)."""
    z, _ = _logits(table, weights.vector())
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return np.asarray(p / p.sum(axis=1, keepdims=True), dtype=np.float64)


def decision_scores(table: CandidateTable, weights: Weights) -> NDArray[np.float64]:
    """The order of the candidates (top-k, the predicted disease): the calibrated log-probability
    with the threshold correction, each supervised class's probability divided by its training
    prior to the power lambda (relative to the mean class), which moves decisions towards the small
    classes. The probabilities shown stay the calibrated ones (`probabilities`)."""
    z, _ = _logits(table, weights.vector())
    if weights.threshold:
        prior = np.where(table.has_supervised, table.log_prior, np.nan)
        centred = np.nan_to_num(prior - np.nanmean(prior, axis=1, keepdims=True))
        z = z - weights.threshold * centred
    return np.asarray(z, dtype=np.float64)


@dataclass(frozen=True)
class FitCases:
    """Out-of-fold cases for the fit: a candidate table, the true labels and each case's weight
    (the inverse of its sampling rate, so that a sample rich in rare cases still fits the table's
    class mix). Cases whose true disease is not among their candidates are left out: inference
    could not rank it either, and adding it would teach the fit a candidate that never occurs."""

    table: CandidateTable
    truth: list[str]
    weights: NDArray[np.float64]

    @property
    def reachable(self) -> NDArray[np.bool_]:
        return np.array([label in diseases for diseases, label in zip(self.table.diseases, self.truth, strict=True)])


def choose_threshold(
    cases: Sequence[FitCases],
    weights: Weights,
    score: Callable[[list[str], list[str], list[float]], float],
) -> tuple[float, dict[str, float]]:
    """Threshold correction: the lambda of THRESHOLDS whose decisions score best on the
    out-of-fold cases (`score(truth, predicted, case weights)`, higher is better; ties go to the
    smaller). Every case counts here, reachable or not: a decision is judged as it would be made."""
    results: dict[str, float] = {}
    best, best_score = 0.0, -np.inf
    truth = [label for part in cases for label in part.truth]
    case_weights = [float(w) for part in cases for w in part.weights]
    for threshold in THRESHOLDS:
        trial = replace(weights, threshold=threshold)
        predicted = [
            part.table.diseases[i][int(j)]
            for part in cases
            for i, j in enumerate(np.argmax(decision_scores(part.table, trial), axis=1))
        ]
        value = score(truth, predicted, case_weights)
        results[f"{threshold:g}"] = round(value, 6)
        if value > best_score + 1e-9:
            best, best_score = threshold, value
    return best, results


class _Likelihood:
    """The weighted negative log likelihood of one table's reachable cases, and its gradient."""

    def __init__(self, cases: FitCases) -> None:
        keep = cases.reachable
        table = cases.table
        self.rows = np.flatnonzero(keep)
        self.target = np.array([table.diseases[i].index(cases.truth[i]) for i in self.rows], dtype=np.int64)
        self.weights = cases.weights[self.rows]
        self.table = CandidateTable(
            [table.diseases[i] for i in self.rows],
            *(getattr(table, name)[self.rows] for name in _ARRAYS),
        )
        self.onehot_bins = np.eye(N_BINS)[self.table.bins]  # (n, slots, bins)

    def __call__(self, v: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        rows = np.arange(len(self.target))
        z, (sup, kn, prior) = _logits(self.table, v)
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        normaliser = p.sum(axis=1)
        loss = float(np.sum(self.weights * (np.log(normaliser) - z[rows, self.target])))
        residual = p / normaliser[:, None]
        residual[rows, self.target] -= 1.0  # d loss / d z
        residual *= self.weights[:, None]
        grad = np.concatenate(
            [
                np.einsum("ij,ijb->b", residual * sup, self.onehot_bins),
                np.einsum("ij,ijb->b", residual * kn, self.onehot_bins),
                [float(np.sum(residual * prior))],
                np.einsum("ij,ijb->b", residual, self.onehot_bins),
                [float(np.sum(residual * self.table.annotated))],
            ]
        )
        return loss, grad


_ARRAYS = ("log_supervised", "has_supervised", "knowledge", "annotated", "log_prior", "bins", "valid")


def fit_weights(cases: Sequence[FitCases]) -> tuple[Weights, dict[str, Any]]:
    """Maximum likelihood weights over several tables (one per fold)."""
    parts = [_Likelihood(part) for part in cases]
    total = sum(float(part.weights.sum()) for part in parts)
    if total <= 0:
        return Weights(), {"log_loss": None, "iterations": 0, "cases": 0, "unreachable": _unreachable(cases)}

    def objective(v: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        loss, grad = 0.0, np.zeros_like(v)
        for part in parts:
            part_loss, part_grad = part(v)
            loss += part_loss
            grad += part_grad
        return loss / total + L2 * float(v @ v), grad / total + 2 * L2 * v

    # More evidence never lowers a disease's probability: source weights are kept non-negative.
    bounds = [(0.0, None)] * (2 * N_BINS) + [(None, None)] * (N_BINS + 2)
    result = minimize(
        objective, Weights().vector(), jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 500}
    )
    weights = Weights.from_vector(np.asarray(result.x, dtype=np.float64))
    fit = {
        "log_loss": round(float(result.fun), 6),
        "iterations": int(result.nit),
        "cases": sum(len(part.target) for part in parts),
        "unreachable": _unreachable(cases),
    }
    return weights, fit


def _unreachable(cases: Sequence[FitCases]) -> int:
    return sum(int((~part.reachable).sum()) for part in cases)
