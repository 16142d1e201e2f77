"""Every function has sample events in events/<function folder>/, usable with `sam local invoke -e`,
and each of them runs through the real handler on the local cloud.

A sample may need something in the account first, as it would find it in a deployed stack (the Glue
job's outputs in the curated bucket, a patient's objects in the raw zone, another sample run first):
its expectation's `setup` puts it there. Bucket names inside the samples are placeholders: the
handlers reach their buckets through their environment (template.yaml), and the URIs a sample
carries (a run's version_uri, glue_arguments...) are informational.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from dxops.adapters.dynamodb import DynamoDbDeviceBindings
from dxops.domain.erasure import pseudonym_digest
from dxops.schemas.clinical import ClinicalRecord, PseudonymisedRecord
from dxops.schemas.datasets import DatasetManifest
from dxops.schemas.device import DeviceBinding, PseudonymisedReading
from localcloud.cloud import LocalCloud
from localcloud.template import load_template
from tests.integration.raw_zone import stored_lines
from tests.records import clinical_record

EVENTS = Path(__file__).resolve().parents[2] / "events"
FUNCTIONS = {logical: source.code_dir.name for logical, source in load_template().functions.items()}
BY_FOLDER = {folder: logical for logical, folder in FUNCTIONS.items()}
SAMPLES = [
    (logical, path) for logical, folder in FUNCTIONS.items() for path in sorted((EVENTS / folder).glob("*.json"))
]

Event = dict[str, Any]
Setup = Callable[[LocalCloud, Event], None]
Check = Callable[[LocalCloud, Event, Any], None]


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_every_function_has_sample_events(logical_id: str) -> None:
    assert list((EVENTS / FUNCTIONS[logical_id]).glob("*.json")), f"events/{FUNCTIONS[logical_id]}/ has no sample"


@dataclass(frozen=True)
class Expect:
    """What a sample must produce."""

    status: int | None = None  # HTTP status code (API samples)
    raw: int = 0  # NDJSON lines left in the raw zone (raw/) ...
    quarantined: int = 0  # ... and in its quarantine (quarantine/)
    check: Check | None = None  # assertions on the response and the side effects
    setup: Setup | None = None  # what the sample needs in the account first


def load(relative: str) -> Event:
    event: Event = json.loads((EVENTS / relative).read_text())
    return event


def run_sample(cloud: LocalCloud, relative: str) -> Any:
    """A sample through its function, after its own setup."""
    event = load(relative)
    setup = EXPECTED[relative].setup
    if setup is not None:
        setup(cloud, event)
    return cloud.invoke(BY_FOLDER[relative.partition("/")[0]], event)


def after(relative: str) -> Setup:
    """Setup: another sample runs first (as it would against a deployed stack)."""

    def setup(cloud: LocalCloud, _: Event) -> None:
        run_sample(cloud, relative)

    return setup


def body(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def bucket_keys(cloud: LocalCloud, output: str, prefix: str = "") -> list[str]:
    listing = boto3.client("s3").list_objects_v2(Bucket=cloud.outputs[output], Prefix=prefix)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def read_json(cloud: LocalCloud, output: str, key: str) -> Any:
    return json.loads(boto3.client("s3").get_object(Bucket=cloud.outputs[output], Key=key)["Body"].read())


def executions(cloud: LocalCloud, state_machine: str) -> list[Any]:
    arn = cloud.outputs[state_machine]
    return list(boto3.client("stepfunctions").list_executions(stateMachineArn=arn)["executions"])


def catalog_table(cloud: LocalCloud) -> Any:
    glue = boto3.client("glue")
    database, table = cloud.outputs["CatalogDatabaseName"], cloud.outputs["CuratedTableName"]
    return glue.get_table(DatabaseName=database, Name=table)["Table"]


# --- Prerequisites: what the Glue jobs and earlier requests leave in the account ------------------

CONTENT_HASH = "sha256:" + hashlib.sha256(b"dxops sample: curated content").hexdigest()
TABLE_PARTS = ("source=site-a", "source=site-b")
PUBLISH = "publish_dataset_version/publish_version.json"


def published_version() -> str:
    """The dataset version the publish sample publishes (the complete_erasure sample erases from it)."""
    version: str = load(PUBLISH)["run"]["dataset_version"]
    return version


def manifest_key(version: str) -> str:
    return f"datasets/{version}/manifest.json"


def glue_outputs(version: str, *, status: str = "pass", content_hash: str = CONTENT_HASH) -> dict[str, Any]:
    """What the Glue ETL job writes for a run (glue/dxops_etl/pipeline.py), by key of the curated
    bucket: JSON documents, or bytes for data files (nothing here reads the Parquet)."""
    failed = ["age_range"] if status == "fail" else []
    rules = [
        {"id": "record_id_unique", "level": "error", "status": "pass"},
        {"id": "age_range", "level": "error", "status": "fail" if failed else "pass"},
        {"id": "label_known", "level": "error", "status": "skipped"},
        {"id": "row_count_change", "level": "error", "status": "pass"},
    ]
    summary = {
        "dataset_version": version,
        "schema_version": "1.0",
        "content_hash": content_hash,
        "dq_status": status,
        "dq_failed_rules": failed,
        "rows": {
            "clinical_lines_in": 45,
            "clinical_quarantined": 2,
            "clinical_duplicates": 3,
            "curated": 40,
            "readings_quarantined": 0,
            "dq_failing_rows": len(failed),
        },
        "class_counts": {"ICD10:J45": 25, "ORPHA:558": 10},
        "label_status_counts": {"confirmed": 35, "unlabelled": 5},
        "columns": {"phenotypes": ["HP:0001250", "HP:0001263"], "labs": ["lab_2345_7"]},
        "table_schema": [
            {"name": "record_id", "type": "string"},
            {"name": "patient_pseudonym", "type": "string"},
            {"name": "age_years", "type": "double"},
            {"name": "label", "type": "string"},
        ],
        "source_objects": 2,
        "parameters": {"ruleset": "curated v1"},
    }
    root, quarantine = f"datasets/{version}/", f"quarantine/{version}/"
    return {
        root + "run_summary.json": summary,
        root + "dq_report.json": {"ruleset": "curated", "status": status, "rules": rules, "failed_rules": failed},
        root + "sources.json": [{"kind": "clinical", "uri": "s3://raw/raw/clinical/part.ndjson", "lines": 45}],
        **{f"{root}table/{part}/part-00000.snappy.parquet": b"PAR1" for part in TABLE_PARTS},
        f"{quarantine}lines/kind=clinical/part-00000.json": b'{"reason": "malformed_json"}\n',
    }


def put_glue_outputs(cloud: LocalCloud, version: str, **options: Any) -> None:
    s3, bucket = boto3.client("s3"), cloud.outputs["CuratedBucketName"]
    for key, document in glue_outputs(version, **options).items():
        data = document if isinstance(document, bytes) else json.dumps(document).encode()
        s3.put_object(Bucket=bucket, Key=key, Body=data)


def run_outputs(cloud: LocalCloud, event: Event) -> None:
    """Setup of the steps after the Glue job: its outputs for the sample's run (matching the
    sample's quality verdict, if it has one)."""
    quality = event.get("quality", {})
    status, content_hash = quality.get("status", "pass"), quality.get("content_hash", CONTENT_HASH)
    put_glue_outputs(cloud, event["run"]["dataset_version"], status=status, content_hash=content_hash)


