"""Drift statistics: is a window of current data distributed as the reference sample?

Pure numpy/scipy on one feature at a time: a numeric feature is an array of floats (NaN =
missing, left out per feature), a categorical one the counts of its categories (a reference
profile can then store counts, not rows). The test follows Evidently's default selection
(evidently.legacy.calculations.stattests.registry.get_default_stattest), with one change: it is
decided by the SMALLER of the two samples, not by the reference's size, so that a small current
window against a large reference gets a hypothesis test with a p-value rather than a distance:

| smaller sample | numeric, more than 5 distinct values | numeric (<= 5 values) or categorical |
|---|---|---|
| <= 1,000 | Kolmogorov-Smirnov p-value | chi-squared p-value (3+ values), z-test of two proportions (2) |
| > 1,000 | Wasserstein distance / reference std >= 0.1 | Jensen-Shannon distance >= 0.1 |

PSI (>= 0.1, Evidently's binning) can replace either distance. The statistics are Evidently's
(the tests compare them), except the chi-squared: Evidently's is a goodness-of-fit test against
the reference's proportions, as if they were exact; a reference sample has its own noise, which
that test ignores, so at a window of 1,000 against 5,000 reference rows it alarms far more often
than its level says once many features are tested. Ours is the two-sample (homogeneity) test of
the 2 x k table, which tends to Evidently's as the reference grows (`two_sample_chi_squared=False`
gives Evidently's exactly).

False alarms: the p-value tests are judged together by Benjamini-Hochberg at `false_alarm_rate`
(under no drift at all, the chance that any is flagged is at most that rate); the distances are
judged by their thresholds, which a window of more than 1,000 rows from the reference's own
distribution stays well below. Features with fewer than `min_feature_samples` values on either
side are not tested; a window below `min_samples` is `insufficient_data`, never `drift`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy import special, stats
from scipy.spatial import distance

NUMERIC, CATEGORICAL = "numeric", "categorical"
Kind = Literal["numeric", "categorical"]
Values = NDArray[np.float64]  # a numeric feature's values, NaN for missing
Counts = Mapping[str, int]  # a categorical feature's categories and their counts
Column = Values | Counts
FEW_VALUES = 5  # Evidently: a numeric feature with at most 5 distinct values is tested as categories
BINNED_VALUES = 20  # Evidently's binning (PSI, JS): a numeric reference with more values is binned (Sturges)
DIGITS = 6


@dataclass(frozen=True)
class DriftConfig:
    """The detector's settings (docs/monitoring.md, "Drift statistics")."""

    false_alarm_rate: float = 0.05  # Benjamini-Hochberg level over the p-value tests
    min_samples: int = 100  # a smaller window is insufficient_data
    min_feature_samples: int = 30  # a feature with fewer values on either side is not tested
    share_threshold: float = 0.0  # drift when share_drifted > this (strictly: 0.0 = any feature)
    small_sample: int = 1000  # the smaller sample at most this: p-value tests; above: distances
    wasserstein_threshold: float = 0.1
    jensen_shannon_threshold: float = 0.1
    psi_threshold: float = 0.1
    distance: Literal["default", "psi"] = "default"  # psi: PSI instead of Wasserstein and Jensen-Shannon
    two_sample_chi_squared: bool = True
    # Presentation drift (terms given the predicted class): its part of false_alarm_rate, and the
    # rows a predicted class needs in the window to be tested (the baseline keeps classes with at
    # least ml/drift_profile.py's PRESENTATION_MIN_ROWS rows).
    presentation_share: float = 0.2
    min_class_samples: int = 20

    def rates(self, presentation: bool) -> tuple[float, float]:
        """(features and predictions, presentation) false-alarm rates: together false_alarm_rate
        (a union bound), the presentation family's part only when the baseline has one."""
        if not presentation:
            return self.false_alarm_rate, 0.0
        part = self.false_alarm_rate * self.presentation_share
        return self.false_alarm_rate - part, part


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    kind: str
    test: str | None  # ks, chisquare, z, wasserstein, jensenshannon, psi; None when not tested
    statistic: float | None
    p_value: float | None  # p-value tests only
    threshold: float | None  # the distance's threshold, or the Benjamini-Hochberg cut-off p-value
    drifted: bool
    n_reference: int
    n_current: int
    status: str  # tested | insufficient_data
    summary: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {field: getattr(self, field) for field in self.__dataclass_fields__}


def _round(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), DIGITS)


