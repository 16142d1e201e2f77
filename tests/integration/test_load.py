"""The REST API under 50 concurrent clients, and backpressure instead of failure: bench/load.py's
driver and phases with small numbers (the timings belong to `python -m bench load`, not here)."""

from __future__ import annotations

import dataclasses
import functools
import random
import time
from typing import Any

import boto3
import pytest

from bench.load import (
    READ_ROUTES,
    FaultPlan,
    Phase,
    Workload,
    idempotency_throttled,
    plan,
    raw_bucket_slow_down,
    run_phase,
    send,
)
from localcloud.api_gateway import serve_api
from localcloud.cloud import LocalCloud
from localcloud.faults import inject
from tests.integration.raw_zone import stored_lines

pytestmark = pytest.mark.integration

# 50 clients, each one POST /records (5 records, an Idempotency-Key) then one read.
SMALL = Workload(clients=50, requests_per_client=2, read_every=2, records_per_batch=5)
LOW_THROTTLE = {"ApiThrottlingRateLimit": "10", "ApiThrottlingBurstLimit": "10"}


def assert_no_errors_and_every_record_stored_once(result: dict[str, Any]) -> None:
    assert result["errors"] == 0, result["error_examples"]
    assert set(result["final_statuses"]) <= {"200", "202"}
    assert result["no_answer_attempts"] == 0
    assert not [s for s in result["attempt_statuses"] if s.startswith("5") and s != "503"]
    if "503" in result["attempt_statuses"]:
        assert result["backpressure_answers"]["503"] == {"error": "service_unavailable", "retry_after": 5.0}
    reconciliation = result["reconciliation"]
    assert reconciliation["holds"], reconciliation
    assert (reconciliation["lost"], reconciliation["duplicated"], reconciliation["stored_but_not_accepted"]) == (
        0,
        0,
        0,
    )
    # Every record sent was valid: accepted, and stored exactly once.
    assert reconciliation["records_sent"] == reconciliation["records_accepted"] == reconciliation["records_stored"]
    assert reconciliation["records_stored"] == reconciliation["distinct_records_stored"]
    assert reconciliation["quarantined"] == 0


def test_fifty_concurrent_clients_without_errors() -> None:
    result = run_phase(Phase("nominal", SMALL))
    assert (result["clients"], result["requests"]) == (50, 100)
    assert set(result["latency_by_route"]) == {"POST /records", *(f"GET {path}" for path in READ_ROUTES)}
    assert result["reconciliation"]["records_accepted"] == (50 + 1) * 5  # the clients' and the warm-up's
    assert_no_errors_and_every_record_stored_once(result)


def test_a_low_stage_throttle_answers_429_and_the_clients_back_off() -> None:
    result = run_phase(Phase("throttled", SMALL, LOW_THROTTLE))
    assert result["stage_throttle"] == {"rate_per_second": 10.0, "burst": 10.0}
    assert result["throttled_attempts"] > 0
    # API Gateway's own answer: a JSON message, no Retry-After (the clients back off with jitter).
    assert result["backpressure_answers"]["429"] == {"error": "Too Many Requests", "retry_after": None}
    assert_no_errors_and_every_record_stored_once(result)


def test_throttled_dependencies_answer_503_with_retry_after_and_every_record_lands_once() -> None:
    # The third call of each fails, every attempt: the handler gets the throttle after the SDK's backoff
    # (S3 up to 15 s, DynamoDB 25.6 s), which every other request waits out (one invocation at a time).
    faults = (
        functools.partial(raw_bucket_slow_down, every=3, calls=1),
        functools.partial(idempotency_throttled, every=3, calls=1),
    )
    result = run_phase(Phase("dependency_faults", SMALL, faults=faults))
    assert set(result["faults_injected"]) == set(result["fault_calls_failed"]) == {"s3.PutObject", "dynamodb.PutItem"}
    # Each failed call outlasted the SDK's retries (several attempts) and reached the handler: one 503 each.
    for call, failed in result["fault_calls_failed"].items():
        assert result["faults_injected"][call] > failed == 1
    assert result["unavailable_attempts"] == sum(result["fault_calls_failed"].values())
    assert_no_errors_and_every_record_stored_once(result)


def in_progress_until(cloud: LocalCloud) -> list[float]:
    """When the idempotency records left in progress expire (epoch seconds): a request with the
    same key is told to wait (409 request_in_progress) until then, and runs again afterwards."""
    table = cloud.outputs["IdempotencyTableName"]
    items = boto3.client("dynamodb").scan(TableName=table)["Items"]
    return [int(item["in_progress_expiration"]["N"]) / 1000 for item in items if item["status"]["S"] == "INPROGRESS"]


@pytest.mark.parametrize(
    ("faults", "stored_at_once", "left_in_progress"),
    [
        # The raw object is not written: the request's record is removed, a retry stores the batch.
        ((raw_bucket_slow_down,), 0, False),
        # The idempotency record cannot be created: the handler never runs.
        ((idempotency_throttled,), 0, False),
        # Stored, but the idempotency record cannot be completed: it stays in progress until the
        # function's timeout (30 s) has passed since the request began; a retry meanwhile is told
        # to wait, then stores the same object again.
        ((functools.partial(idempotency_throttled, operation="UpdateItem"),), 2, True),
        # Nothing stored, and the in-progress record cannot be removed either: the same wait, which
        # the SDK's own backoff (S3 up to 15 s, then DynamoDB's 25.6 s) may outlast (on AWS the
        # function would time out: the local runtime does not stop it).
        ((raw_bucket_slow_down, functools.partial(idempotency_throttled, operation="DeleteItem")), 0, True),
    ],
    ids=["s3-slowdown", "idempotency-put", "idempotency-update", "s3-and-idempotency-delete"],
)
def test_a_throttled_dependency_is_a_503_with_retry_after_never_a_500(
    cloud: LocalCloud, faults: tuple[FaultPlan, ...], stored_at_once: int, left_in_progress: bool
) -> None:
    once = dataclasses.replace(SMALL, max_attempts=1)
    request = plan(0, dataclasses.replace(once, requests_per_client=1, records_per_batch=2), "fault")[0]
    plan_faults = [build(cloud) for build in faults]
    with serve_api(cloud) as api:
        with inject(*plan_faults) as log:
            throttled = send(api.base_url(), request, once, random.Random(0))
        # One call of each failed, every attempt of it: the throttle outlasted the SDK's retries.
        assert log.calls == {f"{fault.event_service}.{fault.operation}": 1 for fault in plan_faults}
        assert all(log.injected[call] > 1 for call in log.calls), log.injected
        [attempt] = throttled.attempts
        assert (attempt.status, attempt.retry_after, attempt.error) == (503, 5.0, "service_unavailable")
        assert len(stored_lines(cloud, "raw/clinical/")) == stored_at_once
        in_progress = in_progress_until(cloud)
        assert len(in_progress) == left_in_progress
        before = time.time()
        retried = send(api.base_url(), request, once, random.Random(0))
        after = time.time()
    [attempt] = retried.attempts
    if in_progress and in_progress[0] > after:
        assert (attempt.status, attempt.retry_after, attempt.error) == (409, 5.0, "request_in_progress")
    elif not in_progress or in_progress[0] < before:
        assert attempt.status == 202
    else:  # expired while the retry was on its way
        assert attempt.status in (409, 202)
    stored = [line["record_id"] for line in stored_lines(cloud, "raw/clinical/")]
    assert sorted(stored) == (sorted(request.record_ids) if attempt.status == 202 or stored_at_once else [])
