"""ml/drift.py against Evidently (a test dependency only) and its false-alarm rate under no drift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ml.drift import (
    CATEGORICAL,
    NUMERIC,
    DriftConfig,
    chi_squared_test,
    choose_test,
    counts_of,
    dataset_drift,
    fisher_exact_test,
    jensen_shannon,
    psi,
    wasserstein_normed,
    z_test,
)

TOLERANCE = 1e-9  # our statistics equal Evidently's up to float rounding


def _columns(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict[str, tuple[str, np.ndarray]]:
    """A mix of feature shapes: normal, skewed, few-valued numbers, binary, 4 categories."""
    return {
        "normal": (NUMERIC, rng.normal(5 + shift, 2, n).round(2)),
        "skewed": (NUMERIC, rng.lognormal(0 + shift / 4, 0.8, n).round(3)),
        "few_values": (NUMERIC, rng.integers(0, 4, n).astype(np.float64)),
        "binary": (CATEGORICAL, rng.choice(["yes", "no"], n, p=[0.1 + shift / 20, 0.9 - shift / 20])),
        "four": (CATEGORICAL, rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2 - shift / 20, 0.1 + shift / 20])),
    }


@pytest.fixture(scope="module")
def evidently_stattests():  # type: ignore[no-untyped-def]
    pytest.importorskip("evidently")
    from evidently.legacy.calculations.stattests import registry
    from evidently.legacy.core import ColumnType

    return registry, ColumnType


@pytest.mark.parametrize(("n_ref", "n_cur"), [(400, 200), (800, 900), (3000, 2000), (5000, 1500)])
@pytest.mark.parametrize("shift", [0.0, 0.5])
def test_the_statistics_and_the_choice_agree_with_evidently(evidently_stattests, n_ref, n_cur, shift) -> None:  # type: ignore[no-untyped-def]
    registry, column_type = evidently_stattests
    rng = np.random.default_rng(n_ref + n_cur)
    reference, current = _columns(rng, n_ref), _columns(rng, n_cur, shift)
    config = DriftConfig(two_sample_chi_squared=False)  # Evidently's goodness-of-fit form
    for name, (kind, ref) in reference.items():
        cur = current[name][1]
        etype = column_type.Numerical if kind == NUMERIC else column_type.Categorical
        theirs = registry.get_stattest(pd.Series(ref), pd.Series(cur), etype, None)
        ours_ref = ref if kind == NUMERIC else counts_of(ref)
        ours_cur = cur if kind == NUMERIC else counts_of(cur)
        # Both samples on the same side of 1,000: the smaller sample decides as the reference does.
        assert choose_test(kind, ours_ref, ours_cur, config) == theirs.name, name
        result = theirs(pd.Series(ref), pd.Series(cur), etype, None)
        from ml.drift import _statistic

        statistic, p_value = _statistic(theirs.name, ours_ref, ours_cur, config)
        ours = statistic if p_value is None else p_value
        assert ours == pytest.approx(result.drift_score, rel=TOLERANCE, abs=TOLERANCE), name


def test_each_statistic_agrees_with_evidently_whatever_the_size(evidently_stattests) -> None:  # type: ignore[no-untyped-def]
    registry, column_type = evidently_stattests
    rng = np.random.default_rng(3)
    ref, cur = _columns(rng, 700), _columns(rng, 2500, 0.3)
    numeric = column_type.Numerical
    for name in ("normal", "skewed", "few_values"):
        r, c = ref[name][1], cur[name][1]
        for test, ours in (
            ("wasserstein", wasserstein_normed(r, c)),
            ("psi", psi(r, c)),
            ("jensenshannon", jensen_shannon(r, c)),
        ):
            theirs = registry.get_stattest(pd.Series(r), pd.Series(c), numeric, test)(
                pd.Series(r), pd.Series(c), numeric, None
            )
            assert ours == pytest.approx(theirs.drift_score, rel=TOLERANCE, abs=TOLERANCE), (name, test)
        theirs = registry.get_stattest(pd.Series(r), pd.Series(c), numeric, "ks")(
            pd.Series(r), pd.Series(c), numeric, None
        )
        assert stats.ks_2samp(r, c).pvalue == pytest.approx(theirs.drift_score, rel=TOLERANCE)
    categorical = column_type.Categorical
    for name in ("binary", "four"):
        r, c = ref[name][1], cur[name][1]
        rc, cc = counts_of(r), counts_of(c)
        checks = {
            "jensenshannon": jensen_shannon(rc, cc),
            "psi": psi(rc, cc),
            "chisquare": chi_squared_test(rc, cc, two_sample=False)[1],
            "z": z_test(rc, cc)[1],
        }
        for test, ours in checks.items():
            if test == "z" and name == "four":
                continue  # Evidently's z-test is for two categories
            theirs = registry.get_stattest(pd.Series(r), pd.Series(c), categorical, test)
            value = theirs(pd.Series(r), pd.Series(c), categorical, None).drift_score
            assert ours == pytest.approx(value, rel=TOLERANCE, abs=TOLERANCE), (name, test)


def test_the_two_sample_chi_squared_tends_to_evidentlys_for_a_small_window() -> None:
    """Ours differs from Evidently's goodness of fit by about n_current / n_reference."""
    rng = np.random.default_rng(4)
    ref = counts_of(rng.choice(list("abcd"), 50_000, p=[0.4, 0.3, 0.2, 0.1]))
    cur = counts_of(rng.choice(list("abcd"), 300, p=[0.35, 0.3, 0.2, 0.15]))
    ours, theirs = chi_squared_test(ref, cur)[0], chi_squared_test(ref, cur, two_sample=False)[0]
    assert ours == pytest.approx(theirs, rel=0.01)


