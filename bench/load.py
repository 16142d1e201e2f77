"""Load: the local REST API under concurrent clients, and backpressure instead of failure
(writes artifacts/bench/load.json).

    python -m bench load [--clients 50] [--requests-per-client 16] [--help for the other options]

Three phases, each on a fresh local cloud (moto in-process, template.yaml deployed, the REST API
served over HTTP by localcloud.api_gateway.serve_api, the real handlers behind it):

1. nominal: the stage throttle at the template's defaults (ApiThrottlingRateLimit 50/s, burst 100).
   First one client alone sends the same mix of requests (the single-client baseline); then
   `clients` threads start together and each sends `requests_per_client` requests one after the
   other: four in five are POST /records with a batch of `records_per_batch` valid ClinicalRecords
   (tests.records.clinical_record, record ids unique to the run, one site per client) and an
   Idempotency-Key header; every fifth is a read: GET /models, GET /trainings/triggers and
   GET /openapi.json in turn. Every request is SigV4-signed (localcloud.http_client.call_api, a new
   HTTP/1.1 connection per request), as a hospital system would send it.
2. throttled: the same with the stage throttle set low (ApiThrottlingRateLimit/BurstLimit): API
   Gateway answers 429 (no Retry-After, as on AWS) and the clients back off.
3. dependency_faults: the ingest function's dependencies throttle, injected by the local cloud's
   fault plan (localcloud.faults: AWS's own error responses, which botocore's retry logic sees as
   real). The Nth S3 PutObject call to the raw bucket fails with SlowDown, the Nth DynamoDB PutItem
   call on the idempotency table with ProvisionedThroughputExceededException, and the 3Nth
   UpdateItem call, then every Nth (3Nth) again, at most `fault_calls` calls of each: every attempt
   of such a call fails, a throttle that outlasts the SDK's retries and reaches the handler. It
   does so after the SDK's backoff (the ingest function's clients, dxops.adapters.clients: standard
   retries, 3 attempts, a few seconds; botocore's default legacy retries took up to 25.6 s on
   DynamoDB, close to API Gateway's 29 s), and the local runtime runs one invocation at a time, so
   every other request waits as long: hence a few such calls, spread over the run. The API answers
   503 with Retry-After, and 409 request_in_progress with Retry-After while the idempotency record
   of a request interrupted after its write (the UpdateItem case) is in progress, i.e. until the
   function's timeout (30 s) has passed since the request began; a retry then writes the same
   object again.

The clients behave as production clients should: on 429, on 503, on 409 request_in_progress and
when no HTTP answer comes (connection refused or reset, timeout) they wait (Retry-After when the
answer gives one, else exponential backoff with full jitter as botocore's standard retry mode
does: uniform in [0, min(20, 2 ** (attempt - 1))) seconds) and retry with the same body and the
same Idempotency-Key, at most `max_attempts` attempts in all.

Per request: the status and latency of every attempt, and the end-to-end latency (first byte sent
to final answer, backoff waits included). Percentiles by nearest rank.

errors: requests whose final answer is not 2xx, or with an attempt answered with a 5xx other than
a 503 carrying Retry-After, or with an attempt that got no HTTP answer.

Reconciliation, per phase: the record ids the API accepted (stored_record_ids of the 202 answers)
against the NDJSON lines under raw/clinical/ in the raw bucket, where the ingest function writes
them: none lost, none duplicated, none stored that was not accepted, nothing quarantined.

tests/integration/test_load.py runs the same phases with small numbers.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import functools
import http.client
import json
import math
import os
import random
import statistics
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from bench.report import ARTIFACTS, write_result
from localcloud import faults
from localcloud.api_gateway import serve_api
from localcloud.cloud import LocalCloud
from localcloud.faults import Fault, inject
from localcloud.http_client import call_api
from tests.records import clinical_record

READ_ROUTES = ("/models", "/trainings/triggers", "/openapi.json")
RAW_PREFIX = "raw/clinical/"  # dxops.domain.raw_zone.raw_key("clinical", ...)
QUARANTINE_PREFIX = "quarantine/clinical/"


@dataclass(frozen=True)
class Workload:
    clients: int = 50
    requests_per_client: int = 16
    records_per_batch: int = 20
    read_every: int = 5  # every read_every-th request of a client is a read, the others POST /records
    max_attempts: int = 12
    # as botocore's standard retry mode: a full-jitter wait in [0, min(20, 2 ** (attempt - 1))) seconds
    backoff_base_seconds: float = 1.0
    backoff_cap_seconds: float = 20.0
    max_retry_after_seconds: float = 30.0  # a Retry-After beyond this is waited for this long
    timeout_seconds: float = 120.0
    seed: int = 17


# --- dependency faults: a throttle that outlasts the SDK's retries (every attempt of the call fails) ---


def raw_bucket_slow_down(cloud: LocalCloud, *, every: int = 1, calls: float = math.inf) -> Fault:
    """S3 PutObject to the raw bucket: 503 SlowDown."""
    bucket = faults.bucket(cloud.outputs["RawBucketName"])
    return Fault("s3", "PutObject", "SlowDown", 503, times=math.inf, when=bucket, every=every, calls=calls)


def idempotency_throttled(
    cloud: LocalCloud, operation: str = "PutItem", *, every: int = 1, calls: float = math.inf
) -> Fault:
    """DynamoDB on the idempotency table: 400 ProvisionedThroughputExceededException. PutItem: the
    request's record cannot be created; UpdateItem: completed (after the records are stored), so
    it stays in progress until the function's timeout has passed (409 request_in_progress meanwhile),
    then a retry runs it again; DeleteItem: removed after a failure, so the same."""
    table = faults.table(cloud.outputs["IdempotencyTableName"])
    code = "ProvisionedThroughputExceededException"
    return Fault("dynamodb", operation, code, 400, times=math.inf, when=table, every=every, calls=calls)


FaultPlan = Callable[[LocalCloud], Fault]  # the deployed names are known once the local cloud is up


def describe(fault: Fault) -> dict[str, Any]:
    def number(value: float) -> float | None:
        return None if math.isinf(value) else value

    return {
        "call": f"{fault.event_service}.{fault.operation}",
        "error": fault.code,
        "status": fault.status,
        "every": fault.every,
        "calls": number(fault.calls),
        "times": number(fault.times),
    }


@dataclass(frozen=True)
class Phase:
    name: str
    workload: Workload
    parameters: dict[str, str] = field(default_factory=dict)  # LocalCloud.start parameters
    faults: tuple[FaultPlan, ...] = ()
    baseline_requests: int = 0  # sent by one client alone before the concurrent load


@dataclass(frozen=True)
class PlannedRequest:
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    record_ids: tuple[str, ...] = ()

    @property
    def route(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class Attempt:
    status: int  # 0: no HTTP answer
    seconds: float
    retry_after: float | None
    error: str | None  # the body's error code (or API Gateway's message), or the transport error's type


@dataclass
class Outcome:
    client: int
    route: str
    attempts: list[Attempt]
    seconds: float  # end to end: backoff waits included
    record_ids: tuple[str, ...]  # sent
    stored_record_ids: list[str]  # accepted, from the 202
    accepted: int

    @property
    def status(self) -> int:
        return self.attempts[-1].status

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


# --- the clients ----------------------------------------------------------------------------------


def plan(client: int, workload: Workload, run: str) -> list[PlannedRequest]:
    """The requests one client sends: POST /records batches and, every read_every-th, a read."""
    requests = []
    for i in range(workload.requests_per_client):
        if (i + 1) % workload.read_every == 0:
            path = READ_ROUTES[(client + i // workload.read_every) % len(READ_ROUTES)]
            requests.append(PlannedRequest("GET", path))
            continue
        ids = tuple(f"{run}-c{client:03d}-q{i:03d}-{j:03d}" for j in range(workload.records_per_batch))
        batch = [
            clinical_record(client + j, record_id=record_id, source=f"site-load-{client:03d}")
            for j, record_id in enumerate(ids)
        ]
        requests.append(
            PlannedRequest(
                "POST",
                "/records",
                json.dumps(batch).encode(),
                {"Idempotency-Key": f"{run}-c{client:03d}-q{i:03d}"},
                ids,
            )
        )
    return requests


def retry_after(headers: dict[str, str]) -> float | None:
    """Retry-After in seconds (the API sends delta-seconds), None when absent or not a number."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def retryable(attempt: Attempt) -> bool:
    if attempt.status in (0, 429, 503):
        return True
    return attempt.status == 409 and attempt.retry_after is not None  # request_in_progress


