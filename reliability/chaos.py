"""Fault injection on the local cloud: each scenario breaks one dependency while real clients and
devices send data, then reconciles what was sent with what the zones hold.

    python -m reliability chaos [--scenario NAME ...]    (make chaos)

A scenario deploys template.yaml on the local cloud, serves its API over HTTP, and injects faults
with localcloud.faults: AWS itself answers with the errors (S3 SlowDown, DynamoDB throttling, ...),
so the SDK's retries, the handlers' error mapping, the queue's redelivery run as they would on
AWS. Each scenario states what must happen (retried, or refused with backpressure and then
accepted, or ended in a named alerting state) and checks it, and every one reconciles: each item
sent is stored or quarantined, none lost and none stored twice in the raw zone's current objects.

Writes artifacts/reliability/chaos.json: per scenario the faults injected, the outcome, the
reconciliation counts, and whether it held; the handlers' logs go to chaos-lambda.log beside it.
See docs/failure-modes.md for the failure-mode table.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import math
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import boto3
import pyarrow.parquet as pq

from cohorts.catalog import build_catalog
from cohorts.patients import CohortConfig, CohortGenerator
from devices.simulator import SimulationConfig, bindings, generate_fleet_messages, make_devices
from localcloud import faults, glue, stepfunctions
from localcloud.api_gateway import serve_api
from localcloud.cloud import LocalCloud
from localcloud.event_sources import PollStats, drain, poll_once, sqs_mappings
from localcloud.faults import Fault, FaultLog, inject
from localcloud.http_client import ApiResponse, call_api
from tests.integration.lifecycle import (
    LIFECYCLE_PARAMETERS,
    announce,
    executions,
    publish_dataset,
    states_entered,
    version_id,
    wait_execution,
    wait_for,
)
from tests.records import clinical_record, rule_envelope
from tests.unit.ml.drift_cohorts import curated_table, patients

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "reliability"
DEVICE_MAPPING = "IngestDeviceFunctionDeviceReadings"


@dataclass
class ScenarioResult:
    name: str
    fault: str  # what breaks
    expected: str  # what must happen
    injected: dict[str, int] = field(default_factory=dict)
    outcome: dict[str, Any] = field(default_factory=dict)
    reconciliation: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def held(self) -> bool:
        return not self.problems

    def check(self, condition: bool, problem: str) -> None:
        if not condition:
            self.problems.append(problem)


@dataclass
class Environment:
    cloud: LocalCloud
    base_url: str

    @property
    def raw_bucket(self) -> str:
        return self.cloud.outputs["RawBucketName"]

    def lines(self, prefix: str) -> list[dict[str, Any]]:
        return self.cloud.ndjson_lines(self.raw_bucket, prefix)

    def post_records(self, batch: list[dict[str, Any]], key: str) -> ApiResponse:
        return call_api(f"{self.base_url}/records", "POST", batch, headers={"Idempotency-Key": key})


# --- clinical records through the API -------------------------------------------------------------


def record_batches(source_prefix: str, batches: int, per_batch: int) -> list[list[dict[str, Any]]]:
    """Each batch: valid records of two sites (two raw objects per request) and one invalid record."""
    result = []
    for b in range(batches):
        batch = [
            clinical_record(
                b * 100 + i, record_id=f"{source_prefix}-{b:03d}-{i:03d}", source=f"{source_prefix}-{i % 2}"
            )
            for i in range(per_batch)
        ]
        batch.append(clinical_record(b * 100 + 99, record_id=f"{source_prefix}-{b:03d}-bad", encounter_date="someday"))
        result.append(batch)
    return result


def cohort_batches(source: str, batches: int, per_batch: int) -> list[list[dict[str, Any]]]:
    """Simulated patients of one site (a cohort the data-quality gate accepts), and one invalid record
    per batch."""
    config = CohortConfig(records=batches * per_batch, seed=4, source=source, start_date=dt.date(2026, 10, 1), days=30)
    records = [patient.record for patient in CohortGenerator(config, build_catalog(rare_count=5))]
    return [
        [
            *records[b * per_batch : (b + 1) * per_batch],
            clinical_record(b, record_id=f"{source}-{b:03d}-bad", source=source, encounter_date="someday"),
        ]
        for b in range(batches)
    ]


def reconcile_records(env: Environment, source_prefix: str, sent: list[list[dict[str, Any]]]) -> dict[str, int]:
    stored = [r for r in env.lines("raw/clinical/") if r["source"].startswith(source_prefix)]
    quarantined = [
        q for q in env.lines("quarantine/clinical/") if str(q.get("item_id") or "").startswith(source_prefix)
    ]
    ids = Counter(r["record_id"] for r in stored)
    return {
        "records_sent": sum(len(b) for b in sent),
        "records_stored": len(stored),
        "distinct_records_stored": len(ids),
        "records_stored_twice": sum(n - 1 for n in ids.values()),
        "records_quarantined": len(quarantined),
    }


def raw_object_versions(env: Environment, marker: str) -> tuple[int, int]:
    """Versions and objects of the (versioned) raw bucket whose key contains `marker`: a request that
    ran twice would have written a second version of its objects."""
    pages = boto3.client("s3").get_paginator("list_object_versions").paginate(Bucket=env.raw_bucket, Prefix="raw/")
    versions = [v["Key"] for page in pages for v in page.get("Versions", []) if marker in v["Key"]]
    return len(versions), len(set(versions))


def check_records(result: ScenarioResult, sent: list[list[dict[str, Any]]], accepted: set[str]) -> None:
    counts = result.reconciliation
    valid = {r["record_id"] for b in sent for r in b if not r["record_id"].endswith("-bad")}
    result.check(accepted == valid, f"{len(valid - accepted)} valid records never accepted")
    result.check(counts["distinct_records_stored"] == len(valid), "stored records differ from accepted ones")
    result.check(counts["records_stored_twice"] == 0, "a record is stored twice in the raw zone")
    result.check(
        counts["records_stored"] + counts["records_quarantined"] == counts["records_sent"],
        "sent records do not reconcile with stored + quarantined",
    )


def s3_throttled_during_ingestion(env: Environment) -> ScenarioResult:
    result = ScenarioResult(
        "s3-throttled-during-ingestion",
        fault="S3 PutObject on the raw bucket: a 2-call SlowDown blip, then an outage, then a partial "
        "outage (one site's objects fail after the other's were written)",
        expected="the blip is absorbed by the SDK's retries (202); during the outages each request is "
        "refused with 503 and Retry-After, never 500; the client's retry with the same Idempotency-Key is "
        "accepted; every record is stored once or quarantined",
    )
    raw = faults.bucket(env.raw_bucket)
    sent = record_batches("chaos-s3", batches=10, per_batch=6)
    accepted: set[str] = set()
    statuses: Counter[int] = Counter()

    def send(index: int) -> ApiResponse:
        response = env.post_records(sent[index], key=f"chaos-s3-{index}")
        statuses[response.status] += 1
        if response.status == 202:
            accepted.update(response.body["stored_record_ids"])
        return response

    blip = Fault("s3", "PutObject", "SlowDown", 503, times=2, when=raw)
    outage = Fault("s3", "PutObject", "SlowDown", 503, times=math.inf, when=raw)
    site_b = Fault(
        "s3", "PutObject", "InternalError", 500, times=math.inf, when=lambda r: "source=chaos-s3-1/" in unquote(r.url)
    )
    with inject(blip) as blip_log:
        result.check(send(0).status == 202, "a 2-call throttle was not absorbed by the SDK's retries")
    result.check(blip_log.injected == {"s3.PutObject": 2}, "the blip did not fire")
    refused = []
    with inject(outage) as outage_log:
        refused += [i for i in (1, 2, 3) if (r := send(i)).status == 503 and r.headers.get("Retry-After")]
    with inject(site_b) as partial_log:
        refused += [i for i in (4, 5) if (r := send(i)).status == 503 and r.headers.get("Retry-After")]
    result.check(refused == [1, 2, 3, 4, 5], f"requests during the outages answered {dict(statuses)}")
    retried = [send(i).status for i in refused]  # the client retries after Retry-After: the outage is over
    result.check(set(retried) == {202}, f"retries answered {retried}")
    for i in range(6, len(sent)):
        send(i)
    result.injected = dict(blip_log.injected + outage_log.injected + partial_log.injected)
    result.outcome = {"statuses": {str(k): v for k, v in sorted(statuses.items())}, "retried_after_503": len(refused)}
    result.check(500 not in statuses, "a request was answered 500")
    result.reconciliation = reconcile_records(env, "chaos-s3", sent)
    check_records(result, sent, accepted)
    return result


def duplicate_requests(env: Environment) -> ScenarioResult:
    result = ScenarioResult(
        "duplicate-requests",
        fault="a client replays POST /records: the same body with the same Idempotency-Key (a retry after a "
        "lost answer)",
        expected="the replay gets the first answer and writes nothing (no second version of any raw object); "
        "nothing is stored twice",
    )
    sent = record_batches("chaos-dup", batches=4, per_batch=5)
    accepted: set[str] = set()
    answers = []
    for index, batch in enumerate(sent):
        for _ in range(2):
            response = env.post_records(batch, key=f"chaos-dup-{index}")
            answers.append(response.status)
            if response.status == 202:
                accepted.update(response.body["stored_record_ids"])
    replays = [env.post_records(sent[0], key="chaos-dup-0").body for _ in range(2)]
    result.check(replays[0] == replays[1], "a replay got a different answer")
    versions, objects = raw_object_versions(env, "source=chaos-dup-")
    result.outcome = {"statuses": dict(Counter(str(s) for s in answers)), "raw_objects": objects}
    result.reconciliation = reconcile_records(env, "chaos-dup", sent) | {"raw_object_versions": versions}
    result.check(versions == objects > 0, f"a replay wrote again: {versions} versions of {objects} objects")
    # Every batch was posted twice: the raw zone must hold each record once.
    check_records(result, sent, accepted)
    return result


# --- device readings through the queue ------------------------------------------------------------


def enqueue(env: Environment, bodies: list[dict[str, Any]]) -> list[str]:
    """What the IoT topic rule's SQS action does with each MQTT message; the SQS message ids, in order."""
    sqs = boto3.client("sqs")
    url = next(m.queue_url for m in sqs_mappings(env.cloud) if m.logical_id == DEVICE_MAPPING)
    ids = []
    for start in range(0, len(bodies), 10):
        sent = sqs.send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "MessageBody": json.dumps(b)} for i, b in enumerate(bodies[start : start + 10])],
        )
        ids += [entry["MessageId"] for entry in sorted(sent["Successful"], key=lambda e: int(e["Id"]))]
    return ids


