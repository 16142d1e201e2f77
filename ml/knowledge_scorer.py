"""The knowledge model's scores for batches of cases, with numpy: the same numbers as ml/knowledge.py.

A disease's score is a sum over the case's terms of a log likelihood ratio that depends only on the
term and the disease, so each term has one vector over all the diseases (one for the term observed,
one for it excluded) and a case's scores are the sums of its terms' vectors:

    scores(case) = sum(observed vector of o for o in observed) + sum(excluded vector of e for e in excluded)

`KnowledgeScorer` computes a term's vectors with numpy over all the diseases at once: over an
inverted index term -> diseases of the propagated profiles, it walks the term's lineage from the
farthest ancestor to the term itself, so that each disease ends with the closest ancestor-or-self it
has, as the model's loop finds it. A vector takes only a few hundred distinct values (one per
lineage level and frequency), so the cache keeps each as 16-bit codes into a small table of its
values: 25 KB + a few KB per term over the 12,632 HPO diseases, a quarter of a float64 vector; at
most `max_cached_terms` of them (8,192 by default: about 250 MB), the least recently used evicted.
Cases are scored a small batch at a time: the batch's vectors decoded, then added up.

Same numbers: the logarithms are Python's (`math.log`, once per distinct value; numpy's log can
differ in the last bit) and the sums are added up as Python's `sum()` does (with Neumaier's
compensation since Python 3.12, in order before), so `scores` equals `KnowledgeModel.scores` bit for
bit on the same interpreter, and `top` orders exactly like `KnowledgeModel.rank`: best score first,
ties by disease id, with the posterior probability under a uniform prior (softmax over all the
diseases).

numpy only: KnowledgeModel stays pure Python for the CLI and the endpoint; `KnowledgeModel.scorer()`
imports this module on demand. Python 3.10 compatible (the SageMaker XGBoost 3.0-5 image).
"""

from __future__ import annotations

import math
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from ml.knowledge import EXCLUDED_MATCH, MAX_EXCLUDED_FREQUENCY, NOISE, Disease, KnowledgeModel

# A case: its observed terms and its excluded terms (a repeated term counts once, as in the model).
Case = tuple[Iterable[str], Iterable[str]]
Floats = npt.NDArray[np.float64]
Indices = npt.NDArray[np.intp]
Codes = npt.NDArray[np.unsignedinteger[Any]]
_Terms = tuple[list[str], list[str]]
_Key = tuple[bool, str]  # (excluded?, term): which vector of a term

DEFAULT_MAX_CACHED_TERMS = 8192
BATCH_SIZE = 32  # cases scored at once
# Python's sum() of floats compensates its rounding errors (Neumaier) since 3.12; before, in order.
COMPENSATED_SUM = sys.version_info >= (3, 12)


class TopK(NamedTuple):
    """The best diseases of each case, best first: arrays of shape (n_cases, k)."""

    indices: Indices  # positions in KnowledgeScorer.diseases (= KnowledgeModel.diseases)
    scores: Floats  # summed log likelihood ratios, as KnowledgeModel.scores
    probabilities: Floats  # posterior, uniform prior over all the diseases