# -- the tests (the same formulas as Evidently's) ------------------------------------------------
def ks_test(reference: Values, current: Values) -> float:
    """Two-sample Kolmogorov-Smirnov p-value (scipy's ks_2samp, as Evidently)."""
    return float(stats.ks_2samp(reference, current).pvalue)


def wasserstein_normed(reference: Values, current: Values) -> float:
    """Wasserstein-1 distance divided by the reference's standard deviation (at least 0.001)."""
    scale = max(float(np.std(reference)), 0.001)
    return float(stats.wasserstein_distance(reference, current)) / scale


def _aligned(reference: Counts, current: Counts) -> tuple[list[str], Values, Values]:
    keys = sorted({*(k for k, v in reference.items() if v), *(k for k, v in current.items() if v)})
    ref = np.array([reference.get(k, 0) for k in keys], dtype=np.float64)
    cur = np.array([current.get(k, 0) for k in keys], dtype=np.float64)
    return keys, ref, cur


def chi_squared_test(reference: Counts, current: Counts, two_sample: bool = True) -> tuple[float, float]:
    """(statistic, p-value). two_sample: Pearson's test of homogeneity of the 2 x k table;
    otherwise Evidently's goodness of fit of the current counts to the reference's proportions
    (a category absent from the reference then gives an infinite statistic, p-value 0)."""
    _keys, ref, cur = _aligned(reference, current)
    if len(ref) < 2:
        return 0.0, 1.0
    if two_sample:
        table = np.vstack([ref, cur])
        expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
        statistic = float(((table - expected) ** 2 / expected).sum())
        return statistic, float(stats.chi2.sf(statistic, len(ref) - 1))
    expected = ref * cur.sum() / ref.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(expected > 0, (cur - expected) ** 2 / np.where(expected > 0, expected, 1), np.inf)
    statistic = float(terms.sum())
    return statistic, float(stats.chi2.sf(statistic, len(ref) - 1))


def z_test(reference: Counts, current: Counts) -> tuple[float, float]:
    """(statistic, two-sided p-value) of the pooled z-test of two proportions: the share of the
    first category (sorted) in each sample, as Evidently. A single shared value: p-value 1."""
    keys, ref, cur = _aligned(reference, current)
    if len(keys) < 2:
        return 0.0, 1.0
    n1, n2 = ref.sum(), cur.sum()
    p1, p2 = 1 - ref[0] / n1, 1 - cur[0] / n2  # Evidently codes the first key 0, the others 1
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return float(z), float(2 * stats.norm.sf(abs(z)))


def _histograms(reference: Values, current: Values) -> tuple[Values, Values]:
    """Evidently's binning (stattests.utils.get_binned_data) of a numeric feature: Sturges bins
    over both samples when the reference has more than 20 distinct values, else one bin a value."""
    if len(np.unique(reference)) > BINNED_VALUES:
        edges = np.histogram_bin_edges(np.concatenate([reference, current]), bins="sturges")
        return (
            np.histogram(reference, edges)[0] / len(reference),
            np.histogram(current, edges)[0] / len(current),
        )
    _keys, ref, cur = _aligned(_value_counts(reference), _value_counts(current))
    return ref / ref.sum(), cur / cur.sum()


def _shares(reference: Column, current: Column) -> tuple[Values, Values]:
    if isinstance(reference, np.ndarray) and isinstance(current, np.ndarray):
        return _histograms(reference, current)
    assert not isinstance(reference, np.ndarray) and not isinstance(current, np.ndarray)
    _keys, ref, cur = _aligned(reference, current)
    return ref / ref.sum(), cur / cur.sum()


def jensen_shannon(reference: Column, current: Column) -> float:
    """Jensen-Shannon distance (natural log) of the binned or categorical distributions."""
    ref, cur = _shares(reference, current)
    return float(distance.jensenshannon(ref, cur))


def _fill_zeros(shares: Values) -> Values:
    """Evidently's replacement of empty bins (PSI): a small share instead of 0."""
    filled = shares.copy()
    smallest = float(filled[filled > 0].min())
    filled[filled == 0] = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return filled


def psi(reference: Column, current: Column) -> float:
    """Population stability index over Evidently's bins, empty bins filled as Evidently fills them."""
    ref, cur = (_fill_zeros(s) for s in _shares(reference, current))
    return float(np.sum((ref - cur) * np.log(ref / cur)))