def device_fleet(env: Environment, site: str, devices: int, seed: int) -> tuple[list[Any], list[dict[str, Any]]]:
    fleet = make_devices(devices, site, seed=seed)
    for device_id, body in bindings(fleet).items():
        response = call_api(f"{env.base_url}/devices/{device_id}/binding", "PUT", body)
        if response.status != 200:
            raise RuntimeError(f"binding {device_id} answered {response.status}")
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=3)
    config = SimulationConfig(start=start, readings=8, batch=2, seed=seed, invalid_rate=0.2)
    messages = generate_fleet_messages(fleet, config)
    envelopes = [rule_envelope(m.payload, m.device_id) for m in messages]
    return messages, envelopes


def reading_ids(messages: list[Any]) -> set[str]:
    """The reading ids the device function gives the valid messages' readings (device:epoch ms)."""
    return {
        f"{m.device_id}:{int(dt.datetime.fromisoformat(r['timestamp']).timestamp() * 1000)}"
        for m in messages
        if m.valid
        for r in m.document["readings"]
    }


def reconcile_readings(env: Environment, site: str, messages: list[Any], queued: dict[str, int]) -> dict[str, int]:
    """Readings of the sites named `site...`; queued: SQS message id -> index of the device message it
    carries (a message may be queued twice)."""
    stored = [r for r in env.lines("raw/device/") if r["source"].startswith(site)]
    quarantined = [q["item_id"] for q in env.lines("quarantine/device/") if q.get("item_id") in queued]
    ids = Counter(r["reading_id"] for r in stored)
    expected = reading_ids(messages)
    return {
        "messages_sent": len(messages),
        "readings_sent_valid": len(expected),
        "readings_stored": len(stored),
        "distinct_readings_stored": len(ids),
        "readings_stored_not_sent": len(set(ids) - expected),
        "readings_sent_not_stored": len(expected - set(ids)),
        "readings_stored_twice": sum(n - 1 for n in ids.values()),
        "messages_invalid": sum(not m.valid for m in messages),
        "messages_quarantined": len({queued[item_id] for item_id in quarantined}),
        "invalid_deliveries": sum(not messages[index].valid for index in queued.values()),
        "quarantine_lines": len(quarantined),
    }