# -- false alarms ---------------------------------------------------------------------------------
REPEATS = 200


def _no_drift_features(
    rng: np.random.Generator, n_ref: int, n_cur: int, copy: int
) -> list[tuple[str, str, object, object]]:
    """The shapes of _columns, both sides from one distribution (categories drawn as counts)."""

    def counts(n: int, shares: list[float]) -> dict[str, int]:
        return dict(zip("abcd", rng.multinomial(n, shares).tolist(), strict=False))

    return [
        (f"normal{copy}", NUMERIC, rng.normal(5, 2, n_ref).round(2), rng.normal(5, 2, n_cur).round(2)),
        (f"skewed{copy}", NUMERIC, rng.lognormal(0, 0.8, n_ref).round(3), rng.lognormal(0, 0.8, n_cur).round(3)),
        (f"few{copy}", NUMERIC, rng.integers(0, 4, n_ref).astype(float), rng.integers(0, 4, n_cur).astype(float)),
        (f"binary{copy}", CATEGORICAL, counts(n_ref, [0.1, 0.9]), counts(n_cur, [0.1, 0.9])),
        (f"four{copy}", CATEGORICAL, counts(n_ref, [0.4, 0.3, 0.2, 0.1]), counts(n_cur, [0.4, 0.3, 0.2, 0.1])),
    ]


# Presentation under no drift: 12 predicted classes (shares from 30 % to 0.5 %), 60 terms each with
# fixed prevalences from 0.05 % to 60 % (many rare: the hard case for a count test).
CLASS_SHARES = np.array([0.3, 0.2, 0.12, 0.1, 0.08, 0.06, 0.05, 0.04, 0.02, 0.015, 0.01, 0.005])
PREVALENCES = np.random.default_rng(11).choice([0.0005, 0.002, 0.01, 0.03, 0.1, 0.3, 0.6], (12, 60))


def _no_drift_presentation(
    rng: np.random.Generator, n: int, min_rows: int = 0
) -> dict[str, tuple[int, dict[str, int]]]:
    rows = rng.multinomial(n, CLASS_SHARES / CLASS_SHARES.sum())
    return {
        f"class{c}": (int(rows[c]), {f"HP:{t:07d}": int(rng.binomial(rows[c], PREVALENCES[c, t])) for t in range(60)})
        for c in range(len(rows))
        if rows[c] >= min_rows
    }


