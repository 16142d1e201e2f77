"""The data-processing pipeline on the local cloud, end to end, with the real Glue job (local Spark):
raw objects land -> the trigger starts one run -> Glue ETL -> DQ gate -> version published
(manifest, catalog, DatasetReady); replays start nothing; an unchanged run publishes nothing; a
failing-quality run ends in the alerting state with nothing published; an erasure request removes
one patient everywhere (every object version of the raw bucket, every curated dataset), amends the
manifest and is recorded in the write-once audit log.

Four Spark runs (a subprocess each, ~20-40 s on 2 busy cores). The tests run in file order and
share one cloud: each stage starts from what the previous one left.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from cohorts.catalog import build_catalog
from cohorts.patients import CohortConfig, CohortGenerator
from dxops.domain.pseudonymisation import PseudonymKey, pseudonymise
from dxops.domain.raw_zone import raw_key, to_ndjson
from dxops.schemas.clinical import ClinicalRecord, PseudonymisedRecord
from dxops.schemas.datasets import DatasetManifest
from localcloud import event_sources, glue, stepfunctions
from localcloud.cloud import LocalCloud
from tests.integration import api_events

ROOT = Path(__file__).resolve().parents[2]
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
        # This module tests data processing: its DatasetReady events train no model here (the
        # model lifecycle has its own tests, tests/integration/test_model_lifecycle.py).
        boto3.client("events").disable_rule(Name=local_cloud.physical_id("StartTrainingFunctionDatasetReady"))
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
    records = simulated_records(RECORDS, seed=11)
    STATE["erased"] = records[0]  # the patient the erasure stage removes
    land(cloud, records, OBJECTS, "burst")
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

    # The DQ figures are CloudWatch metrics (EMF from the gate's function): one per rule too.
    cloudwatch = boto3.client("cloudwatch")
    passed = cloudwatch.list_metrics(Namespace="dxops/dev", MetricName="DataQualityRulePassed")["Metrics"]
    rules = {d["Value"] for m in passed for d in m["Dimensions"] if d["Name"] == "rule"}
    assert {"age_range", "record_id_unique", "labs_plausible", "label_balance"} <= rules
    curated_rows = cloudwatch.list_metrics(Namespace="dxops/dev", MetricName="CuratedRows")["Metrics"]
    assert curated_rows and curated_rows[0]["Dimensions"] == [{"Name": "service", "Value": "data-processing"}]

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
    # A second encounter of the patient to erase, so that they are in the failing rows too.
    implausible[0] = {**STATE["erased"], "record_id": "erased-patient-second-visit"}
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


def api_request(method: str, path: str, body: Any = None) -> dict[str, Any]:
    """A signed API Gateway proxy event for the ingestion API function."""
    event = api_events.load_event("ingest_api/put_device_binding.json")
    resource = "/erasure-requests/{request_id}" if path.count("/") > 1 else path
    event.update(resource=resource, path=path, httpMethod=method, pathParameters=None)
    event["requestContext"].update(resourcePath=resource, httpMethod=method)
    if path.count("/") > 1:
        event["pathParameters"] = {"request_id": path.rsplit("/", 1)[1]}
    event["body"] = None if body is None else json.dumps(body)
    return event


def all_versions(bucket: str, prefix: str = "") -> list[tuple[str, bytes]]:
    """Every version of every object under prefix (current and older), with its body."""
    s3, found = boto3.client("s3"), []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for version in page.get("Versions", []):
            body = s3.get_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])["Body"].read()
            found.append((version["Key"], body))
    return found


def test_an_erasure_removes_the_patient_everywhere(cloud: LocalCloud, spark: Any, tmp_path: Path) -> None:
    patient = STATE["erased"]["patient_pseudonym"]
    raw, curated = cloud.outputs["RawBucketName"], cloud.outputs["CuratedBucketName"]
    s3 = boto3.client("s3")
    # The patient also wore a device (a binding and readings) and had a record quarantined at ingestion.
    reading = {"reading_id": "dev-e:1", "device_id": "dev-e", "patient_pseudonym": patient, "measurements": []}
    s3.put_object(Bucket=raw, Key=raw_key("device", "site-dp", NOW.date(), "erasure-dev"), Body=to_ndjson([reading]))
    rejected = {"reason": "invalid", "patient_pseudonym": patient, "errors": []}
    s3.put_object(Bucket=raw, Key="quarantine/clinical/ingest_date=2026-11-27/q1.ndjson", Body=to_ndjson([rejected]))
    bindings_table = cloud.physical_id("DeviceBindingsTable")
    boto3.client("dynamodb").put_item(
        TableName=bindings_table,
        Item={"device_id": {"S": "dev-e"}, "patient_pseudonym": {"S": patient}, "source": {"S": "site-dp"}},
    )
    assert any(patient.encode() in body for _, body in all_versions(raw))

    response = cloud.invoke(
        "IngestApiFunction", api_request("POST", "/erasure-requests", {"patient_pseudonym": patient})
    )
    assert response["statusCode"] == 202, response["body"]
    request_id = json.loads(response["body"])["request_id"]
    erasure_arn = cloud.outputs["ErasureStateMachineArn"].replace(":stateMachine:", ":execution:") + f":{request_id}"
    result = finish(cloud, erasure_arn)
    assert result["status"] == "SUCCEEDED", result["task_failures"]

    # Raw bucket: no version of any object holds the patient any more; the others' lines stay.
    assert not [key for key, body in all_versions(raw) if patient.encode() in body]
    assert len(cloud.ndjson_lines(raw, "raw/clinical/")) == RECORDS + 10 - 2
    assert (
        boto3.client("dynamodb").get_item(TableName=bindings_table, Key={"device_id": {"S": "dev-e"}}).get("Item")
        is None
    )

    # Curated bucket: the published version's table and the failed run's quarantine, without the patient.
    first: DatasetManifest = STATE["first"]
    local = tmp_path / "curated"
    older_data_versions = []
    for key, body in all_versions(curated):  # newest first per key; data must have no older version left
        target = local / key
        if target.exists():
            if key.endswith(".parquet") or "/lines/" in key:
                older_data_versions.append(key)
            continue  # an older manifest (no patient data: the amendment keeps its history)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
    assert older_data_versions == []
    table = spark.read.parquet(str(local / "datasets" / first.dataset_version / "table"))
    assert table.count() == RECORDS - 1 and table.filter(table.patient_id == patient).count() == 0
    failing = [p for p in local.glob("quarantine/*/dq_failing_rows") if p.is_dir()]
    assert failing and all(spark.read.parquet(str(f)).filter(f"patient_id = '{patient}'").count() == 0 for f in failing)
    assert not [
        k for k, body in all_versions(curated, "quarantine/") if k.endswith(".json") and patient.encode() in body
    ]
    assert keys_under(curated, "erasure-requests/") == []

    amended = DatasetManifest.model_validate(s3_json(first.table_uri.replace("table/", "manifest.json")))
    assert amended.rows["curated"] == RECORDS - 1 and amended.content_hash != first.content_hash
    assert [e.request_id for e in amended.erasures] == [request_id]
    table_params = boto3.client("glue").get_table(
        DatabaseName=cloud.outputs["CatalogDatabaseName"], Name=cloud.outputs["CuratedTableName"]
    )["Table"]["Parameters"]
    assert (table_params["row_count"], table_params["content_hash"]) == (str(RECORDS - 1), amended.content_hash)

    # The audit log: requested and completed, a digest of the pseudonym only, and write-once.
    audit = cloud.outputs["AuditBucketName"]
    records = {
        key.rsplit("/", 1)[1]: json.loads(body) for key, body in all_versions(audit, f"audit/erasure/{request_id}/")
    }
    assert set(records) == {"requested.json", "completed.json"}
    assert all(patient not in json.dumps(r) for r in records.values())
    assert records["completed.json"]["pseudonym_sha256"] == hashlib.sha256(patient.encode()).hexdigest()
    assert records["completed.json"]["raw"]["lines_removed"] == 4  # burst record, second visit, reading, quarantine
    version_id = s3.list_object_versions(Bucket=audit, Prefix=f"audit/erasure/{request_id}/completed.json")["Versions"][
        0
    ]["VersionId"]
    with pytest.raises(ClientError):
        s3.delete_object(Bucket=audit, Key=f"audit/erasure/{request_id}/completed.json", VersionId=version_id)
    status = cloud.invoke("IngestApiFunction", api_request("GET", f"/erasure-requests/{request_id}"))
    assert status["statusCode"] == 200 and json.loads(status["body"])["status"] == "completed"
