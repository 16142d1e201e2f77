"""Ingestion throughput: records per second through the API handler in-process on the local cloud
(S3 and DynamoDB in moto), next to plain pydantic validate_json of the same payloads."""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys

from pydantic import TypeAdapter

from bench.report import best_of, write_result
from dxops.schemas import ClinicalRecord
from dxops.vocab.hpo import hpo_index
from localcloud.cloud import LocalCloud
from tests.integration.api_events import post_records

BATCHES = 20
BATCH_SIZE = 100
REPEATS = 3


def synthetic_batches(seed: int = 11) -> list[list[dict[str, object]]]:
    rng = random.Random(seed)
    terms = sorted(hpo_index().terms)
    batches = []
    for b in range(BATCHES):
        batch = []
        for i in range(BATCH_SIZE):
            batch.append(
                {
                    "record_id": f"bench-{b:03d}-{i:04d}",
                    "source": "site-bench",
                    "patient_id": f"P{rng.randrange(10**8):08d}",
                    "encounter_date": "2026-10-01",
                    "sex": rng.choice(["female", "male"]),
                    "age_years": rng.randint(0, 95),
                    "phenotypes": [{"hpo_id": f"HP:{t:07d}"} for t in rng.sample(terms, 7)],
                    "labs": [{"loinc": "2345-7", "value": round(rng.gauss(5.2, 0.8), 2), "unit": "mmol/L"}],
                    "vitals": [{"name": "heart_rate", "value": rng.randint(50, 120), "unit": "/min"}],
                    "diagnosis": {"code": "ORPHA:558"},
                }
            )
        batches.append(batch)
    return batches


def main() -> None:
    batches = synthetic_batches()
    bodies = [json.dumps(batch) for batch in batches]
    records = BATCHES * BATCH_SIZE
    adapter = TypeAdapter(list[ClinicalRecord])

    def validate_only() -> None:
        for body in bodies:
            adapter.validate_json(body)

    validate_seconds = best_of(REPEATS, validate_only)
    handler_runs = []
    for repeat in range(REPEATS):
        # The handlers' JSON logs and EMF metrics are written (their cost counts) but not shown.
        with LocalCloud.start() as cloud, open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            # Warm start: the first invocation imports the handler (a cold start is not throughput).
            cloud.invoke("IngestApiFunction", post_records(batches[0][:1], {"Idempotency-Key": "bench-warmup"}))
            events = [
                post_records(body, {"Idempotency-Key": f"bench-{repeat}-{i:04d}"}) for i, body in enumerate(bodies)
            ]

            def through_handler(
                cloud: LocalCloud = cloud, events: list[dict[str, object]] = events, repeat: int = repeat
            ) -> None:
                for i, event in enumerate(events):
                    response = cloud.invoke("IngestApiFunction", event)
                    assert response["statusCode"] == 202, response["body"][:300]
                    print(
                        f"\r  ingest: repeat {repeat + 1}/{REPEATS}, batch {i + 1}/{len(events)}",
                        end="",
                        file=sys.stderr,
                    )

            handler_runs.append(best_of(1, through_handler))
    print(file=sys.stderr)
    handler_seconds = sorted(handler_runs)[len(handler_runs) // 2]
    handler_rps = records / handler_seconds
    validate_rps = records / validate_seconds
    path = write_result(
        "ingest",
        metrics={"records_per_second": round(handler_rps, 1), "seconds": round(handler_seconds, 3), "records": records},
        baseline={"pydantic_validate_json_records_per_second": round(validate_rps, 1)},
        ratio={"handler_over_validate_json": round(handler_rps / validate_rps, 4)},
        batch_size=BATCH_SIZE,
        batches=BATCHES,
        repeats=REPEATS,
        note="handler in-process on the local cloud (moto S3, DynamoDB, Secrets Manager), warm",
    )
    print(
        f"ingest: {handler_rps:,.0f} records/s through the handler, {validate_rps:,.0f} records/s "
        f"validate_json alone -> {path}"
    )


if __name__ == "__main__":
    main()
