"""Class imbalance: class weights and SMOTE / SMOTENC oversampling (focal loss is in focal_loss.py).

Oversampling runs on training rows only: the candidate pipelines call it inside `fit`, so a
cross-validation fold's validation rows are never seen, let alone interpolated.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from imblearn.over_sampling import SMOTE, SMOTENC
from numpy.typing import NDArray

IMBALANCE_STRATEGIES: tuple[str, ...] = ("none", "class_weights", "smote", "focal")
MAX_NEIGHBOURS = 5


def class_weights(
    labels: NDArray[np.int64], power: float, counts: NDArray[np.int64] | None = None
) -> NDArray[np.float64]:
    """Per-row weights (n_majority / n_class) ** power, mean 1 over the table. power 1 is
    sklearn's "balanced" up to a constant; below 1 it tempers the weight of a class seen once
    among thousands. `counts`: the whole table's class counts when `labels` is one instance's
    shard (multi-instance training), so that every instance weights alike."""
    if counts is None:
        counts = np.bincount(labels)
    weights = (counts.max() / np.maximum(counts, 1)) ** power
    mean = float((counts * weights).sum() / max(int(counts.sum()), 1))
    return np.asarray(weights[labels] / mean, dtype=np.float64)


def smote_targets(labels: NDArray[np.int64], target: int) -> dict[int, int]:
    """Each class with at least 2 and fewer than `target` rows is brought up to `target` rows (a
    class seen once has no neighbour to interpolate with: it stays as it is)."""
    counts = Counter(labels.tolist())
    return {label: target for label, count in counts.items() if 2 <= count < target}


def oversample(
    matrix: sp.csr_matrix,
    labels: NDArray[np.int64],
    *,
    target: int,
    categorical_indices: Sequence[int],
    seed: int,
) -> tuple[sp.csr_matrix, NDArray[np.int64]]:
    """SMOTE (SMOTENC when there are categorical columns) up to `target` rows per minority class.

    SMOTE needs k neighbours within the class: classes are resampled in groups of the same k
    (min(5, rows - 1)), so that a class of 3 rows still gets synthetic rows from its 2 others.
    """
    targets = smote_targets(labels, target)
    counts = Counter(labels.tolist())
    by_k: dict[int, dict[int, int]] = {}
    for label, wanted in targets.items():
        by_k.setdefault(min(MAX_NEIGHBOURS, counts[label] - 1), {})[label] = wanted
    blocks, block_labels = [matrix], [labels]
    for k, strategy in sorted(by_k.items()):
        rows = np.isin(labels, [*strategy, *_helpers(labels, strategy)])
        subset, subset_labels = matrix[rows], labels[rows]
        sampler = (
            SMOTENC(list(categorical_indices), sampling_strategy=strategy, k_neighbors=k, random_state=seed)
            if categorical_indices
            else SMOTE(sampling_strategy=strategy, k_neighbors=k, random_state=seed)
        )
        resampled, resampled_labels = sampler.fit_resample(subset, subset_labels)
        # fit_resample returns the input rows first, then the synthetic ones.
        blocks.append(sp.csr_matrix(resampled[subset.shape[0] :]))
        block_labels.append(np.asarray(resampled_labels[subset.shape[0] :], dtype=np.int64))
    return sp.vstack(blocks, format="csr", dtype=np.float32), np.concatenate(block_labels)


def _helpers(labels: NDArray[np.int64], strategy: dict[int, int]) -> list[int]:
    """imbalanced-learn needs a second class in the call; the largest class not resampled is it
    (its rows are only read: the strategy names the classes that get synthetic rows)."""
    counts = Counter(int(label) for label in labels if int(label) not in strategy)
    return [counts.most_common(1)[0][0]] if counts else []