def check_readings(result: ScenarioResult) -> None:
    counts = result.reconciliation
    result.check(counts["readings_sent_not_stored"] == 0, "valid readings were lost")
    result.check(counts["readings_stored_not_sent"] == 0, "readings were stored that no device sent")
    result.check(counts["messages_quarantined"] == counts["messages_invalid"], "invalid messages not quarantined")
    result.check(counts["quarantine_lines"] == counts["invalid_deliveries"], "a delivery was quarantined twice")


def replays_are_identical(env: Environment, site: str) -> bool:
    """Whether every reading stored more than once (a replay) has the same content each time."""
    contents: dict[str, set[str]] = {}
    for reading in env.lines("raw/device/"):
        if reading["source"].startswith(site):
            content = json.dumps({k: v for k, v in reading.items() if k != "ingested_at"}, sort_keys=True)
            contents.setdefault(reading["reading_id"], set()).add(content)
    return all(len(versions) == 1 for versions in contents.values())


def dead_letters(env: Environment) -> int:
    sqs = boto3.client("sqs")
    url = env.cloud.physical_id("DeviceReadingsDlq")  # a queue's Ref is its URL
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def dynamodb_faults_during_device_ingestion(env: Environment) -> ScenarioResult:
    result = ScenarioResult(
        "dynamodb-faults-during-device-ingestion",
        fault="DynamoDB throttles every call to the device bindings table for one poll of the queue, then "
        "answers 500 InternalServerError for the next",
        expected="the device function fails those batches; SQS redelivers them (nothing reaches the DLQ); "
        "afterwards every valid reading is stored once and every invalid message quarantined",
    )
    messages, envelopes = device_fleet(env, "chaos-ddb", devices=4, seed=3)
    queued = {message_id: index for index, message_id in enumerate(enqueue(env, envelopes))}
    mapping = next(m for m in sqs_mappings(env.cloud) if m.logical_id == DEVICE_MAPPING)
    throttled = PollStats()
    bindings_table = faults.table(env.cloud.physical_id("DeviceBindingsTable"))
    log = FaultLog()
    for code, status in (("ProvisionedThroughputExceededException", 400), ("InternalServerError", 500)):
        with inject(Fault("dynamodb", None, code, status, times=math.inf, when=bindings_table)) as poll_log:
            poll_once(env.cloud, mapping, throttled)
        log.injected += poll_log.injected
    after = drain(env.cloud)[DEVICE_MAPPING]
    result.injected = dict(log.injected)
    result.outcome = {
        "failed_invocations_during_throttle": throttled.failed_invocations,
        "messages_deleted_during_throttle": throttled.deleted,
        "messages_deleted_after": after.deleted,
        "dead_letters": dead_letters(env),
    }
    result.check(throttled.failed_invocations == 2 and throttled.deleted == 0, "a throttled batch was not failed")
    result.check(log.injected["dynamodb.BatchGetItem"] > 0, "the DynamoDB faults did not fire")
    result.check(after.deleted == len(messages), "not every message was processed after the throttle")
    result.check(result.outcome["dead_letters"] == 0, "messages reached the dead-letter queue")
    result.reconciliation = reconcile_readings(env, "chaos-ddb", messages, queued)
    result.check(result.reconciliation["readings_stored_twice"] == 0, "a reading is stored twice")
    check_readings(result)
    return result


