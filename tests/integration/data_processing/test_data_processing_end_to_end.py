"""The data-processing pipeline on the local cloud, end to end, with the real Glue job (local Spark):
raw objects land -> the trigger starts one run -> Glue ETL -> DQ gate -> version published
(manifest, catalog, DatasetReady); replays start nothing; an unchanged run publishes nothing; a
failing-quality run ends in the alerting state with nothing published.

Three Spark runs (a subprocess each, ~20-40 s on 2 busy cores). The tests run in file order and
share one cloud: each stage starts from what the previous one left.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from cohorts.catalog import build_catalog
from cohorts.patients import CohortConfig, CohortGenerator
from dxops.domain.pseudonymisation import PseudonymKey, pseudonymise
from dxops.domain.raw_zone import raw_key, to_ndjson
from dxops.schemas.clinical import ClinicalRecord, PseudonymisedRecord
from dxops.schemas.datasets import DatasetManifest
from localcloud import event_sources, glue, stepfunctions
from localcloud.cloud import LocalCloud

ROOT = Path(__file__).resolve().parents[3]
RUN_TIMEOUT = 300.0
KEY = PseudonymKey("k-test", b"test-secret-not-a-real-key")
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
RECORDS, OBJECTS = 60, 30  # a burst of 30 objects of 2 records each


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    parameters = {"TriggerWindowSeconds": "2", "TriggerSettleSeconds": "0"}
    with (
        glue.configured(workdir=tmp_path_factory.mktemp("dp-glue"), java_options=glue.QUICK_START_JAVA_OPTIONS),
        LocalCloud.start(template_path=ROOT / "template.yaml", parameters=parameters) as local_cloud,
    ):
        yield local_cloud


@pytest.fixture(scope="module")
def listeners(cloud: LocalCloud) -> dict[str, str]:
    """Queues that receive the DatasetReady events and the alerts, as subscribers would."""
    sqs, events, sns = boto3.client("sqs"), boto3.client("events"), boto3.client("sns")
    urls = {name: sqs.create_queue(QueueName=f"test-{name}")["QueueUrl"] for name in ("ready", "alerts")}
    arns = {
        n: sqs.get_queue_attributes(QueueUrl=u, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for n, u in urls.items()
    }
    events.put_rule(
        Name="test-dataset-ready",
        EventPattern=json.dumps({"source": ["dxops.datasets"], "detail-type": ["DatasetReady"]}),
    )
    events.put_targets(Rule="test-dataset-ready", Targets=[{"Id": "q", "Arn": arns["ready"]}])
    sns.subscribe(
        TopicArn=cloud.outputs["AlertsTopicArn"],
        Protocol="sqs",
        Endpoint=arns["alerts"],
        Attributes={"RawMessageDelivery": "true"},
    )
    return urls


def received(url: str) -> list[Any]:
    sqs, bodies = boto3.client("sqs"), []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", []):
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def simulated_records(count: int, seed: int) -> list[dict[str, Any]]:
    catalog = build_catalog(rare_count=5)
    config = CohortConfig(
        records=count, seed=seed, source="site-dp", start_date=NOW.date() - dt.timedelta(days=20), days=15
    )
    lines = []
    for patient in CohortGenerator(config, catalog):
        clinical = ClinicalRecord.model_validate(patient.record)
        pseudonym = pseudonymise(KEY, clinical.source, clinical.patient_id)
        record = PseudonymisedRecord.from_record(
            clinical, pseudonym=pseudonym, key_id=KEY.key_id, ingested_at=NOW, schema_version="1.0"
        )
        lines.append(json.loads(record.model_dump_json()))
    return lines


def land(cloud: LocalCloud, lines: list[dict[str, Any]], objects: int, batch: str) -> list[str]:
    s3, bucket, keys = boto3.client("s3"), cloud.outputs["RawBucketName"], []
    per_object = max(1, len(lines) // objects)
    for i in range(objects):
        key = raw_key("clinical", "site-dp", NOW.date(), f"{batch}-{i:03d}")
        s3.put_object(Bucket=bucket, Key=key, Body=to_ndjson(lines[i * per_object : (i + 1) * per_object]))
        keys.append(key)
    return keys


def executions(cloud: LocalCloud) -> list[dict[str, Any]]:
    sfn = boto3.client("stepfunctions")
    return sfn.list_executions(stateMachineArn=cloud.outputs["DataProcessingStateMachineArn"])["executions"]


def finish(cloud: LocalCloud, execution_arn: str) -> dict[str, Any]:
    """The ended execution, with `task_failures`: the errors of its failed tasks (for messages)."""
    result = stepfunctions.wait_for_execution(cloud, execution_arn, timeout=RUN_TIMEOUT)
    failures = [
        details
        for event in stepfunctions.execution_events(cloud, execution_arn)
        for name, details in event.items()
        if name in ("taskFailedEventDetails", "lambdaFunctionFailedEventDetails")
    ]
    return {**result, "task_failures": failures}


def s3_json(uri: str) -> Any:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def keys_under(bucket: str, prefix: str) -> list[str]:
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


STATE: dict[str, Any] = {}


def test_a_burst_of_raw_objects_starts_one_run_that_publishes_a_version(
    cloud: LocalCloud, listeners: dict[str, str]
) -> None:
    land(cloud, simulated_records(RECORDS, seed=11), OBJECTS, "burst")
    stats = event_sources.drain(cloud)["DatasetTriggerFunctionRawObjects"]
    assert stats.delivered == OBJECTS and not stats.errors
    (execution,) = executions(cloud)  # thirty objects, one run
    result = finish(cloud, execution["executionArn"])
    assert result["status"] == "SUCCEEDED", result["task_failures"]
    path = stepfunctions.execution_history(cloud, execution["executionArn"])
    assert path[:3] == ["WaitForTriggerWindow", "WaitUntilWindowCloses", "PrepareRun"]
    assert path[-2:] == ["AnnounceDatasetReady", "DatasetPublished"]
    detail = json.loads(result["output"])

    manifest = DatasetManifest.model_validate(s3_json(detail["manifest_uri"]))
    assert manifest.rows["curated"] == RECORDS and manifest.source_objects == OBJECTS
    assert manifest.pipeline["trigger"] == "raw-objects" and manifest.previous_version is None
    sources = s3_json(manifest.sources_uri)
    assert sum(s["lines"] for s in sources) == RECORDS  # lineage: every raw object and its lines
    curated = cloud.outputs["CuratedBucketName"]
    parquet = [k for k in keys_under(curated, f"datasets/{manifest.dataset_version}/table/") if k.endswith(".parquet")]
    assert parquet and all("/source=site-dp/" in k for k in parquet)
    report = s3_json(manifest.dq_report_uri)
    assert report["status"] == "pass"

    table = boto3.client("glue").get_table(
        DatabaseName=cloud.outputs["CatalogDatabaseName"], Name=cloud.outputs["CuratedTableName"]
    )["Table"]
    assert table["Parameters"]["dataset_version"] == manifest.dataset_version
    assert table["StorageDescriptor"]["Location"] == manifest.table_uri
    assert {c["Name"] for c in table["StorageDescriptor"]["Columns"]} >= {"record_id", "patient_id", "label"}

    (ready,) = received(listeners["ready"])
    assert ready["detail"]["dataset_version"] == manifest.dataset_version and ready["detail"]["rows"] == RECORDS
    STATE["first"] = manifest


def test_replayed_events_start_no_second_run(cloud: LocalCloud) -> None:
    raw = cloud.outputs["RawBucketName"]
    events = boto3.client("events")
    # An EventBridge replay re-sends the original S3 events: same objects, same versions.
    s3 = boto3.client("s3")
    for key in keys_under(raw, "raw/clinical/")[:10]:
        head = s3.head_object(Bucket=raw, Key=key)
        detail = {
            "version": "0",
            "bucket": {"name": raw},
            "object": {
                "key": key,
                "size": head["ContentLength"],
                "etag": head["ETag"].strip('"'),
                "version-id": head["VersionId"],
            },
            "reason": "PutObject",
        }
        events.put_events(Entries=[{"Source": "aws.s3", "DetailType": "Object Created", "Detail": json.dumps(detail)}])
    stats = event_sources.drain(cloud)["DatasetTriggerFunctionRawObjects"]
    assert stats.delivered == 10 and not stats.errors
    assert len(executions(cloud)) == 1


def test_a_scheduled_run_without_new_data_publishes_nothing(cloud: LocalCloud, listeners: dict[str, str]) -> None:
    sfn = boto3.client("stepfunctions")
    arn = sfn.start_execution(
        stateMachineArn=cloud.outputs["DataProcessingStateMachineArn"], input=json.dumps({"trigger": "schedule"})
    )["executionArn"]
    result = finish(cloud, arn)
    assert result["status"] == "SUCCEEDED", result["task_failures"]
    withdrawal = json.loads(result["output"])
    assert withdrawal["reason"] == "unchanged"
    assert stepfunctions.execution_history(cloud, arn)[-2:] == ["DiscardUnchangedRun", "DatasetUnchanged"]
    curated = cloud.outputs["CuratedBucketName"]
    assert keys_under(curated, f"datasets/{withdrawal['dataset_version']}/") == []
    assert received(listeners["ready"]) == []
    versions = {k.split("/")[1] for k in keys_under(curated, "datasets/") if k.endswith("manifest.json")}
    assert versions == {STATE["first"].dataset_version}


def test_a_failing_quality_run_alerts_and_publishes_nothing(cloud: LocalCloud, listeners: dict[str, str]) -> None:
    implausible = simulated_records(10, seed=12)
    for line in implausible:
        line["age_years"] = 300.0  # outside the age_range rule (0-130): an error-level rule
    land(cloud, implausible, 2, "implausible")
    sfn = boto3.client("stepfunctions")
    arn = sfn.start_execution(
        stateMachineArn=cloud.outputs["DataProcessingStateMachineArn"], input=json.dumps({"trigger": "manual"})
    )["executionArn"]
    result = finish(cloud, arn)
    assert (result["status"], result["error"]) == ("FAILED", "DataQualityFailed")
    assert stepfunctions.execution_history(cloud, arn)[-3:] == [
        "QuarantineFailedRun",
        "AlertQualityFailure",
        "QualityGateFailed",
    ]

    (alert,) = received(listeners["alerts"])
    assert alert["alert"] == "QualityGateFailed" and "age_range" in alert["failed_rules"]
    version = alert["dataset_version"]
    curated = cloud.outputs["CuratedBucketName"]
    assert keys_under(curated, f"datasets/{version}/") == []  # nothing published, nothing left to read
    kept = keys_under(curated, f"quarantine/{version}/")
    assert f"quarantine/{version}/dq_report.json" in kept
    assert any(k.startswith(f"quarantine/{version}/dq_failing_rows/") and k.endswith(".parquet") for k in kept)
    report = s3_json(f"s3://{curated}/quarantine/{version}/dq_report.json")
    assert next(r for r in report["rules"] if r["id"] == "age_range")["status"] == "fail"
    assert received(listeners["ready"]) == []
    table = boto3.client("glue").get_table(
        DatabaseName=cloud.outputs["CatalogDatabaseName"], Name=cloud.outputs["CuratedTableName"]
    )["Table"]
    assert table["Parameters"]["dataset_version"] == STATE["first"].dataset_version
