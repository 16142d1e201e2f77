"""make chaos, short: faults injected on the local cloud while clients and devices send data; each
scenario checks its outcome and reconciles sent with stored and quarantined (reliability/chaos.py)."""

from __future__ import annotations

import json
from pathlib import Path

from reliability import chaos

# make chaos runs every scenario; these keep CI short (the DynamoDB one waits out the SDK's backoff,
# the model lifecycle's trains and deploys, the Glue one runs Spark twice: minutes each).
QUICK = [
    "s3-throttled-during-ingestion",
    "duplicate-requests",
    "function-crash-mid-batch",
    "duplicate-and-out-of-order-device-messages",
]


def test_faults_are_retried_or_refused_with_backpressure_and_every_item_reconciles(tmp_path: Path) -> None:
    out = tmp_path / "chaos.json"
    exit_code = chaos.main([arg for name in QUICK for arg in ("--scenario", name)] + ["--out", str(out)])
    document = json.loads(out.read_text())
    assert exit_code == 0, [(r["name"], r["problems"]) for r in document["results"]]
    results = {r["name"]: r for r in document["results"]}
    assert list(results) == QUICK and all(r["held"] for r in results.values())
    s3 = results["s3-throttled-during-ingestion"]
    assert s3["injected"]["s3.PutObject"] > 2 and s3["outcome"]["retried_after_503"] == 5
    assert "500" not in s3["outcome"]["statuses"]
    counts = s3["reconciliation"]
    assert counts["records_stored"] + counts["records_quarantined"] == counts["records_sent"] == 70
    assert counts["records_stored_twice"] == 0
    crash = results["function-crash-mid-batch"]
    assert crash["outcome"]["errors"] == ["FunctionCrash"] and crash["outcome"]["dead_letters"] == 0
    assert crash["reconciliation"]["distinct_readings_stored"] == crash["reconciliation"]["readings_sent_valid"]
    readings = results["duplicate-and-out-of-order-device-messages"]["reconciliation"]
    assert readings["distinct_readings_stored"] == readings["readings_sent_valid"] > 0
    assert readings["readings_stored"] == 2 * readings["readings_sent_valid"]  # at-least-once: curated dedupes
