"""Splits: a held-out test split and cross-validation folds, stratified by label, grouped by patient.

No patient is ever on both sides of a split (a patient's records are alike: splitting them would
measure memory, not diagnosis). Classes too small to split are handled explicitly:

- held-out split: a class with fewer than 2 patients stays whole in training (it cannot be both
  learnt and tested); such classes are listed in the model's evaluation;
- folds: a class with fewer patients than folds cannot be in every fold; its rows go where
  StratifiedGroupKFold puts them, and in a fold whose training side lacks the class, its
  validation rows measure the model on a disease it has not seen (what the knowledge model is
  for). Folds are repeated with new shuffles (`repeats`) where classes are that small, so that
  their estimates rest on more than one draw.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sklearn.model_selection import StratifiedGroupKFold

from ml.table import TableError

Indices = NDArray[np.int64]


@dataclass(frozen=True)
class Fold:
    repeat: int
    fold: int
    train: Indices
    valid: Indices


def patients_per_class(labels: NDArray[np.str_], groups: NDArray[np.str_]) -> dict[str, int]:
    pairs = {(str(label), str(group)) for label, group in zip(labels, groups, strict=True)}
    counts: dict[str, int] = {}
    for label, _group in pairs:
        counts[label] = counts.get(label, 0) + 1
    return counts


def _group_folds(
    labels: NDArray[np.str_], groups: NDArray[np.str_], k: int, seed: int
) -> Iterator[tuple[Indices, Indices]]:
    with warnings.catch_warnings():
        # "The least populated class in y has only n members": expected, handled as documented.
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        for train, valid in splitter.split(np.zeros(len(labels)), labels, groups):
            yield np.asarray(train, dtype=np.int64), np.asarray(valid, dtype=np.int64)


def holdout_split(
    labels: NDArray[np.str_], groups: NDArray[np.str_], test_fraction: float, seed: int
) -> tuple[Indices, Indices]:
    """(train rows, test rows); classes with fewer than 2 patients stay in training, and so does
    every record of their patients (a patient with two diagnoses is never on both sides)."""
    if not 0 < test_fraction < 0.5:
        raise ValueError("test_fraction must be in (0, 0.5)")
    counts = patients_per_class(labels, groups)
    kept = {str(group) for label, group in zip(labels, groups, strict=True) if counts[str(label)] < 2}
    splittable = np.array([str(group) not in kept for group in groups])
    rows = np.flatnonzero(splittable)
    if len(set(groups[rows].tolist())) < 2:
        raise TableError("no class has 2 or more patients: there is nothing to test on")
    k = max(2, round(1 / test_fraction))
    train_part, test_part = next(_group_folds(labels[rows], groups[rows], k, seed))
    train = np.sort(np.concatenate([rows[train_part], np.flatnonzero(~splittable)]))
    return train, np.sort(rows[test_part])


def cv_folds(labels: NDArray[np.str_], groups: NDArray[np.str_], k: int, repeats: int, seed: int) -> list[Fold]:
    folds = []
    for repeat in range(repeats):
        for number, (train, valid) in enumerate(_group_folds(labels, groups, k, seed + repeat)):
            folds.append(Fold(repeat, number, train, valid))
    return folds


def auto_repeats(labels: NDArray[np.str_], groups: NDArray[np.str_], k: int, most: int = 2) -> int:
    """Repeats when some class (of at least 2 patients) has fewer patients than folds."""
    counts = [count for count in patients_per_class(labels, groups).values() if count >= 2]
    return most if counts and min(counts) < k else 1


def selection_sample(labels: NDArray[np.str_], groups: NDArray[np.str_], max_rows: int, seed: int) -> Indices:
    """Rows for model selection when the table is large: every row of each class's smallest
    share is kept (rare classes whole), the largest classes are thinned by patient to fit
    `max_rows`. Selection compares candidates; the chosen one is refitted on every row."""
    if len(labels) <= max_rows:
        return np.arange(len(labels), dtype=np.int64)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    # The cap per class that fits the budget: water-filling over the sorted class sizes.
    cap = max_rows
    order = np.sort(counts)
    for i, count in enumerate(order):
        remaining = len(order) - i
        if count * remaining > max_rows - order[:i].sum():
            cap = int((max_rows - order[:i].sum()) // remaining)
            break
    keep: list[NDArray[np.int64]] = []
    for label, count in zip(classes, counts, strict=True):
        rows = np.flatnonzero(labels == label)
        if count <= cap:
            keep.append(rows)
            continue
        patients = np.unique(groups[rows])
        chosen = rng.permutation(patients)[: max(1, int(len(patients) * cap / count))]
        keep.append(rows[np.isin(groups[rows], chosen)])
    return np.sort(np.concatenate(keep)).astype(np.int64)


def hashed_split(groups: NDArray[np.str_], test_fraction: float, seed: int) -> tuple[Indices, Indices]:
    """(train rows, test rows) by a hash of the patient: the same on every instance of a
    multi-instance job, whatever shard holds a patient's records (not stratified: each instance
    sees only its shard, so a stratified split cannot be agreed on without moving the data)."""
    if not 0 < test_fraction < 0.5:
        raise ValueError("test_fraction must be in (0, 0.5)")
    buckets = np.array(
        [int.from_bytes(hashlib.sha256(f"{seed}:{group}".encode()).digest()[:8], "big") % 10_000 for group in groups]
    )
    test = buckets < round(test_fraction * 10_000)
    return np.flatnonzero(~test).astype(np.int64), np.flatnonzero(test).astype(np.int64)