# -- selection ------------------------------------------------------------------------------------
def _value_counts(values: Values) -> dict[str, int]:
    distinct, counts = np.unique(values, return_counts=True)
    return {repr(float(v)): int(c) for v, c in zip(distinct.tolist(), counts.tolist(), strict=True)}


def counts_of(values: Sequence[Any] | NDArray[Any]) -> dict[str, int]:
    """The categories of a column and their counts (None and NaN are missing: left out)."""
    kept = [str(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not kept:
        return {}
    distinct, counts = np.unique(np.array(kept, dtype=object), return_counts=True)
    return {str(k): int(c) for k, c in zip(distinct.tolist(), counts.tolist(), strict=True)}


def choose_test(kind: str, reference: Column, current: Column, config: DriftConfig) -> str:
    """Evidently's default test, decided by the smaller sample (see the module docstring)."""
    n = min(_size(reference), _size(current))
    if isinstance(reference, np.ndarray) and isinstance(current, np.ndarray):
        distinct = len(np.unique(np.concatenate([reference, current])))
        categorical = distinct <= FEW_VALUES
    else:
        distinct = len(_aligned(reference, current)[0])  # type: ignore[arg-type]
        categorical = True
    if n <= config.small_sample:
        if not categorical:
            return "ks"
        return "chisquare" if distinct > 2 else "z"
    if config.distance == "psi":
        return "psi"
    return "jensenshannon" if categorical else "wasserstein"


def _size(column: Column) -> int:
    return len(column) if isinstance(column, np.ndarray) else int(sum(column.values()))


def _summary(kind: str, reference: Column, current: Column) -> dict[str, Any]:
    """Aggregates only: means for numbers, the category whose share moved most."""
    if isinstance(reference, np.ndarray) and isinstance(current, np.ndarray):
        return {"reference_mean": _round(float(np.mean(reference))), "current_mean": _round(float(np.mean(current)))}
    assert not isinstance(reference, np.ndarray) and not isinstance(current, np.ndarray)
    keys, ref, cur = _aligned(reference, current)
    if not keys:
        return {}
    ref, cur = ref / max(ref.sum(), 1), cur / max(cur.sum(), 1)
    moved = int(np.argmax(np.abs(cur - ref)))
    return {"category": keys[moved], "reference_share": _round(ref[moved]), "current_share": _round(cur[moved])}


def _statistic(test: str, reference: Column, current: Column, config: DriftConfig) -> tuple[float, float | None]:
    """(statistic, p-value or None). Numeric columns with few values are tested as counts."""
    numeric = isinstance(reference, np.ndarray) and isinstance(current, np.ndarray)
    if test in ("chisquare", "z") and numeric:
        reference, current = _value_counts(reference), _value_counts(current)  # type: ignore[arg-type]
    if test == "ks":
        return float(stats.ks_2samp(reference, current).statistic), ks_test(reference, current)  # type: ignore[arg-type]
    if test == "chisquare":
        return chi_squared_test(reference, current, config.two_sample_chi_squared)  # type: ignore[arg-type]
    if test == "z":
        return z_test(reference, current)  # type: ignore[arg-type]
    if test == "wasserstein":
        return wasserstein_normed(reference, current), None  # type: ignore[arg-type]
    if test == "jensenshannon":
        return jensen_shannon(reference, current), None
    return psi(reference, current), None


def _threshold(test: str, config: DriftConfig) -> float:
    return {
        "wasserstein": config.wasserstein_threshold,
        "jensenshannon": config.jensen_shannon_threshold,
        "psi": config.psi_threshold,
    }[test]


def _present(column: Column) -> Column:
    if isinstance(column, np.ndarray):
        present: Values = column[~np.isnan(column)]
        return present
    return {str(k): int(v) for k, v in column.items() if v}


def feature_drift(name: str, kind: str, reference: Column, current: Column, config: DriftConfig) -> FeatureDrift:
    """One feature's test; `drifted` is final for distances, provisional (p < rate) for p-values
    until `judge` applies Benjamini-Hochberg over every p-value of the window."""
    reference, current = _present(reference), _present(current)
    n_ref, n_cur = _size(reference), _size(current)
    if min(n_ref, n_cur) < config.min_feature_samples:
        return FeatureDrift(name, kind, None, None, None, None, False, n_ref, n_cur, "insufficient_data", {})
    test = choose_test(kind, reference, current, config)
    statistic, p_value = _statistic(test, reference, current, config)
    threshold = config.false_alarm_rate if p_value is not None else _threshold(test, config)
    drifted = p_value < threshold if p_value is not None else statistic >= threshold
    return FeatureDrift(
        name,
        kind,
        test,
        _round(statistic),
        None if p_value is None else float(p_value),
        threshold,
        bool(drifted),
        n_ref,
        n_cur,
        "tested",
        _summary(kind, reference, current),
    )


def benjamini_hochberg(p_values: Sequence[float], rate: float) -> tuple[NDArray[np.bool_], float]:
    """Which hypotheses are rejected at false discovery rate `rate`, and the cut-off p-value
    (0 when none is). Under no drift at all, the chance of any rejection is at most `rate`."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    if m == 0:
        return np.zeros(0, dtype=np.bool_), 0.0
    order = np.sort(p)
    below = np.flatnonzero(order <= rate * np.arange(1, m + 1) / m)
    cutoff = float(order[below[-1]]) if len(below) else 0.0
    return (p <= cutoff) & (len(below) > 0), cutoff


def judge(results: Sequence[FeatureDrift], rate: float) -> list[FeatureDrift]:
    """Benjamini-Hochberg at `rate` over the p-value tests of `results` (features and predictions
    together)."""
    tested = [i for i, r in enumerate(results) if r.p_value is not None]
    rejected, cutoff = benjamini_hochberg([results[i].p_value or 0.0 for i in tested], rate)
    judged = list(results)
    for i, reject in zip(tested, rejected.tolist(), strict=True):
        judged[i] = FeatureDrift(
            **{
                **{f: getattr(results[i], f) for f in results[i].__dataclass_fields__},
                "p_value": _round(results[i].p_value),
                "threshold": _round(cutoff) if reject else _round(rate / len(tested)),
                "drifted": bool(reject),
            }
        )
    return judged


# -- presentation drift: the terms of each predicted class -----------------------------------------
def fisher_exact_test(a: int, n_reference: int, c: int, n_current: int) -> tuple[float, float]:
    """(p-value, smallest p-value these margins allow) of the two-sided Fisher exact test of
    `a` of `n_reference` against `c` of `n_current` (scipy.stats.fisher_exact's p-value: the
    tables at most as likely as the observed one, given the margins, relative tolerance 1e-7).
    The smallest achievable p-value depends on the margins only (Tarone's selection uses it)."""
    total, k = n_reference + n_current, a + c
    low, high = max(0, k - n_reference), min(k, n_current)
    support = np.arange(low, high + 1, dtype=np.float64)

    def log_choose(n: float, r: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(special.gammaln(n + 1) - special.gammaln(r + 1) - special.gammaln(n - r + 1))

    log_pmf = (
        log_choose(k, support) + log_choose(total - k, n_current - support) - log_choose(total, np.array(n_current))
    )
    pmf = np.exp(log_pmf - log_pmf.max())
    scale = float(np.exp(log_pmf.max()))

    def p_of(x: int) -> float:
        return min(1.0, float(pmf[pmf <= pmf[x - low] * (1 + 1e-7)].sum()) * scale)

    return p_of(c), min(p_of(low), p_of(high))


def tarone_testable(p_min: Sequence[float] | NDArray[np.float64], rate: float) -> NDArray[np.bool_]:
    """Tarone's (1990) selection, as Gilbert (2005) applies it to Benjamini-Hochberg: the smallest
    K with at most K tests whose smallest achievable p-value is <= rate / K; those are the family.
    The others could never be rejected; leaving them out (it depends on the margins only, on which
    Fisher's test is conditional) keeps the level and spares the power the many tests of rare
    terms in small classes would cost."""
    p = np.asarray(p_min, dtype=np.float64)
    m = len(p)
    if m == 0:
        return np.zeros(0, dtype=np.bool_)
    ks = np.arange(1, m + 1)
    within = np.searchsorted(np.sort(p), rate / ks, side="right") <= ks
    testable: NDArray[np.bool_] = p <= rate / ks[int(np.argmax(within))]
    return testable


ClassTerms = Mapping[str, tuple[int, Counts]]  # predicted class -> (rows, {term: rows observing it})


def presentation_drift(reference: ClassTerms, current: ClassTerms, rate: float, config: DriftConfig) -> dict[str, Any]:
    """Is each term as prevalent among the rows predicted as a class as in the reference? For every
    class of the reference (the baseline kept those with enough rows) with at least
    config.min_class_samples window rows, every term observed on either side: Fisher's exact
    test; Tarone's selection, then Benjamini-Hochberg at `rate` (a family of its own)."""
    classes = sorted(c for c in reference if c in current and current[c][0] >= config.min_class_samples)
    tests: list[tuple[str, str, int, int, int, int, float, float]] = []
    for name in classes:
        (n_ref, ref_terms), (n_cur, cur_terms) = reference[name], current[name]
        for term in sorted({*(t for t, v in ref_terms.items() if v), *(t for t, v in cur_terms.items() if v)}):
            a, c = int(ref_terms.get(term, 0)), int(cur_terms.get(term, 0))
            tests.append((name, term, a, n_ref, c, n_cur, *fisher_exact_test(a, n_ref, c, n_cur)))
    testable = tarone_testable([t[7] for t in tests], rate)
    chosen = [t for t, keep in zip(tests, testable.tolist(), strict=True) if keep]
    rejected, cutoff = benjamini_hochberg([t[6] for t in chosen], rate)
    drifted = [
        {
            "class": name,
            "term": term,
            "reference_share": _round(a / n_ref),
            "current_share": _round(c / n_cur),
            "n_reference": n_ref,
            "n_current": n_cur,
            "p_value": _round(p),
        }
        for (name, term, a, n_ref, c, n_cur, p, _p_min), reject in zip(chosen, rejected.tolist(), strict=True)
        if reject
    ]
    drifted.sort(key=lambda row: (row["p_value"] or 0.0, row["class"], row["term"]))
    return {
        "tested_classes": classes,
        "tests": len(tests),
        "testable": len(chosen),
        "false_alarm_rate": _round(rate),
        "threshold": _round(cutoff),
        "min_class_samples": config.min_class_samples,
        "drifted": drifted,
        "drifted_any": bool(drifted),
    }


def _no_presentation(rate: float, config: DriftConfig) -> dict[str, Any]:
    return presentation_drift({}, {}, rate, config)


def dataset_drift(
    features: Sequence[tuple[str, str, Column, Column]],
    predictions: Sequence[tuple[str, str, Column, Column]],
    n_reference: int,
    n_current: int,
    config: DriftConfig,
    *,
    presentation: tuple[ClassTerms, ClassTerms] | None = None,
) -> dict[str, Any]:
    """The window's verdict: every feature and prediction quantity tested, Benjamini-Hochberg over
    all of their p-values together; the presentation (terms given the predicted class: reference
    and current, None when the baseline has none) in a family of its own; the two rates add up to
    config.false_alarm_rate. `drift` when share_drifted > share_threshold (strictly: the
    CloudWatch alarm's DriftShare > DriftShareThreshold), a prediction quantity drifted or a
    term's prevalence in a predicted class did; `insufficient_data` below config.min_samples rows."""
    feature_rate, presentation_rate = config.rates(presentation is not None)
    common = {
        "samples": n_current,
        "reference_samples": n_reference,
        "share_threshold": config.share_threshold,
        "false_alarm_rate": config.false_alarm_rate,
        "min_samples": config.min_samples,
    }
    if n_current < config.min_samples or n_reference < config.min_samples:
        return {
            "status": "insufficient_data",
            **common,
            "share_drifted": None,
            "presentation_drifted": 0,
            "drifted_features": [],
            "features_tested": 0,
            "features": [],
            "prediction": {"drifted": False, "quantities": []},
            "presentation": _no_presentation(presentation_rate, config),
        }
    results = [feature_drift(*item, config) for item in (*features, *predictions)]
    judged = judge(results, feature_rate)
    ours, theirs = judged[: len(features)], judged[len(features) :]
    tested = [r for r in ours if r.status == "tested"]
    drifted = [r.name for r in tested if r.drifted]
    share = len(drifted) / len(tested) if tested else 0.0
    prediction_drifted = any(r.drifted for r in theirs)
    terms = (
        presentation_drift(*presentation, presentation_rate, config)
        if presentation is not None
        else _no_presentation(presentation_rate, config)
    )
    drifted_any = share > config.share_threshold or prediction_drifted or terms["drifted_any"]
    return {
        "status": "drift" if drifted_any else "ok",
        **common,
        "share_drifted": _round(share),
        "presentation_drifted": len(terms["drifted"]),
        "drifted_features": drifted,
        "features_tested": len(tested),
        "features": [r.to_json() for r in ours],
        "prediction": {"drifted": prediction_drifted, "quantities": [r.to_json() for r in theirs]},
        "presentation": terms,
    }