def backoff(attempt: Attempt, number: int, workload: Workload, rng: random.Random) -> float:
    """Seconds to wait before the next attempt: Retry-After when given, else full jitter."""
    if attempt.retry_after is not None:
        return min(attempt.retry_after, workload.max_retry_after_seconds)
    ceiling = min(workload.backoff_cap_seconds, workload.backoff_base_seconds * 2 ** (number - 1))
    return rng.uniform(0, ceiling)


class Tally:
    """Counts the clients update as they go, for the progress line."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.attempts = 0
        self.statuses: Counter[int] = Counter()
        self.lock = threading.Lock()

    def attempted(self, status: int) -> None:
        with self.lock:
            self.attempts += 1
            self.statuses[status] += 1

    def finished(self) -> None:
        with self.lock:
            self.done += 1

    def line(self) -> str:
        with self.lock:
            s = self.statuses
            return (
                f"{self.done}/{self.total} requests, {self.attempts} attempts "
                f"(429: {s[429]}, 503: {s[503]}, 409: {s[409]}, no answer: {s[0]})"
            )


def send(
    base_url: str,
    request: PlannedRequest,
    workload: Workload,
    rng: random.Random,
    *,
    client: int = 0,
    tally: Tally | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """One request as a well-behaved client sends it: retried on backpressure, same body and key."""
    attempts: list[Attempt] = []
    body: Any = {}
    began = time.perf_counter()
    for number in range(1, workload.max_attempts + 1):
        start = time.perf_counter()
        try:
            answer = call_api(
                base_url + request.path,
                request.method,
                request.body,
                headers=request.headers,
                timeout=workload.timeout_seconds,
            )
            status, body, headers, error = answer.status, answer.body, answer.headers, None
        except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError, reset, timeout, not JSON
            status, body, headers, error = 0, {}, {}, type(exc).__name__
        if isinstance(body, dict) and status >= 300:
            error = error or str(body.get("error") or body.get("message") or "")
        attempt = Attempt(status, time.perf_counter() - start, retry_after(headers), error)
        attempts.append(attempt)
        if tally:
            tally.attempted(status)
        if not retryable(attempt) or number == workload.max_attempts:
            break
        sleep(backoff(attempt, number, workload, rng))
    ok = attempts[-1].status == 202 and isinstance(body, dict)
    if tally:
        tally.finished()
    return Outcome(
        client=client,
        route=request.route,
        attempts=attempts,
        seconds=time.perf_counter() - began,
        record_ids=request.record_ids,
        stored_record_ids=list(body.get("stored_record_ids", [])) if ok else [],
        accepted=int(body.get("accepted", 0)) if ok else 0,
    )


def drive(base_url: str, workload: Workload, run: str, report: Callable[[str], None] | None = None) -> list[Outcome]:
    """`workload.clients` threads, started together, each sending its planned requests in turn."""
    plans = [plan(client, workload, run) for client in range(workload.clients)]
    tally = Tally(sum(len(p) for p in plans))
    start = threading.Barrier(workload.clients)
    results: list[list[Outcome]] = [[] for _ in plans]
    failures: list[BaseException] = []

    def client_thread(client: int) -> None:
        rng = random.Random(workload.seed * 1000 + client)
        try:
            start.wait()
            for request in plans[client]:
                results[client].append(send(base_url, request, workload, rng, client=client, tally=tally))
        except BaseException as exc:  # a bug in the driver, not an answer of the API: re-raised below
            failures.append(exc)

    threads = [
        threading.Thread(target=client_thread, args=(c,), name=f"load-client-{c}", daemon=True)
        for c in range(workload.clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(timeout=2)
            if report:
                report(tally.line())
    if failures:
        raise failures[0]
    return [outcome for outcomes in results for outcome in outcomes]


# --- reconciliation and figures -------------------------------------------------------------------


def _ndjson_record_ids(s3: Any, bucket: str, prefix: str) -> tuple[Counter[str], int]:
    ids: Counter[str] = Counter()
    objects = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            objects += 1
            for line in s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode().splitlines():
                if line.strip():
                    ids[str(json.loads(line).get("record_id"))] += 1
    return ids, objects


def reconcile(cloud: LocalCloud, outcomes: list[Outcome]) -> dict[str, Any]:
    """What the API accepted against what the raw bucket holds: nothing lost, nothing twice."""
    s3 = boto3.client("s3")
    bucket = cloud.outputs["RawBucketName"]
    stored, objects = _ndjson_record_ids(s3, bucket, RAW_PREFIX)
    quarantined, _ = _ndjson_record_ids(s3, bucket, QUARANTINE_PREFIX)
    versions = sum(
        len(page.get("Versions", []))
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=RAW_PREFIX)
    )
    posts = [o for o in outcomes if o.record_ids]
    sent = Counter(record_id for o in posts for record_id in o.record_ids)
    accepted = Counter(record_id for o in posts for record_id in o.stored_record_ids)
    lost = sorted(set(accepted) - set(stored))
    unexpected = sorted(set(stored) - set(accepted))
    duplicated = sorted({r for r, n in stored.items() if n > 1} | {r for r, n in accepted.items() if n > 1})
    not_accepted = sorted(set(sent) - set(accepted))
    holds = (
        sum(accepted.values()) == sum(stored.values()) == len(stored)
        and not lost
        and not unexpected
        and not duplicated
        and not quarantined
    )
    return {
        "holds": holds,
        "post_requests": len(posts),
        "post_requests_accepted": sum(1 for o in posts if o.ok),
        "records_sent": sum(sent.values()),
        "records_accepted": sum(o.accepted for o in posts),
        "records_stored": sum(stored.values()),
        "distinct_records_stored": len(stored),
        "lost": len(lost),
        "duplicated": len(duplicated),
        "stored_but_not_accepted": len(unexpected),
        "sent_but_not_accepted": len(not_accepted),
        "quarantined": sum(quarantined.values()),
        "raw_objects": objects,
        "raw_object_versions": versions,
        "examples": {"lost": lost[:5], "duplicated": duplicated[:5], "stored_but_not_accepted": unexpected[:5]},
        "how": f"stored_record_ids of the 202 answers against the record_id of every NDJSON line under "
        f"{RAW_PREFIX} of the raw bucket (current object versions; a retried request rewrites its own object)",
    }


def latency(seconds: list[float]) -> dict[str, float]:
    """p50, p95, p99 (nearest rank), max and mean, in milliseconds."""
    if not seconds:
        return {}
    ordered = sorted(seconds)

    def rank(q: float) -> float:
        return ordered[max(1, math.ceil(q * len(ordered))) - 1] * 1000

    return {
        "p50_ms": round(rank(0.50), 1),
        "p95_ms": round(rank(0.95), 1),
        "p99_ms": round(rank(0.99), 1),
        "max_ms": round(ordered[-1] * 1000, 1),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 1),
    }


def is_error_attempt(attempt: Attempt) -> bool:
    """No HTTP answer, or a 5xx that is not backpressure (a 503 with Retry-After)."""
    if attempt.status == 0:
        return True
    return attempt.status >= 500 and not (attempt.status == 503 and attempt.retry_after is not None)


def summarise(outcomes: list[Outcome], seconds: float) -> dict[str, Any]:
    attempts = [a for o in outcomes for a in o.attempts]
    failed = [o for o in outcomes if not o.ok]
    bad_attempts = [a for a in attempts if is_error_attempt(a)]
    by_route: dict[str, list[Outcome]] = collections.defaultdict(list)
    for outcome in outcomes:
        by_route[outcome.route].append(outcome)
    samples: dict[str, dict[str, Any]] = {}
    for attempt in attempts:
        if attempt.status >= 300 and str(attempt.status) not in samples:
            samples[str(attempt.status)] = {"error": attempt.error, "retry_after": attempt.retry_after}
    return {
        "requests": len(outcomes),
        "errors": sum(1 for o in outcomes if not o.ok or any(is_error_attempt(a) for a in o.attempts)),
        "failed_requests": len(failed),
        "error_attempts": len(bad_attempts),
        "error_examples": [
            {"route": o.route, "statuses": [a.status for a in o.attempts], "error": o.attempts[-1].error}
            for o in failed[:5]
        ]
        + [{"status": a.status, "error": a.error, "retry_after": a.retry_after} for a in bad_attempts[:5]],
        "attempts": len(attempts),
        "retried_attempts": len(attempts) - len(outcomes),
        "requests_retried": sum(1 for o in outcomes if len(o.attempts) > 1),
        "most_attempts_of_a_request": max((len(o.attempts) for o in outcomes), default=0),
        "requests_by_attempts": {str(k): v for k, v in sorted(Counter(len(o.attempts) for o in outcomes).items())},
        "throttled_attempts": sum(1 for a in attempts if a.status == 429),
        "unavailable_attempts": sum(1 for a in attempts if a.status == 503),
        "in_progress_attempts": sum(1 for a in attempts if a.status == 409),
        "no_answer_attempts": sum(1 for a in attempts if a.status == 0),
        "attempt_statuses": {str(k): v for k, v in sorted(Counter(a.status for a in attempts).items())},
        "final_statuses": {str(k): v for k, v in sorted(Counter(o.status for o in outcomes).items())},
        "backpressure_answers": samples,
        "latency": latency([o.seconds for o in outcomes]),
        "latency_by_route": {route: latency([o.seconds for o in group]) for route, group in sorted(by_route.items())},
        "latency_of_requests_answered_at_once": latency([o.seconds for o in outcomes if len(o.attempts) == 1]),
        "latency_of_attempts": latency([a.seconds for a in attempts]),
        "seconds": round(seconds, 2),
        "throughput": {
            "requests_per_second": round(len(outcomes) / seconds, 2),
            "attempts_per_second": round(len(attempts) / seconds, 2),
            "records_accepted_per_second": round(sum(o.accepted for o in outcomes) / seconds, 1),
        },
    }


def _listen_overflows() -> int | None:
    """The kernel's TcpExt ListenOverflows (machine-wide): connections dropped at a full accept queue."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return None
    for header, values in zip(lines[::2], lines[1::2], strict=False):
        if header.startswith("TcpExt:"):
            named = dict(zip(header.split()[1:], values.split()[1:], strict=False))
            return int(named.get("ListenOverflows", 0))
    return None