def function_crash_mid_batch(env: Environment) -> ScenarioResult:
    result = ScenarioResult(
        "function-crash-mid-batch",
        fault="the device function's environment dies (out of memory, timeout) while it writes a batch: "
        "after the first site's readings are stored, before the second site's",
        expected="the invocation fails; SQS redelivers the whole batch and the next invocation stores it; "
        "nothing reaches the DLQ; no valid reading is lost; readings stored before the crash may be stored "
        "again, under the same reading_id with the same content (the curated dataset keeps one)",
    )
    messages, envelopes = device_fleet(env, "chaos-crash-a", devices=2, seed=7)
    more, more_envelopes = device_fleet(env, "chaos-crash-b", devices=2, seed=8)
    queued = {message_id: index for index, message_id in enumerate(enqueue(env, envelopes + more_envelopes))}
    writes = faults.bucket(env.raw_bucket)
    crash = Fault("s3", "PutObject", "Runtime.ExitError", crash=True, every=2, calls=1, when=writes)
    with inject(crash) as log:
        stats = drain(env.cloud)[DEVICE_MAPPING]
    result.injected = dict(log.injected)
    result.outcome = {
        "failed_invocations": stats.failed_invocations,
        "errors": sorted(set(stats.errors)),
        "messages_deleted": stats.deleted,
        "dead_letters": dead_letters(env),
    }
    result.check(log.injected == {"s3.PutObject": 1}, "the crash did not fire")
    result.check(stats.failed_invocations == 1 and stats.errors == ["FunctionCrash"], "the crash did not fail a batch")
    result.check(stats.deleted == len(envelopes) + len(more_envelopes), "a message was not processed after the crash")
    result.check(result.outcome["dead_letters"] == 0, "messages reached the dead-letter queue")
    both = messages + more
    result.reconciliation = reconcile_readings(env, "chaos-crash-", both, queued)
    check_readings(result)
    result.check(replays_are_identical(env, "chaos-crash-"), "a replayed reading differs from the first")
    return result