OTHER_PATIENT = "PAT-0002"


def patient_raw_objects(cloud: LocalCloud, event: Event) -> None:
    """The raw objects listed by the erase_raw_objects sample, each holding one line of the erased
    patient (by pseudonym) and, in the raw zone, one line of another patient."""
    pseudonym = event.get("patient_pseudonym") or event["erasure"]["patient_pseudonym"]
    other = hashlib.sha256(OTHER_PATIENT.encode()).hexdigest()  # a synthetic pseudonym
    at = dt.datetime(2026, 11, 20, 9, 30, tzinfo=dt.UTC)
    s3, bucket = boto3.client("s3"), cloud.outputs["RawBucketName"]
    for key in load("erase_raw_objects/raw_erasure_batch.json")["keys"]:
        if key.startswith("raw/clinical/"):
            lines = [clinical_line(i, p, at) for i, p in enumerate((pseudonym, other))]
        elif key.startswith("raw/device/"):
            devices = (("monitor-0001", pseudonym), ("monitor-0007", other))
            lines = [reading_line(device, p, at) for device, p in devices]
        else:  # a quarantined record: the quarantine keeps its pseudonym
            lines = [quarantined_line(pseudonym, at)]
        s3.put_object(Bucket=bucket, Key=key, Body="".join(line + "\n" for line in lines).encode())