# --- a phase --------------------------------------------------------------------------------------


def run_phase(phase: Phase, report: Callable[[str], None] | None = None) -> dict[str, Any]:
    """One phase on a fresh local cloud: the load, its figures, the reconciliation."""
    say = report or (lambda _: None)
    began = time.perf_counter()
    with LocalCloud.start(parameters=phase.parameters) as cloud, serve_api(cloud) as api:
        base_url = api.base_url()
        throttle = api.apis[0].throttle
        say(f"{phase.name}: local cloud up in {time.perf_counter() - began:.0f} s")
        workload = phase.workload
        rng = random.Random(workload.seed)
        # Cold starts (each function's first invocation imports it) are not load: one of each route first.
        first = [*plan(0, dataclasses.replace(workload, requests_per_client=1), "warmup")]
        first += [PlannedRequest("GET", path) for path in READ_ROUTES]
        warmup = [send(base_url, request, workload, rng) for request in first]
        baseline = None
        if phase.baseline_requests:
            solo = dataclasses.replace(workload, clients=1, requests_per_client=phase.baseline_requests)
            started = time.perf_counter()
            solo_outcomes = drive(base_url, solo, f"{phase.name}-solo")
            baseline = summarise(solo_outcomes, time.perf_counter() - started)
            warmup += solo_outcomes
            say(f"{phase.name}: single client p50 {baseline['latency'].get('p50_ms')} ms")
        overflows = _listen_overflows()
        plan_faults = tuple(build(cloud) for build in phase.faults)
        with inject(*plan_faults) as fault_log:
            started = time.perf_counter()
            outcomes = drive(base_url, workload, phase.name, lambda line: say(f"{phase.name}: {line}"))
            seconds = time.perf_counter() - started
        after = _listen_overflows()
        reconciliation = reconcile(cloud, warmup + outcomes)
    result = {
        "clients": workload.clients,
        **summarise(outcomes, seconds),
        "reconciliation": reconciliation,
        "stage_throttle": {"rate_per_second": throttle.rate, "burst": throttle.burst} if throttle else None,
        "faults_injected": dict(sorted(fault_log.injected.items())),  # error responses, SDK retries included
        "fault_calls_failed": dict(sorted(fault_log.calls.items())),  # the calls they failed
        "faults": [describe(f) for f in plan_faults],
        "workload": dataclasses.asdict(workload),
        "local_cloud_parameters": phase.parameters,
        "tcp_listen_overflows_machine_wide": None if after is None or overflows is None else after - overflows,
    }
    if baseline is not None:
        result["single_client_baseline"] = baseline
    return result


