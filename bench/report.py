"""Writing benchmark results in the one format every benchmark shares."""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "bench"


def write_result(
    name: str, metrics: dict[str, float], baseline: dict[str, float], ratio: dict[str, float], **context: Any
) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.json"
    document = {
        "benchmark": name,
        "metrics": metrics,
        "baseline": baseline,
        "ratio": ratio,
        "context": {"python": platform.python_version(), "machine": platform.machine(), **context},
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def best_of(repeats: int, run: Callable[[], None]) -> float:
    """Median wall time of several runs: robust to one slow run on a shared machine."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