def clinical_line(index: int, pseudonym: str, at: dt.datetime) -> str:
    record = ClinicalRecord.model_validate(clinical_record(index, patient_id=f"PAT-{index + 1:04d}"))
    return PseudonymisedRecord.from_record(
        record, pseudonym=pseudonym, key_id="k-sample", ingested_at=at, schema_version="1.0"
    ).model_dump_json()


def reading_line(device: str, pseudonym: str, at: dt.datetime) -> str:
    return PseudonymisedReading(
        reading_id=f"{device}:{int(at.timestamp() * 1000)}",
        device_id=device,
        source="site-a",
        patient_pseudonym=pseudonym,
        pseudonym_key_id="k-sample",
        timestamp=at,
        received_at=at,
        ingested_at=at,
        measurements=[{"name": "heart_rate", "value": 72, "unit": "/min"}],
        schema_version="1.0",
    ).model_dump_json()


def quarantined_line(pseudonym: str, at: dt.datetime) -> str:
    error = {"path": "labs[0].value", "message": "value is not a number", "type": "float_parsing"}
    item = {"record_id": "rec-00009", "source": "site-a", "patient_pseudonym": pseudonym}
    line = {"index": 0, "item_id": "rec-00009", "errors": [error], "item": item, "received_at": at.isoformat()}
    return json.dumps(line)


def patient_data_and_binding(cloud: LocalCloud, event: Event) -> None:
    """Setup of begin_erasure: the patient's raw objects, and a device bound to the patient."""
    patient_raw_objects(cloud, event)
    bindings = DynamoDbDeviceBindings(cloud.physical_id("DeviceBindingsTable"))
    binding = DeviceBinding(
        device_id="monitor-0001",
        source="site-a",
        patient_pseudonym=event["patient_pseudonym"],
        pseudonym_key_id="k-sample",
        bound_at=dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC),
    )
    bindings.put(binding)


# What the erase_raw_objects steps recorded for the complete_erasure sample's request (one batch).
RAW_RESULT = {"objects_scanned": 3, "objects_rewritten": 3, "lines_removed": 3, "versions_purged": 3}


def erased_from_a_published_version(cloud: LocalCloud, event: Event) -> None:
    """Setup of complete_erasure: a published version, and what the earlier steps left for the
    request: the Glue erasure job's result (one row removed from that version's table)."""
    run_sample(cloud, PUBLISH)
    version, bucket = published_version(), cloud.outputs["CuratedBucketName"]
    request_id = event["erasure"]["request_id"]
    change = {
        "path": f"s3://{bucket}/datasets/{version}/table/",
        "dataset_version": version,
        "kind": "table",
        "rows_removed": 1,
        "rows_after": 39,
        "content_hash": "sha256:" + hashlib.sha256(b"dxops sample: after the erasure").hexdigest(),
    }
    s3, prefix = boto3.client("s3"), f"erasure-requests/{request_id}/"
    s3.put_object(Bucket=bucket, Key=prefix + "request.json", Body=json.dumps(event["erasure"]).encode())
    s3.put_object(Bucket=bucket, Key=prefix + "raw-batches.json", Body=b'[{"keys": []}]')
    s3.put_object(Bucket=bucket, Key=prefix + "raw-results/000000.json", Body=json.dumps(RAW_RESULT).encode())
    s3.put_object(Bucket=bucket, Key=prefix + "result.json", Body=json.dumps([change]).encode())


# --- Checks ---------------------------------------------------------------------------------------


def no_batch_item_failures(cloud: LocalCloud, event: Event, response: Any) -> None:
    assert response == {"batchItemFailures": []}


