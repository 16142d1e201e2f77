"""Cohort simulator throughput and memory: records per second and peak memory for 100,000 and
1,000,000 records streamed to NDJSON, next to the cost of validating the same records with
pydantic (what the ingestion API spends on each one) and of json.dumps alone.

Each size runs in a fresh subprocess, so that its peak RSS (resource.getrusage) is its own; the
1M run is the same streaming code as the 100k one, so equal peaks show constant memory.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pydantic import TypeAdapter

from bench.report import write_result
from cohorts.catalog import build_catalog
from cohorts.patients import CohortConfig, CohortGenerator
from dxops.schemas import ClinicalRecord

SIZES = (100_000, 1_000_000)
BASELINE_RECORDS = 20_000
SEED = 7


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def run_size(records: int) -> dict[str, float]:
    """Child process: generate ``records`` into an NDJSON file, report time and peak memory."""
    catalog = build_catalog()
    loaded_rss = _peak_rss_mb()
    generator = CohortGenerator(CohortConfig(records=records, seed=SEED), catalog)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, (Path(tmp) / "records.ndjson").open("w") as out:
        for count, patient in enumerate(generator, start=1):
            out.write(json.dumps(patient.record, separators=(",", ":")) + "\n")
            if count % 50_000 == 0:
                rate = count / (time.perf_counter() - started)
                print(f"\r  simulator: {count}/{records} records ({rate:,.0f}/s)", end="", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - started
    print(file=sys.stderr)
    return {"seconds": seconds, "peak_rss_mb": _peak_rss_mb(), "rss_after_catalog_mb": loaded_rss}


def _child(records: int) -> dict[str, float]:
    code = f"import json; from bench.simulator import run_size; print(json.dumps(run_size({records})))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(["layers/shared", ".", os.environ.get("PYTHONPATH", "")])}
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code],
        cwd=root,
        env=env,
        check=True,
        capture_output=False,
        stdout=subprocess.PIPE,
        text=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _baselines() -> dict[str, float]:
    """Cost per record of pydantic validation and of json.dumps, on the simulator's own records."""
    records = [p.record for p in CohortGenerator(CohortConfig(records=BASELINE_RECORDS, seed=SEED), build_catalog())]
    started = time.perf_counter()
    lines = [json.dumps(r, separators=(",", ":")) for r in records]
    dumps = time.perf_counter() - started
    adapter = TypeAdapter(ClinicalRecord)
    started = time.perf_counter()
    for line in lines:
        adapter.validate_json(line)
    validate = time.perf_counter() - started
    return {
        "validate_records_per_s": BASELINE_RECORDS / validate,
        "json_dumps_records_per_s": BASELINE_RECORDS / dumps,
    }


def main() -> None:
    metrics: dict[str, float] = {}
    for size in SIZES:
        print(f"  simulator: {size} records in a subprocess", file=sys.stderr)
        result = _child(size)
        label = f"{size // 1000}k"
        metrics[f"records_per_s_{label}"] = size / result["seconds"]
        metrics[f"peak_rss_mb_{label}"] = result["peak_rss_mb"]
        metrics[f"rss_after_catalog_mb_{label}"] = result["rss_after_catalog_mb"]
    baseline = _baselines()
    ratio = {
        "simulator_vs_validation_100k": metrics["records_per_s_100k"] / baseline["validate_records_per_s"],
        "simulator_vs_json_dumps_100k": metrics["records_per_s_100k"] / baseline["json_dumps_records_per_s"],
        "peak_rss_1000k_vs_100k": metrics["peak_rss_mb_1000k"] / metrics["peak_rss_mb_100k"],
    }
    path = write_result("simulator", metrics, baseline, ratio, seed=SEED, baseline_records=BASELINE_RECORDS)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