def duplicate_and_out_of_order_device_messages(env: Environment) -> ScenarioResult:
    result = ScenarioResult(
        "duplicate-and-out-of-order-device-messages",
        fault="SQS delivers every device message twice (at-least-once), newest readings first",
        expected="every valid reading is stored under its deterministic reading_id with its own timestamp; "
        "a duplicate delivery repeats the same reading (same id and content), which the curated dataset "
        "keeps once (glue/dxops_etl/dedup.py); invalid messages are quarantined",
    )
    messages, envelopes = device_fleet(env, "chaos-dup", devices=3, seed=5)
    newest_first = list(reversed(range(len(envelopes))))
    message_ids = enqueue(env, [envelopes[i] for i in newest_first * 2])
    queued = dict(zip(message_ids, newest_first * 2, strict=True))
    stats = drain(env.cloud)[DEVICE_MAPPING]
    result.outcome = {"messages_delivered": stats.delivered, "failed_invocations": stats.failed_invocations}
    result.reconciliation = reconcile_readings(env, "chaos-dup", messages, queued)
    result.check(replays_are_identical(env, "chaos-dup"), "a duplicate delivery stored different content")
    result.check(stats.failed_invocations == 0, "a batch failed")
    check_readings(result)
    return result


# --- the model lifecycle: training, the endpoint ---------------------------------------------------