def one_processing_run_started(cloud: LocalCloud, event: Event, response: Any) -> None:
    assert response == {"batchItemFailures": []}
    runs = executions(cloud, "DataProcessingStateMachineArn")
    assert len(runs) == 1, runs  # two raw objects, one trigger window: one run
    assert re.fullmatch(r"raw-\d{8}T\d{6}Z", runs[0]["name"])
    described = boto3.client("stepfunctions").describe_execution(executionArn=runs[0]["executionArn"])
    assert json.loads(described["input"])["trigger"] == "raw-objects"
    table = boto3.client("dynamodb").scan(TableName=cloud.outputs["IdempotencyTableName"])["Items"]
    claims = [item for item in table if item["id"]["S"].startswith("dataset-trigger-claim")]
    assert len(claims) == 2  # the raw objects; the quarantine object is no raw data: ignored
    # SQS delivers the same batch again: the objects are claimed already, nothing new starts.
    assert cloud.invoke("DatasetTriggerFunction", event) == {"batchItemFailures": []}
    assert len(executions(cloud, "DataProcessingStateMachineArn")) == 1


def run_prepared(cloud: LocalCloud, event: Event, response: Any) -> None:
    version = response["dataset_version"]
    assert re.fullmatch(r"v20261127T130310Z-[0-9a-f]{8}", version)  # the execution's start time
    assert version == published_version()  # the run that the evaluate and publish samples carry
    curated, raw = cloud.outputs["CuratedBucketName"], cloud.outputs["RawBucketName"]
    assert response["glue_arguments"] == {
        "--raw_path": f"s3://{raw}/raw/",
        "--output_path": f"s3://{curated}/datasets/{version}/",
        "--quarantine_path": f"s3://{curated}/quarantine/{version}/",
        "--dataset_version": version,
        "--run_time": "2026-11-27T13:03:10.482000+00:00",
    }
    assert response["trigger"] == event["trigger"]
    assert response["previous"] is None  # nothing published yet


def quality_passed(cloud: LocalCloud, event: Event, response: Any) -> None:
    assert (response["status"], response["unchanged"], response["failed_rules"]) == ("pass", False, [])
    assert response["content_hash"] == CONTENT_HASH
    assert response["rows"]["curated"] == 40 and response["class_counts"] == {"ICD10:J45": 25, "ORPHA:558": 10}
    # The sample's quality verdict (publish, withdraw) is what this step returns for such outputs.
    assert response == load(PUBLISH)["quality"]


def version_published(cloud: LocalCloud, event: Event, response: Any) -> None:
    version, bucket = event["run"]["dataset_version"], cloud.outputs["CuratedBucketName"]
    assert response == {
        "dataset_version": version,
        "manifest_uri": f"s3://{bucket}/datasets/{version}/manifest.json",
        "table_uri": f"s3://{bucket}/datasets/{version}/table/",
        "content_hash": CONTENT_HASH,
        "rows": 40,
        "labelled_rows": 35,
        "classes": 2,
        "previous_version": None,
    }
    manifest = DatasetManifest.model_validate(read_json(cloud, "CuratedBucketName", manifest_key(version)))
    assert manifest.partitions == list(TABLE_PARTS)
    pipeline = {"execution": event["run"]["execution"], "glue_job_run_id": event["glue_job_run_id"]}
    assert manifest.pipeline == {**pipeline, "trigger": "raw-objects"}
    table = catalog_table(cloud)
    assert table["Parameters"]["dataset_version"] == version
    assert table["StorageDescriptor"]["Location"] == response["table_uri"]


def failed_run_quarantined(cloud: LocalCloud, event: Event, response: Any) -> None:
    version, bucket = event["run"]["dataset_version"], cloud.outputs["CuratedBucketName"]
    kept = [f"quarantine/{version}/dq_report.json", f"quarantine/{version}/run_summary.json"]
    assert response == {
        "dataset_version": version,
        "reason": "quality-failed",
        "kept": [f"s3://{bucket}/{key}" for key in kept],
        "objects_removed": len([k for k in glue_outputs(version) if k.startswith("datasets/")]),
        "failed_rules": ["age_range"],
    }
    assert bucket_keys(cloud, "CuratedBucketName", f"datasets/{version}/") == []
    assert bucket_keys(cloud, "CuratedBucketName", f"quarantine/{version}/") == sorted(
        [*kept, f"quarantine/{version}/lines/kind=clinical/part-00000.json"]
    )