class KnowledgeScorer:
    """`KnowledgeModel.scores` for many cases at once; build one per model and reuse it (its cache).

    Building takes about half a second over the HPO diseases (an inverted index of the profiles); a
    term's vector, under a millisecond the first time it is seen. Not thread safe (the cache).
    """

    def __init__(
        self,
        model: KnowledgeModel,
        max_cached_terms: int = DEFAULT_MAX_CACHED_TERMS,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        if max_cached_terms < 1 or batch_size < 1:
            raise ValueError("max_cached_terms and batch_size must be positive")
        self._model = model
        self.diseases: list[Disease] = list(model.diseases)
        n = len(self.diseases)
        self._positions = {disease.id: i for i, disease in enumerate(self.diseases)}
        by_id = sorted(range(n), key=lambda i: self.diseases[i].id)
        self._id_rank = np.empty(n, dtype=np.intp)  # ties are broken by id, as in rank()
        self._id_rank[by_id] = np.arange(n)
        self._ids_in_order = by_id == list(range(n))
        # The inverted profiles: term -> (diseases having it, ascending; codes of their frequencies).
        frequencies = sorted({f for profile in model._profiles for f in profile.values()})
        self._frequencies: list[float] = frequencies
        code_of = {f: code for code, f in enumerate(frequencies)}
        diseases: dict[str, list[int]] = {}
        codes: dict[str, list[int]] = {}
        for i, profile in enumerate(model._profiles):
            for term, frequency in profile.items():
                if term not in diseases:
                    diseases[term], codes[term] = [], []
                diseases[term].append(i)
                codes[term].append(code_of[frequency])
        self._columns = {
            term: (np.array(rows, dtype=np.intp), np.array(codes[term])) for term, rows in diseases.items()
        }
        annotated_not: dict[str, list[int]] = {}
        for i, disease in enumerate(self.diseases):
            for term in disease.excluded:
                annotated_not.setdefault(term, []).append(i)
        self._annotated_not = {term: np.array(rows, dtype=np.intp) for term, rows in annotated_not.items()}
        # The cache: slot -> the codes of a vector (a row of _codes) and its values (a table).
        self._capacity = max_cached_terms
        self._batch_size = batch_size
        self._code_type = np.uint16 if n <= 1 << 16 else np.uint32  # a vector has at most n values
        self._codes: Codes = np.zeros((min(max_cached_terms, 64), n), dtype=self._code_type)
        self._tables: list[Floats] = []
        self._slots: OrderedDict[_Key, int] = OrderedDict()  # least recently used first
        self._buffer: Floats = np.empty(0)

    def __len__(self) -> int:
        return len(self.diseases)

    def knows(self, disease_id: str) -> bool:
        """Whether the disease has HPO annotations (a column of `scores`)."""
        return disease_id in self._positions

    def index_of(self, disease_id: str) -> int:
        """The position of a disease in `diseases` (its column in `scores`); KeyError if unknown."""
        try:
            return self._positions[disease_id]
        except KeyError:
            raise KeyError(f"unknown disease id {disease_id!r}") from None

    def scores(
        self,
        cases: Iterable[Case],
        diseases: Sequence[str] | None = None,
        dtype: npt.DTypeLike = np.float64,
    ) -> npt.NDArray[np.floating[Any]]:
        """The summed log likelihood ratios: shape (n_cases, n_diseases), diseases in model order.

        `cases`: (observed terms, excluded terms) pairs. With `diseases` (disease ids), only those
        columns, in that order: shape (n_cases, len(diseases)), added up for those diseases only.
        Computed in float64 (KnowledgeModel.scores' numbers); `dtype=np.float32` halves the returned
        array (2,000 cases x 12,632 diseases: 202 MB in float64).
        """
        terms = [_terms(case) for case in cases]
        columns = None if diseases is None else np.array([self.index_of(d) for d in diseases], dtype=np.intp)
        width = len(self.diseases) if columns is None else len(columns)
        result: npt.NDArray[np.floating[Any]] = np.empty((len(terms), width), dtype=dtype)
        for start in range(0, len(terms), self._batch_size):
            batch = terms[start : start + self._batch_size]
            result[start : start + len(batch)] = _total(*self._gathered(batch, columns), compensated=COMPENSATED_SUM)
        return result

    def top(self, cases: Iterable[Case], k: int = 10) -> TopK:
        """The k best diseases of each case, best first, ties by disease id (as KnowledgeModel.rank).

        Arrays of shape (n_cases, min(k, n_diseases)). Each case's scores over all the diseases (the
        posterior needs them all) are computed a batch at a time and never kept.
        """
        terms = [_terms(case) for case in cases]
        k = max(0, min(k, len(self.diseases)))
        indices = np.empty((len(terms), k), dtype=np.intp)
        scores = np.empty((len(terms), k))
        probabilities = np.empty((len(terms), k))
        if k:
            for start in range(0, len(terms), self._batch_size):
                batch = terms[start : start + self._batch_size]
                end = start + len(batch)
                indices[start:end], scores[start:end], probabilities[start:end] = self._top_batch(batch, k)
        return TopK(indices, scores, probabilities)

    def _top_batch(self, batch: list[_Terms], k: int) -> tuple[Indices, Floats, Floats]:
        """The k best diseases of a few cases: their positions, scores and probabilities."""
        source, observed, excluded = self._gathered(batch, None)
        # Every score added up in order (faster; the per-term values are below 10 in magnitude, so
        # within 1e-14 x terms^2 of Python's compensated sum, well inside the candidates' margin),
        # then the best ones again as Python adds them up: the order and the ties are rank()'s.
        scores = _total(source, observed, excluded, compensated=False)
        candidates, real = _candidates(scores, k, margin=1e-9 * (1 + observed.shape[1] + excluded.shape[1]) ** 2)
        if COMPENSATED_SUM:
            exact = _total(source, observed, excluded, compensated=True, candidates=candidates)
        else:  # Python adds up in order too: these are its numbers already
            exact = np.take_along_axis(scores, candidates, axis=1)
        negated = np.where(real, -exact, np.inf)  # the padding sorts last
        if not self._ids_in_order:  # by id first, so that the stable sort below breaks ties by id
            by_id = np.argsort(self._id_rank[candidates], axis=1, kind="stable")
            candidates = np.take_along_axis(candidates, by_id, axis=1)
            negated = np.take_along_axis(negated, by_id, axis=1)
        order = np.argsort(negated, axis=1, kind="stable")[:, :k]
        best = np.take_along_axis(candidates, order, axis=1)
        best_scores = -np.take_along_axis(negated, order, axis=1)
        highest = best_scores[:, :1]  # as the model: exp(score - highest) / sum of them all
        scores -= highest
        normaliser = np.exp(scores, out=scores).sum(axis=1, keepdims=True)
        return best, best_scores, np.exp(best_scores - highest) / normaliser

    def _gathered(self, batch: list[_Terms], columns: Indices | None) -> tuple[Floats, Indices, Indices]:
        """The vectors of a few cases' terms as the rows of a matrix (row 0: zeros) and, for each case,
        the rows of its observed terms and of its excluded terms (padded with row 0)."""
        keys = list(dict.fromkeys(key for observed, excluded in batch for key in _keys(observed, excluded)))
        width = len(self.diseases) if columns is None else len(columns)
        size = (1 + len(keys)) * width
        if len(self._buffer) < size:  # reused: no new pages to fault in every batch
            self._buffer = np.empty(max(size, 2 * len(self._buffer)))
        source = self._buffer[:size].reshape(1 + len(keys), width)
        source[0] = 0.0
        for row, key in enumerate(keys, start=1):
            codes, table = self._encoded(key)
            np.take(table, codes if columns is None else codes[columns], out=source[row], mode="clip")
        row_of = {key: row for row, key in enumerate(keys, start=1)}
        observed = _padded([[row_of[False, t] for t in terms] for terms, _ in batch])
        excluded = _padded([[row_of[True, t] for t in terms] for _, terms in batch])
        return source, observed, excluded

    def _encoded(self, key: _Key) -> tuple[Codes, Floats]:
        """A term's vector as codes into a table of its values, from the cache or computed."""
        slot = self._slots.get(key)
        if slot is not None:
            self._slots.move_to_end(key)
            return self._codes[slot], self._tables[slot]
        excluded, term = key
        codes, table = self._excluded_encoded(term) if excluded else self._observed_encoded(term)
        if len(self._slots) >= self._capacity:
            slot = self._slots.popitem(last=False)[1]  # the least recently used vector's
            self._tables[slot] = table
        else:
            slot = len(self._slots)
            self._tables.append(table)
            if slot >= len(self._codes):  # grow geometrically up to the capacity
                grown: Codes = np.zeros(
                    (min(self._capacity, 2 * len(self._codes)), len(self.diseases)), self._code_type
                )
                grown[: len(self._codes)] = self._codes
                self._codes = grown
        self._codes[slot] = codes
        self._slots[key] = slot
        return self._codes[slot], table

    def _observed_encoded(self, term: str) -> tuple[Codes, Floats]:
        """KnowledgeModel._observed_log_lr for every disease, encoded."""
        model = self._model
        lineage = (term, *model.ancestors(term))
        background = model.background(term)
        specificities = [background / model.background(closest) for closest in lineage]
        floor, log_background = NOISE * background, math.log(background)
        n_codes = len(self._frequencies)
        unmatched = len(lineage) * n_codes  # the disease has no ancestor-or-self of the term
        annotated_not = unmatched + 1  # the disease is annotated NOT to have the term
        # Each disease's key: level in the lineage x frequency code of its closest ancestor-or-self.
        keys = np.full(len(self.diseases), unmatched, dtype=np.intp)
        for level in range(len(lineage) - 1, -1, -1):  # the farthest first: the closer ones overwrite it
            column = self._columns.get(lineage[level])
            if column is not None:
                keys[column[0]] = level * n_codes + column[1]
        if term in self._annotated_not:
            keys[self._annotated_not[term]] = annotated_not

        def value(key: int) -> float:
            if key == annotated_not:
                return math.log(NOISE / EXCLUDED_MATCH)
            if key == unmatched:
                return math.log(NOISE)
            level, code = divmod(key, n_codes)
            return math.log(max(self._frequencies[code] * specificities[level], floor)) - log_background

        return self._encode(keys, annotated_not + 1, value)

    def _excluded_encoded(self, term: str) -> tuple[Codes, Floats]:
        """KnowledgeModel._excluded_log_lr for every disease, encoded."""
        n_codes = len(self._frequencies)
        absent, annotated_not = n_codes, n_codes + 1  # keys besides the frequency codes
        keys = np.full(len(self.diseases), absent, dtype=np.intp)
        if term in self._columns:
            diseases, codes = self._columns[term]
            keys[diseases] = codes
        if term in self._annotated_not:
            keys[self._annotated_not[term]] = annotated_not
        against = math.log(1 - min(self._model.background(term), MAX_EXCLUDED_FREQUENCY))

        def value(key: int) -> float:
            if key == annotated_not:
                return math.log(EXCLUDED_MATCH)
            if key == absent:
                return 0.0
            return math.log(1 - min(self._frequencies[key], MAX_EXCLUDED_FREQUENCY)) - against

        return self._encode(keys, annotated_not + 1, value)

    def _encode(self, keys: Indices, n_keys: int, value: Callable[[int], float]) -> tuple[Codes, Floats]:
        """Keys in range(n_keys) as codes 0.. of the keys present, and the table of their values."""
        present = np.flatnonzero(np.bincount(keys, minlength=n_keys))
        code_of: Codes = np.zeros(n_keys, dtype=self._code_type)
        code_of[present] = np.arange(len(present))
        return code_of[keys], np.array([value(key) for key in present.tolist()])


def _terms(case: Case) -> _Terms:
    observed, excluded = case
    if isinstance(observed, str) or isinstance(excluded, str):
        raise TypeError("a case is (observed terms, excluded terms), each a sequence of HPO ids, not a string")
    return list(dict.fromkeys(observed)), list(dict.fromkeys(excluded))


def _keys(observed: list[str], excluded: list[str]) -> Iterable[_Key]:
    yield from ((False, term) for term in observed)
    yield from ((True, term) for term in excluded)


def _padded(rows: list[list[int]]) -> Indices:
    """Ragged lists of row numbers as a matrix, padded with row 0 (the zero vector)."""
    padded = np.zeros((len(rows), max(map(len, rows), default=0)), dtype=np.intp)
    for i, row in enumerate(rows):
        padded[i, : len(row)] = row
    return padded


def _candidates(scores: Floats, k: int, margin: float) -> tuple[Indices, npt.NDArray[np.bool_]]:
    """The columns of each row at or above (its k-th best score - margin), padded: (columns, real).

    The threshold is the k-th highest of the maxima of at least k disjoint groups of columns (so at
    least k columns reach it), groups of every nb-th column, so that neighbouring diseases (often
    variants with the same annotations) fall in different groups: it is close to the k-th score.
    """
    cases, n = scores.shape
    size = max(1, min(8, n // k))
    groups = n // size
    maxima = scores[:, : size * groups].reshape(cases, size, groups).max(axis=1)
    threshold = np.partition(maxima, groups - k, axis=1)[:, groups - k] - margin
    rows, columns = np.nonzero(scores >= threshold[:, None])  # by row, then by column
    counts = np.bincount(rows, minlength=cases)
    position = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    candidates = np.zeros((cases, int(counts.max())), dtype=np.intp)
    candidates[rows, position] = columns
    return candidates, np.arange(candidates.shape[1]) < counts[:, None]


def _total(
    source: Floats, observed: Indices, excluded: Indices, compensated: bool, candidates: Indices | None = None
) -> Floats:
    """Each case's sum of its observed terms' vectors plus the sum of its excluded terms' vectors, as
    the model adds them up; with `candidates` (n_cases, c), only those columns of each case."""
    total = _summed(source, observed, compensated, candidates)
    if total is None:
        total = np.zeros((len(observed), source.shape[1] if candidates is None else candidates.shape[1]))
    excluded_total = _summed(source, excluded, compensated, candidates)
    if excluded_total is not None:
        total += excluded_total
    return total


def _summed(source: Floats, rows: Indices, compensated: bool, candidates: Indices | None) -> Floats | None:
    """The sums over j of source[rows[:, j]] (only the `candidates` columns), rounded as Python's sum()
    rounds them: in order, or with Neumaier's compensation; None without a column."""
    if not rows.shape[1]:
        return None

    def gather(j: int, out: Floats) -> Floats:
        if candidates is None:
            return np.take(source, rows[:, j], axis=0, out=out, mode="clip")
        flat = rows[:, j, None] * source.shape[1] + candidates
        return np.take(source.reshape(-1), flat, out=out, mode="clip")

    shape = (len(rows), source.shape[1] if candidates is None else candidates.shape[1])
    total = gather(0, np.empty(shape))
    term, new, error = np.empty(shape), np.empty(shape), np.empty(shape)
    compensation = np.zeros(shape) if compensated else None
    for j in range(1, rows.shape[1]):
        gather(j, term)
        if compensation is None:
            total += term
            continue
        # Neumaier: the exact rounding error of each addition, summed apart. Computed here by Knuth's
        # TwoSum: the same number as Neumaier's two branches, without comparing magnitudes.
        np.add(total, term, out=new)
        np.subtract(new, total, out=error)  # z = t - s
        np.subtract(term, error, out=term)  # x - z
        np.subtract(new, error, out=error)  # t - z
        np.subtract(total, error, out=error)  # s - (t - z)
        error += term
        compensation += error
        total, new = new, total
    if compensation is not None:
        total += compensation
    return total