def phases(
    workload: Workload,
    *,
    throttled_requests_per_client: int,
    throttle_rate: int,
    throttle_burst: int,
    fault_requests_per_client: int,
    fault_every: int,
    fault_calls: int,
    baseline_requests: int = 20,
) -> list[Phase]:
    low = {"ApiThrottlingRateLimit": str(throttle_rate), "ApiThrottlingBurstLimit": str(throttle_burst)}
    faults: tuple[FaultPlan, ...] = (
        functools.partial(raw_bucket_slow_down, every=fault_every, calls=fault_calls),
        functools.partial(idempotency_throttled, every=fault_every, calls=fault_calls),
        functools.partial(idempotency_throttled, operation="UpdateItem", every=fault_every * 3, calls=fault_calls),
    )
    return [
        Phase("nominal", workload, baseline_requests=baseline_requests),
        Phase("throttled", dataclasses.replace(workload, requests_per_client=throttled_requests_per_client), low),
        Phase(
            "dependency_faults",
            dataclasses.replace(workload, requests_per_client=fault_requests_per_client),
            faults=faults,
        ),
    ]


# --- the benchmark --------------------------------------------------------------------------------


def arguments(argv: list[str]) -> argparse.Namespace:
    defaults = Workload()
    parser = argparse.ArgumentParser(prog="python -m bench load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=defaults.clients, help="concurrent clients (threads)")
    parser.add_argument("--requests-per-client", type=int, default=defaults.requests_per_client, help="nominal phase")
    parser.add_argument("--records-per-batch", type=int, default=defaults.records_per_batch)
    parser.add_argument("--throttled-requests-per-client", type=int, default=4)
    parser.add_argument("--throttle-rate", type=int, default=10, help="ApiThrottlingRateLimit of the throttled phase")
    parser.add_argument("--throttle-burst", type=int, default=10, help="ApiThrottlingBurstLimit of the throttled phase")
    parser.add_argument("--fault-requests-per-client", type=int, default=4)
    parser.add_argument(
        "--fault-every", type=int, default=40, help="the Nth S3/DynamoDB call fails, every attempt (faults phase)"
    )
    parser.add_argument(
        "--fault-calls",
        type=int,
        default=1,
        help="at most this many calls fail, of each dependency: each costs the SDK's whole backoff (faults phase)",
    )
    parser.add_argument("--max-attempts", type=int, default=defaults.max_attempts, help="per request, retries included")
    return parser.parse_args(argv)


class Status:
    """Progress on stderr: rewritten in place on a terminal, else a line every 10 s."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.shown = 0.0

    def __call__(self, message: str) -> None:
        if self.tty:
            print(f"\r\033[K  load: {message}", end="", file=sys.stderr, flush=True)
        elif time.monotonic() - self.shown >= 10 or "local cloud up" in message:
            print(f"  load: {message}", file=sys.stderr, flush=True)
            self.shown = time.monotonic()

    def line(self, message: str) -> None:
        print(f"\r\033[K  load: {message}" if self.tty else f"  load: {message}", file=sys.stderr, flush=True)


def _flat(result: dict[str, Any], prefix: str) -> dict[str, float]:
    return {
        f"{prefix}clients": result["clients"],
        f"{prefix}requests": result["requests"],
        f"{prefix}errors": result["errors"],
        f"{prefix}retried_attempts": result["retried_attempts"],
        f"{prefix}throttled_attempts": result["throttled_attempts"],
        f"{prefix}unavailable_attempts": result["unavailable_attempts"],
        **{f"{prefix}{k}": v for k, v in result["latency"].items() if k != "mean_ms"},
        f"{prefix}throughput_requests_per_second": result["throughput"]["requests_per_second"],
        f"{prefix}records_accepted_per_second": result["throughput"]["records_accepted_per_second"],
        f"{prefix}records_accepted": result["reconciliation"]["records_accepted"],
        f"{prefix}records_stored": result["reconciliation"]["records_stored"],
        f"{prefix}reconciliation_holds": int(result["reconciliation"]["holds"]),
    }


def main(argv: list[str] | None = None) -> None:
    options = arguments(argv or [])
    workload = Workload(
        clients=options.clients,
        requests_per_client=options.requests_per_client,
        records_per_batch=options.records_per_batch,
        max_attempts=options.max_attempts,
    )
    warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
    planned = phases(
        workload,
        throttled_requests_per_client=options.throttled_requests_per_client,
        throttle_rate=options.throttle_rate,
        throttle_burst=options.throttle_burst,
        fault_requests_per_client=options.fault_requests_per_client,
        fault_every=options.fault_every,
        fault_calls=options.fault_calls,
    )
    log_path = ARTIFACTS / "load-lambda.log"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    status = Status()
    load_before = os.getloadavg()
    started = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    with open(log_path, "w") as log, contextlib.redirect_stdout(log):  # the handlers' JSON logs and EMF
        for phase in planned:
            status.line(f"phase {phase.name}: {phase.workload.clients} clients x {phase.workload.requests_per_client}")
            results[phase.name] = result = run_phase(phase, status)
            status.line(
                f"{phase.name}: {result['requests']} requests, {result['errors']} errors, "
                f"{result['retried_attempts']} retries ({result['throttled_attempts']} x 429, "
                f"{result['unavailable_attempts']} x 503, {result['in_progress_attempts']} x 409), "
                f"p50 {result['latency']['p50_ms']} ms, p99 {result['latency']['p99_ms']} ms, "
                f"reconciliation {'holds' if result['reconciliation']['holds'] else 'FAILS'}"
            )
    nominal = results["nominal"]
    solo = nominal["single_client_baseline"]
    metrics = {**_flat(nominal, "")}
    for name, prefix in (("throttled", "throttled_"), ("dependency_faults", "faults_")):
        metrics.update(_flat(results[name], prefix))
    metrics["faults_in_progress_attempts"] = results["dependency_faults"]["in_progress_attempts"]
    metrics["faults_injected_errors"] = sum(results["dependency_faults"]["faults_injected"].values())
    metrics["faults_failed_calls"] = sum(results["dependency_faults"]["fault_calls_failed"].values())
    path = write_result(
        "load",
        metrics,
        baseline={
            "single_client_p50_ms": solo["latency"]["p50_ms"],
            "single_client_p99_ms": solo["latency"]["p99_ms"],
            "single_client_requests_per_second": solo["throughput"]["requests_per_second"],
        },
        ratio={
            "concurrent_over_single_client_p50": round(nominal["latency"]["p50_ms"] / solo["latency"]["p50_ms"], 2),
            "concurrent_over_single_client_throughput": round(
                nominal["throughput"]["requests_per_second"] / solo["throughput"]["requests_per_second"], 2
            ),
        },
        phases=results,
        definitions={
            "requests": "logical requests of the concurrent load (warm-up and single-client baseline not counted)",
            "errors": "requests whose final answer is not 2xx, or with an attempt answered with a 5xx other "
            "than a 503 with Retry-After, or with an attempt that got no HTTP answer (error_attempts: those attempts)",
            "latency": "per request, first attempt sent to final answer, backoff waits included (what the "
            "client waits); latency_of_attempts: each HTTP exchange alone; percentiles by nearest rank",
            "retries": "on 429, 503, 409 request_in_progress and no answer: Retry-After when given, else "
            "exponential backoff with full jitter (base and cap in workload); same body, same Idempotency-Key",
            "faults_injected": "dependency_faults: the error responses the local cloud's fault plan sent, by "
            "service.operation, the SDK's retries of a failing call included; fault_calls_failed: the calls failed",
        },
        interpretation=(
            "The local Lambda runtime runs one invocation at a time (localcloud/runtime.py: a process-wide "
            "lock, since functions share os.environ and sys.modules), and the clients, the API emulation and "
            "moto share one Python process and its GIL. Concurrent requests therefore queue for the handler: "
            "the latency under load is mostly that queue (about clients x the single-request service time), "
            "not the handler. On AWS each concurrent request gets its own execution environment (up to the "
            "function's reserved concurrency), so these percentiles bound the local emulation, not "
            "production; what carries over is the behaviour: no errors, 429/503 with backoff, exactly-once storage. "
            "In dependency_faults a throttle reaches the handler only after the SDK's backoff (standard retries, "
            "3 attempts: dxops.adapters.clients), during which, locally, every other request waits: that phase's "
            "latency is mostly those waits."
        ),
        machine={
            "cpus": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
        seconds=round(time.perf_counter() - started, 1),
        lambda_log=str(log_path),
    )
    print(
        f"load: {nominal['clients']} clients, {nominal['requests']} requests, {nominal['errors']} errors, "
        f"p50 {nominal['latency']['p50_ms']} ms, p99 {nominal['latency']['p99_ms']} ms; throttled phase "
        f"{results['throttled']['throttled_attempts']} x 429, {results['throttled']['errors']} errors; faults phase "
        f"{results['dependency_faults']['unavailable_attempts']} x 503, {results['dependency_faults']['errors']} "
        f"errors -> {path}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