def alert_listener(env: Environment) -> str:
    """An SQS queue subscribed to AlertsTopic, as an on-call mailbox would be."""
    sqs, sns = boto3.client("sqs"), boto3.client("sns")
    url = sqs.create_queue(QueueName="chaos-alerts")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(
        TopicArn=env.cloud.outputs["AlertsTopicArn"],
        Protocol="sqs",
        Endpoint=arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    return url


def alerts(url: str) -> list[str]:
    sqs, bodies = boto3.client("sqs"), []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def model_versions(env: Environment) -> dict[int, dict[str, Any]]:
    listed = call_api(f"{env.base_url}/models", "GET").body
    return {m["package_version"]: m for m in listed}


def captured_predictions(env: Environment) -> list[dict[str, Any]]:
    return env.cloud.ndjson_lines(env.cloud.outputs["MonitoringBucketName"], "predictions/")


def predictions_through_an_endpoint_outage(env: Environment, result: ScenarioResult) -> tuple[list[str], Counter[str]]:
    """Ten prediction requests; the endpoint is down for three of them, which the client retries after."""
    records = [p.record for p in patients("baseline", 50, seed=9, start=1000)]
    batches = [records[i : i + 5] for i in range(0, 50, 5)]
    served: list[str] = []
    statuses: Counter[int] = Counter()

    def predict(batch: list[dict[str, Any]]) -> ApiResponse:
        response = call_api(f"{env.base_url}/predict", "POST", {"records": batch, "top_k": 3})
        statuses[response.status] += 1
        if response.status == 200:
            served.extend(p["prediction_id"] for p in response.body["predictions"])
        return response

    refused = []
    endpoint_down = Fault("sagemaker-runtime", "InvokeEndpoint", "ServiceUnavailable", 503, times=math.inf)
    endpoint_injected: Counter[str] = Counter()
    for index, batch in enumerate(batches):
        if index in (3, 4, 5):
            with inject(endpoint_down) as endpoint_log:
                response = predict(batch)
            endpoint_injected += endpoint_log.injected
            refused += [index] if response.status == 503 and response.headers.get("Retry-After") else []
        else:
            predict(batch)
    result.check(refused == [3, 4, 5], f"requests during the endpoint outage answered {dict(statuses)}")
    result.check({predict(batches[i]).status for i in refused} == {200}, "a retry after the outage failed")
    result.outcome["predict_statuses"] = {str(k): v for k, v in sorted(statuses.items())}
    result.reconciliation["records_sent_for_prediction"] = sum(len(b) for b in batches) + sum(
        len(batches[i]) for i in refused
    )
    return served, endpoint_injected


def sagemaker_faults_in_the_model_lifecycle(env: Environment) -> ScenarioResult:
    result = ScenarioResult(
        "sagemaker-faults-in-the-model-lifecycle",
        fault="SageMaker throttles CreateTrainingJob twice; the endpoint is unavailable (503) for three "
        "prediction requests; a training job fails (an unknown model family)",
        expected="the training state machine retries and registers the version; POST /predict answers 503 "
        "with Retry-After and captures nothing for the refused requests, then serves their retries; the "
        "failing job ends in TrainingRunFailed with an alert, registers nothing and frees the training slot; "
        "every served prediction is captured once",
    )
    mailbox = alert_listener(env)
    # A deployment's smoke test sends a few records of the raw zone to the new endpoint.
    smoke = [clinical_record(i, record_id=f"chaos-smoke-{i}") for i in range(3)]
    result.check(env.post_records(smoke, key="chaos-smoke").status == 202, "the smoke-test records were refused")
    table = curated_table(patients("baseline", 300, seed=3), devices=False)
    with inject(Fault("sagemaker", "CreateTrainingJob", "ThrottlingException", 400, times=2)) as training_log:
        announce(publish_dataset(env.cloud, version_id(1), table))
        wait_for(lambda: model_versions(env).get(1), 420, "model version 1")
    decision = {"decision": "approve", "rationale": "Chaos scenario: approved to serve."}
    result.check(call_api(f"{env.base_url}/models/1/approval", "POST", decision).status == 200, "approval refused")
    deployment = wait_for(lambda: executions(env.cloud, "DeploymentStateMachineArn"), 60, "a deployment")[0]["name"]
    deployed = wait_execution(env.cloud, "DeploymentStateMachineArn", deployment, timeout=300)["status"]
    result.check(deployed == "SUCCEEDED", f"deployment {deployed}")

    served, endpoint_injected = predictions_through_an_endpoint_outage(env, result)

    code = call_api(f"{env.base_url}/trainings", "POST", {"hyperparameters": {"candidates": "no-such-model"}})
    result.check(code.status == 202, f"POST /trainings answered {code.status}")
    failed_run = code.body.get("run_name", "")
    ended = wait_execution(env.cloud, "TrainingStateMachineArn", failed_run, timeout=300)
    entered = states_entered(ended["executionArn"])
    alerted = alerts(mailbox)
    captured = Counter(p["prediction_id"] for p in captured_predictions(env))
    result.injected = dict(training_log.injected + endpoint_injected)
    result.check(training_log.injected == {"sagemaker.CreateTrainingJob": 2}, "the training throttles did not fire")
    result.check(endpoint_injected["sagemaker-runtime.InvokeEndpoint"] >= 3, "the endpoint outage did not fire")
    result.outcome |= {
        "version_1": "registered" if model_versions(env).get(1) else "missing",
        "deployment": deployed,
        "failing_training_run": ended["status"],
        "failing_training_states": entered[-2:],
        "alerts": len(alerted),
    }
    result.check(ended["status"] == "FAILED" and entered[-1] == "TrainingRunFailed", "the failing run did not alert")
    result.check(any(failed_run in body for body in alerted), "no alert names the failing run")
    result.check(2 not in model_versions(env), "the failing run registered a version")
    again = call_api(f"{env.base_url}/trainings", "POST", {"hyperparameters": {"candidates": "no-such-model"}})
    result.check(again.status == 202, "the training slot was not freed by the failed run")
    result.reconciliation |= {
        "predictions_served": len(served),
        "predictions_captured": sum(captured.values()),
        "distinct_predictions_captured": len(captured),
    }
    result.check(set(captured) == set(served), "captured predictions differ from served ones")
    result.check(sum(captured.values()) == len(served), "a prediction is captured twice")
    return result


# --- data processing: Glue ----------------------------------------------------------------------


def processing_run(env: Environment) -> dict[str, Any]:
    """Deliver the raw objects' events to the dataset trigger; the run it starts, once ended."""
    drain(env.cloud)
    sfn = boto3.client("stepfunctions")
    machine = env.cloud.outputs["DataProcessingStateMachineArn"]
    running = wait_for(
        lambda: [e for e in sfn.list_executions(stateMachineArn=machine)["executions"] if e["status"] == "RUNNING"],
        60,
        "a data-processing run",
    )
    return stepfunctions.wait_for_execution(env.cloud, running[0]["executionArn"], timeout=600)


def curated_record_ids(manifest_uri: str) -> Counter[str]:
    bucket, key = manifest_uri.removeprefix("s3://").split("/", 1)
    s3 = boto3.client("s3")
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    table_bucket, prefix = manifest["table_uri"].removeprefix("s3://").split("/", 1)
    ids: Counter[str] = Counter()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=table_bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(".parquet"):
                body = s3.get_object(Bucket=table_bucket, Key=obj["Key"])["Body"].read()
                ids.update(pq.read_table(io.BytesIO(body), columns=["record_id"]).column("record_id").to_pylist())
    return ids


def glue_failure_in_data_processing(env: Environment) -> ScenarioResult:
    result = ScenarioResult(
        "glue-failure-in-data-processing",
        fault="Glue refuses StartJobRun (AccessDenied) for the first data-processing run; the second run's "
        "StartJobRun is throttled once",
        expected="the first run ends in EtlJobFailed with an alert and publishes nothing; the raw zone keeps "
        "everything; the second run retries the throttle and curates every accepted record of both windows "
        "once, also the batch a client resent under a new Idempotency-Key (twice in the raw zone)",
    )
    boto3.client("events").disable_rule(Name=env.cloud.physical_id("StartTrainingFunctionDatasetReady"))
    mailbox = alert_listener(env)
    sent, accepted = cohort_batches("chaos-etl", batches=6, per_batch=10), set()
    for index, batch in enumerate(sent[:3]):
        accepted.update(env.post_records(batch, key=f"chaos-etl-{index}").body["stored_record_ids"])
    with inject(Fault("glue", "StartJobRun", "AccessDeniedException", 400, times=math.inf)) as refused_log:
        first = processing_run(env)
    first_states = stepfunctions.execution_history(env.cloud, first["executionArn"])
    alerted = alerts(mailbox)
    time.sleep(3)  # the next records land in the next trigger window
    for index, batch in enumerate(sent[3:], 3):
        accepted.update(env.post_records(batch, key=f"chaos-etl-{index}").body["stored_record_ids"])
    # A client resends the first batch under a new Idempotency-Key: the raw zone holds it twice.
    resent = env.post_records(sent[0], key="chaos-etl-0-resent").body["stored_record_ids"]
    with inject(Fault("glue", "StartJobRun", "ThrottlingException", 400, times=1)) as throttle_log:
        second = processing_run(env)
    second_states = stepfunctions.execution_history(env.cloud, second["executionArn"])
    result.injected = dict(refused_log.injected + throttle_log.injected)
    result.check(throttle_log.injected == {"glue.StartJobRun": 1}, "the Glue throttle did not fire")
    retried = [
        details["error"]
        for event in stepfunctions.execution_events(env.cloud, second["executionArn"])
        for name, details in event.items()
        if name == "taskFailedEventDetails"
    ]
    result.check(retried == ["Glue.ThrottlingException"], f"the throttle was not retried once: {retried}")
    result.outcome = {
        "first_run": first["status"],
        "first_run_ended_in": first_states[-1],
        "alerts": len(alerted),
        "second_run": second["status"],
        "second_run_ended_in": second_states[-1],
    }
    result.check(first["status"] == "FAILED" and first_states[-1] == "EtlJobFailed", "the refused run did not fail")
    result.check(any("EtlJobFailed" in body or "ETL" in body for body in alerted), "no alert for the failed run")
    result.check(second["status"] == "SUCCEEDED", f"the second run ended {second['status']}")
    curated = curated_record_ids(json.loads(second["output"])["manifest_uri"]) if second.get("output") else Counter()
    result.reconciliation = {
        **reconcile_records(env, "chaos-etl", [*sent, sent[0]]),  # the resent batch counts twice
        "records_curated": sum(curated.values()),
        "distinct_records_curated": len(curated),
    }
    counts = result.reconciliation
    result.check(counts["distinct_records_stored"] == len(accepted), "stored records differ from accepted ones")
    result.check(counts["records_stored_twice"] == len(resent), "the resent batch is not in the raw zone twice")
    result.check(
        counts["records_stored"] + counts["records_quarantined"] == counts["records_sent"],
        "sent records do not reconcile with stored + quarantined",
    )
    result.check(set(curated) == accepted, "curated records differ from accepted ones")
    result.check(sum(curated.values()) == len(curated), "a record is curated twice")
    return result


SCENARIOS: dict[str, Callable[[Environment], ScenarioResult]] = {
    "s3-throttled-during-ingestion": s3_throttled_during_ingestion,
    "duplicate-requests": duplicate_requests,
    "dynamodb-faults-during-device-ingestion": dynamodb_faults_during_device_ingestion,
    "function-crash-mid-batch": function_crash_mid_batch,
    "duplicate-and-out-of-order-device-messages": duplicate_and_out_of_order_device_messages,
    "sagemaker-faults-in-the-model-lifecycle": sagemaker_faults_in_the_model_lifecycle,
    "glue-failure-in-data-processing": glue_failure_in_data_processing,
}
# Template parameters a scenario needs (fast training, instance endpoint, manual approval).
PARAMETERS: dict[str, dict[str, str]] = {
    "sagemaker-faults-in-the-model-lifecycle": LIFECYCLE_PARAMETERS,
    # Runs of 2-second windows that start at once: the scenario waits for each.
    "glue-failure-in-data-processing": {"TriggerWindowSeconds": "2", "TriggerSettleSeconds": "0"},
}


@contextlib.contextmanager
def environment(parameters: dict[str, str] | None = None) -> Iterator[Environment]:
    with (
        tempfile.TemporaryDirectory(prefix="chaos-glue-") as glue_work,
        glue.configured(workdir=Path(glue_work), java_options=glue.QUICK_START_JAVA_OPTIONS),
        LocalCloud.start(parameters=parameters) as cloud,
        serve_api(cloud) as api,
    ):
        yield Environment(cloud, api.base_url())


def run(names: list[str], log_path: Path) -> list[ScenarioResult]:
    results = []
    with (
        open(log_path, "w") as log,
        contextlib.redirect_stdout(log),  # the handlers' JSON logs and EMF lines
        warnings.catch_warnings(),
    ):
        warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)
        for number, name in enumerate(names, 1):
            started = time.perf_counter()
            with environment(PARAMETERS.get(name)) as env:  # a fresh cloud per scenario: its counts are its own
                result = SCENARIOS[name](env)
            result.seconds = round(time.perf_counter() - started, 1)
            results.append(result)
            verdict = "held" if result.held else f"FAILED: {'; '.join(result.problems)}"
            print(f"[{number}/{len(names)}] {name}: {verdict} ({result.seconds} s)", file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="default: all")
    parser.add_argument("--out", type=Path, default=ARTIFACTS / "chaos.json")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = run(args.scenario or list(SCENARIOS), args.out.with_name(f"{args.out.stem}-lambda.log"))
    document = {
        "scenarios": len(results),
        "held": sum(r.held for r in results),
        "failures": sum(not r.held for r in results),
        "faults_injected": sum(sum(r.injected.values()) for r in results),
        "results": [{**asdict(r), "held": r.held} for r in results],
    }
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"{document['held']} of {len(results)} scenarios held; wrote {args.out}", file=sys.stderr)
    return 0 if document["failures"] == 0 else 1