def unchanged_run_discarded(cloud: LocalCloud, event: Event, response: Any) -> None:
    version = event["run"]["dataset_version"]
    assert (response["reason"], response["kept"]) == ("unchanged", [])
    assert response["objects_removed"] == len(glue_outputs(version))  # its version and quarantine folders
    assert bucket_keys(cloud, "CuratedBucketName") == []


def erasure_begun(cloud: LocalCloud, event: Event, response: Any) -> None:
    request_id, pseudonym = event["request_id"], event["patient_pseudonym"]
    batches = f"erasure-requests/{request_id}/raw-batches.json"
    keys = load("erase_raw_objects/raw_erasure_batch.json")["keys"]
    assert response == {"device_bindings_removed": 1, "raw_objects": len(keys), "raw_batches_key": batches}
    assert read_json(cloud, "CuratedBucketName", batches) == [{"keys": sorted(keys)}]
    request = read_json(cloud, "CuratedBucketName", f"erasure-requests/{request_id}/request.json")
    assert request == {"patient_pseudonym": pseudonym}  # for the Glue erasure job
    audit = read_json(cloud, "AuditBucketName", f"audit/erasure/{request_id}/requested.json")
    assert audit["pseudonym_sha256"] == pseudonym_digest(pseudonym) and pseudonym not in json.dumps(audit)
    table = boto3.client("dynamodb").scan(TableName=cloud.physical_id("DeviceBindingsTable"))["Items"]
    assert table == []


def patient_lines_erased(cloud: LocalCloud, event: Event, response: Any) -> None:
    keys = event["keys"]
    assert response == {"batch": event["batch"]}  # the result goes to S3, not into the Map's state
    request_id = event["erasure"]["request_id"]
    result_key = f"erasure-requests/{request_id}/raw-results/{event['batch']:06d}.json"
    assert read_json(cloud, "CuratedBucketName", result_key) == {
        "objects_scanned": len(keys),
        "objects_rewritten": len(keys),
        "lines_removed": len(keys),  # one line of the patient in each
        "versions_purged": len(keys),  # the versions written before the erasure
    }
    pseudonym = event["erasure"]["patient_pseudonym"]
    s3, bucket = boto3.client("s3"), cloud.outputs["RawBucketName"]
    versions = s3.list_object_versions(Bucket=bucket)["Versions"]
    # One current version per object; the quarantined object held only the patient's line: gone.
    assert sorted(v["Key"] for v in versions) == sorted(k for k in keys if not k.startswith("quarantine/"))
    for version in versions:
        body = s3.get_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])["Body"].read()
        assert pseudonym.encode() not in body


def erasure_completed(cloud: LocalCloud, event: Event, response: Any) -> None:
    erasure, version = event["erasure"], published_version()
    request_id = erasure["request_id"]
    assert (response["request_id"], response["status"]) == (request_id, "completed")
    assert response["pseudonym_sha256"] == pseudonym_digest(erasure["patient_pseudonym"])
    assert response["raw"] == RAW_RESULT
    assert (response["versions_amended"], response["device_bindings_removed"]) == ([version], 1)
    manifest = read_json(cloud, "CuratedBucketName", manifest_key(version))
    assert manifest["rows"]["curated"] == 39
    assert [(e["request_id"], e["rows_removed"]) for e in manifest["erasures"]] == [(request_id, 1)]
    assert catalog_table(cloud)["Parameters"]["row_count"] == "39"
    assert bucket_keys(cloud, "CuratedBucketName", "erasure-requests/") == []  # the pseudonym is gone
    assert read_json(cloud, "AuditBucketName", f"audit/erasure/{request_id}/completed.json") == response