@pytest.mark.parametrize(("n_ref", "n_cur"), [(5000, 100), (5000, 300), (5000, 1000), (5000, 3000), (2000, 2000)])
def test_no_drift_alarms_at_most_at_the_false_alarm_rate(n_ref: int, n_cur: int) -> None:
    """Fresh reference and window from the same distributions, REPEATS times, features and
    presentation together: the alarms are consistent with a rate of at most 5 % overall (the
    binomial 99th percentile at 5 % is the bound)."""
    config = DriftConfig(min_samples=50)
    rng = np.random.default_rng(n_ref * 7 + n_cur)
    alarms = presentation_alarms = 0
    for _ in range(REPEATS):
        features = [
            feature
            for copy in range(4)  # 20 features of mixed kinds: many tests, one family
            for feature in _no_drift_features(rng, n_ref, n_cur, copy)
        ]
        presentation = (_no_drift_presentation(rng, n_ref, 20), _no_drift_presentation(rng, n_cur))
        result = dataset_drift(features, [], n_ref, n_cur, config, presentation=presentation)
        alarms += result["status"] == "drift"
        presentation_alarms += result["presentation"]["drifted_any"]
    bound = stats.binom.ppf(0.99, REPEATS, config.false_alarm_rate)
    assert alarms <= bound, f"{alarms} alarms in {REPEATS} (bound {bound:.0f})"
    part = stats.binom.ppf(0.99, REPEATS, config.rates(presentation=True)[1])
    assert presentation_alarms <= part, f"{presentation_alarms} presentation alarms in {REPEATS} (bound {part:.0f})"


def test_fisher_exact_test_is_scipys() -> None:
    rng = np.random.default_rng(12)
    for _ in range(300):
        n1, n2 = (int(n) for n in rng.integers(1, 300, 2))
        a, c = int(rng.integers(0, n1 + 1)), int(rng.integers(0, n2 + 1))
        p, p_min = fisher_exact_test(a, n1, c, n2)
        assert p == pytest.approx(stats.fisher_exact([[a, n1 - a], [c, n2 - c]]).pvalue, rel=1e-9)
        assert p_min <= p


def test_a_new_term_in_one_predicted_class_is_presentation_drift() -> None:
    """0 of 150 reference cases of a class had the term, 12 of 40 window cases do: drift by the
    presentation alone, reported without a feature."""
    reference = {"flu": (150, {"HP:0000001": 140}), "other": (3000, {"HP:0000001": 100})}
    current = {"flu": (40, {"HP:0000001": 37, "HP:0000458": 12}), "other": (900, {"HP:0000001": 30})}
    result = dataset_drift([], [], 3150, 940, DriftConfig(), presentation=(reference, current))
    assert result["status"] == "drift" and result["share_drifted"] == 0 and result["presentation_drifted"] == 1
    (row,) = result["presentation"]["drifted"]
    assert (row["class"], row["term"], row["reference_share"], row["n_current"]) == ("flu", "HP:0000458", 0, 40)
    assert result["presentation"]["tested_classes"] == ["flu", "other"]


def test_the_share_rule_is_strict() -> None:
    """drift when share_drifted > share_threshold: one drifted feature of two (0.5) is not above 0.5."""
    rng = np.random.default_rng(13)
    features = [
        ("moved", NUMERIC, rng.normal(0, 1, 500), rng.normal(3, 1, 300)),
        ("still", NUMERIC, rng.normal(0, 1, 500), rng.normal(0, 1, 300)),
    ]
    at_half = dataset_drift(features, [], 500, 300, DriftConfig(share_threshold=0.5))
    assert at_half["share_drifted"] == 0.5 and at_half["status"] == "ok"
    assert dataset_drift(features, [], 500, 300, DriftConfig(share_threshold=0.49))["status"] == "drift"
    assert dataset_drift(features, [], 500, 300, DriftConfig())["status"] == "drift"


def test_a_small_window_is_insufficient_data_never_drift() -> None:
    rng = np.random.default_rng(5)
    ref, cur = rng.normal(0, 1, 1000), rng.normal(5, 1, 20)
    result = dataset_drift([("x", NUMERIC, ref, cur)], [], 1000, 20, DriftConfig())
    assert result["status"] == "insufficient_data" and result["drifted_features"] == []


def test_missing_values_are_left_out_per_feature() -> None:
    rng = np.random.default_rng(6)
    ref = rng.normal(0, 1, 500)
    cur = np.concatenate([rng.normal(0, 1, 200), np.full(800, np.nan)])
    result = dataset_drift([("x", NUMERIC, ref, cur)], [], 500, 1000, DriftConfig())
    (feature,) = result["features"]
    assert feature["n_current"] == 200 and feature["test"] == "ks" and result["status"] == "ok"
