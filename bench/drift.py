"""The drift detector: its cost on 100,000 rows x 50 features, and each simulator scenario's
detection delay (writes artifacts/bench/drift.json).

1. Seconds of ml.drift.dataset_drift for a current window of 100,000 rows against a reference of
   5,000, 50 features: 30 numeric (normal), 10 numeric with 3 values, 10 categorical (4
   categories); the large-sample regime (Wasserstein and Jensen-Shannon distances).
2. Detection delay: a baseline cohort of 20,000 records is the reference (ml/drift_profile.py: a
   5,000-row sample for the features, every row for the presentation, the simulator's class as
   the predicted top-1); for each scenario of cohorts/drift.py, windows of each size of WINDOWS
   from a drifted cohort; the delay is the smallest window flagged `drift` (null: none of the
   grid). sensor-drift reaches the monitor as a curated table (device aggregates never come with
   prediction inputs).
"""

from __future__ import annotations

import sys
import time

import numpy as np

from bench.report import best_of, write_result
from ml.drift import CATEGORICAL, NUMERIC, DriftConfig, counts_of, dataset_drift
from ml.drift_profile import Baseline, build_profile, comparisons, records_window, table_window
from ml.table import LABEL, column_roles, labelled
from tests.unit.ml.drift_cohorts import curated_table, endpoint_record, label_predictor, patients

ROWS, REFERENCE, WINDOWS = 100_000, 5_000, (50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)
BASELINE_ROWS = 20_000
SCENARIOS = ("lab-calibration", "new-site", "outbreak", "new-disease", "new-presentation", "sensor-drift")


def progress(message: str) -> None:
    print(f"  drift: {message}", file=sys.stderr, flush=True)


def _features(rng: np.random.Generator, n: int) -> list[tuple[str, str, object]]:
    columns: list[tuple[str, str, object]] = [(f"num{i}", NUMERIC, rng.normal(i, 1 + i / 10, n)) for i in range(30)]
    columns += [(f"few{i}", NUMERIC, rng.integers(0, 3, n).astype(np.float64)) for i in range(10)]
    columns += [(f"cat{i}", CATEGORICAL, counts_of(rng.choice(list("abcd"), n))) for i in range(10)]
    return columns


def detector_seconds() -> float:
    rng = np.random.default_rng(0)
    reference, current = _features(rng, REFERENCE), _features(rng, ROWS)
    pairs = [(name, kind, ref, cur) for (name, kind, ref), (_n, _k, cur) in zip(reference, current, strict=True)]
    return best_of(3, lambda: dataset_drift(pairs, [], REFERENCE, ROWS, DriftConfig()))  # type: ignore[arg-type]


def delays() -> dict[str, int | None]:
    table = curated_table(patients("baseline", BASELINE_ROWS, 1))
    roles = column_roles(table)
    rows = labelled(table)
    predict = label_predictor(rows[LABEL].astype(str).tolist())
    profile = Baseline(build_profile(rows, roles, predict=predict, expanded=False, presentation_rows=len(rows)))
    reference = profile.reference
    found: dict[str, int | None] = {}
    for name in SCENARIOS:
        found[name] = None
        for size in WINDOWS:
            chosen = patients(name, size, 2)
            classes = [p.label for p in chosen]
            if name == "sensor-drift":
                current = table_window(curated_table(chosen, name), roles, profile.specs, classes)
            else:
                records = [endpoint_record(p) for p in chosen]
                current = records_window(records, roles, profile.specs, None, classes)
            pairs = comparisons(reference, current, profile.specs)
            presentation = (profile.presentation or {}, current.presentation)
            verdict = dataset_drift(pairs, [], reference.rows, current.rows, DriftConfig(), presentation=presentation)
            if verdict["status"] == "drift":
                found[name] = size
                break
        progress(f"{name}: detected at {found[name]} samples")
    return found


def main() -> None:
    started = time.perf_counter()
    progress(f"detector on {ROWS:,} rows x 50 features")
    seconds = detector_seconds()
    progress(f"{seconds:.2f} s")
    found = delays()
    metrics: dict[str, float] = {"detector_seconds_100k_x_50": round(seconds, 3)}
    metrics |= {f"delay_samples_{name}": float(size) for name, size in found.items() if size is not None}
    path = write_result(
        "drift",
        metrics,
        {},
        {},
        features="30 numeric (normal), 10 numeric with 3 values, 10 categorical with 4 categories",
        reference_rows=REFERENCE,
        baseline_records=BASELINE_ROWS,
        windows=list(WINDOWS),
        delays=found,
        seconds=round(time.perf_counter() - started, 1),
    )
    progress(f"written {path}")


if __name__ == "__main__":
    main()