def erasure_accepted(cloud: LocalCloud, event: Event, response: Any) -> None:
    accepted = body(response)
    assert re.fullmatch(r"er-[0-9a-f]{32}", accepted["request_id"]) and accepted["status"] == "accepted"
    request_id = accepted["request_id"]
    assert bucket_keys(cloud, "AuditBucketName") == [f"audit/erasure/{request_id}/requested.json"]
    # The erasure runs on (its state machine); the local cloud stops it when the test ends.
    assert [e["name"] for e in executions(cloud, "ErasureStateMachineArn")] == [request_id]


def erasure_status_completed(cloud: LocalCloud, event: Event, response: Any) -> None:
    status = body(response)
    assert (status["request_id"], status["status"]) == (event["pathParameters"]["request_id"], "completed")
    assert (status["raw_lines_removed"], status["curated_rows_removed"]) == (RAW_RESULT["lines_removed"], 1)
    assert status["versions_amended"] == [published_version()]


# What each sample must produce, by path under events/.
EXPECTED = {
    "ingest_api/post_record.json": Expect(202, raw=1),
    "ingest_api/post_records_batch.json": Expect(202, raw=2, quarantined=1),
    "ingest_api/get_openapi.json": Expect(200),
    "ingest_api/put_device_binding.json": Expect(200),
    "ingest_api/delete_device_binding.json": Expect(204, setup=after("ingest_api/put_device_binding.json")),
    "ingest_api/post_erasure_request.json": Expect(202, check=erasure_accepted),
    # after the erasure of the complete_erasure sample (the erasure's own run is asynchronous)
    "ingest_api/get_erasure_request.json": Expect(
        200, check=erasure_status_completed, setup=after("complete_erasure/complete_erasure.json")
    ),
    # monitor-0001 (bound first): two readings stored, one message out of range; thermo-0002 unbound
    "ingest_device/sqs_readings.json": Expect(
        raw=2, quarantined=2, check=no_batch_item_failures, setup=after("ingest_api/put_device_binding.json")
    ),
    # two raw objects of one trigger window start one run; a quarantine object (misrouted: the
    # EventBridge rule only routes raw/clinical/ and raw/device/) is ignored
    "dataset_trigger/sqs_raw_objects_created.json": Expect(check=one_processing_run_started),
    "prepare_dataset_run/raw_objects_window.json": Expect(check=run_prepared),
    "evaluate_dataset_quality/evaluate_run.json": Expect(check=quality_passed, setup=run_outputs),
    "publish_dataset_version/publish_version.json": Expect(check=version_published, setup=run_outputs),
    "withdraw_dataset_run/withdraw_failed_run.json": Expect(check=failed_run_quarantined, setup=run_outputs),
    "withdraw_dataset_run/withdraw_unchanged_run.json": Expect(check=unchanged_run_discarded, setup=run_outputs),
    # the patient's raw objects are listed, the device bound to the patient unbound
    "begin_erasure/erasure_input.json": Expect(
        raw=4, quarantined=1, check=erasure_begun, setup=patient_data_and_binding
    ),
    # one line of the patient removed from each object (two raw, one quarantined)
    "erase_raw_objects/raw_erasure_batch.json": Expect(raw=2, check=patient_lines_erased, setup=patient_raw_objects),
    "complete_erasure/complete_erasure.json": Expect(check=erasure_completed, setup=erased_from_a_published_version),
}


def test_every_sample_has_an_expectation() -> None:
    assert {f"{path.parent.name}/{path.name}" for _, path in SAMPLES} == set(EXPECTED)


@pytest.mark.parametrize(("logical_id", "path"), SAMPLES, ids=[f"{f}:{p.name}" for f, p in SAMPLES])
def test_sample_event_runs_through_the_handler(cloud: LocalCloud, logical_id: str, path: Path) -> None:
    expect = EXPECTED[f"{path.parent.name}/{path.name}"]
    event = json.loads(path.read_text())
    if expect.setup is not None:
        expect.setup(cloud, event)
    response = cloud.invoke(logical_id, event)
    if expect.status is not None:
        assert response["statusCode"] == expect.status, response["body"][:500]
    if expect.check is not None:
        expect.check(cloud, event, response)
    assert (len(stored_lines(cloud, "raw/")), len(stored_lines(cloud, "quarantine/"))) == (
        expect.raw,
        expect.quarantined,
    )
