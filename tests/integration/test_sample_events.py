"""Every function has sample events in events/<function folder>/, usable with `sam local invoke -e`,
and each of them runs through the real handler on the local cloud.

A sample may need something in the account first, as it would find it in a deployed stack (the Glue
job's outputs in the curated bucket, a patient's objects in the raw zone, a registered model version,
another sample run first): its expectation's `setup` puts it there. Bucket names inside the samples
are placeholders: the handlers reach their buckets through their environment (template.yaml), and
the URIs a sample carries (a run's version_uri, glue_arguments...) are informational. One exception:
the training plan's comparison_uri, where ConcludeTrainingRun reads the comparison job's verdict; its
setup writes comparison.json there, under the placeholder bucket.

The model lifecycle's step samples are what the state machines pass each other (statemachines/
training.asl.json, deployment.asl.json), with placeholders for the stack's names: the training plan in
the conclude sample is what PrepareTrainingRun plans for its sample, the outcome in the approval
samples is what ConcludeTrainingRun answers for its sample, and the deployment plan in the verify
sample is what PrepareDeployment plans for its sample (their checks keep them so). Model version 1,
the account's first, runs through all of them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from dxops.adapters.dynamodb import DynamoDbDeviceBindings
from dxops.adapters.model_versions import DynamoDbModelVersions
from dxops.adapters.training_triggers import DynamoDbTrainingTriggers
from dxops.domain.deployments import deployment_run_name
from dxops.domain.erasure import pseudonym_digest
from dxops.schemas.clinical import ClinicalRecord, PseudonymisedRecord
from dxops.schemas.datasets import DatasetManifest, PreviousVersion
from dxops.schemas.device import DeviceBinding, PseudonymisedReading
from dxops.schemas.models import ApprovalRecord, ChampionRecord, ModelVersionRecord
from dxops.schemas.training_triggers import TriggerRecord
from localcloud import events
from localcloud.cloud import LocalCloud
from localcloud.runtime import FunctionError
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
    error: str | None = None  # the handler fails with this error (its Lambda errorType); check gets it


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


INBOX_FILE = [
    Path(__file__).resolve().parents[2] / "examples" / "phenopackets" / name
    for name in ("marfan_full.json", "orpha_disease.json", "dob_only_no_sex.json", "invalid_no_subject_id.json")
]


def inbox_file_uploaded(cloud: LocalCloud, event: Event) -> None:
    """The file the sample's S3 event announces, uploaded; the sample's version id is a placeholder
    for the one the upload gets (a new version each time)."""
    message = json.loads(event["Records"][0]["body"])
    lines = "\n".join(json.dumps(json.loads(path.read_text())) for path in INBOX_FILE)
    put = boto3.client("s3").put_object(
        Bucket=cloud.outputs["RawBucketName"], Key=message["detail"]["object"]["key"], Body=lines.encode()
    )
    message["detail"]["object"]["version-id"] = put["VersionId"]
    event["Records"][0]["body"] = json.dumps(message)


def inbox_file_ingested(cloud: LocalCloud, event: Event, response: Any) -> None:
    assert response == {"batchItemFailures": []}
    key = json.loads(event["Records"][0]["body"])["detail"]["object"]["key"]
    # The file is gone (it held identifiers in clear); its report says what became of it, without
    # the file's name (a name may be a patient's).
    assert bucket_keys(cloud, "RawBucketName", "inbox/") == []
    [report_key] = bucket_keys(cloud, "RawBucketName", "reports/inbox/")
    report = read_json(cloud, "RawBucketName", report_key)
    assert (report["documents"], report["accepted"], report["rejected"]) == (4, 3, 1)
    assert report_key.endswith(f"/{report['report_id']}.json") and key not in json.dumps(report)


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


# --- Model lifecycle: what training, review and deployment leave in the account ------------------

GROUP = "dxops-dev-diagnosis"
REVIEWER = "arn:aws:sts::123456789012:assumed-role/ml-reviewer/dr-lee"  # the models API samples' caller
CODE_POINTER = "training/code/current.json"  # the training code, published at deploy
PREPARE_TRAINING = "prepare_training_run/dataset_ready_run.json"
PREPARE_MONITORING = "prepare_monitoring_run/monitoring_run.json"
PUBLISH_MONITORING = "publish_monitoring_results/drifted_window.json"
CONCLUDE = "conclude_training_run/candidate_registered.json"
AWAIT_REVIEW = "request_approval/await_review.json"
REVIEW_EXPIRED = "request_approval/review_expired.json"
PREPARE_DEPLOYMENT = "prepare_deployment/approved_version.json"
VERIFY = "verify_deployment/smoke_test.json"
DATASET_READY = "start_training/dataset_ready.json"
# What the lifecycle samples write for the stack's names, by the name's output (or setting).
PLACEHOLDERS = {
    "CuratedBucketName": "dxops-dev-curatedbucket-6f5e4d3c2b1a",
    "MonitoringBucketName": "dxops-dev-monitoringbucket-5e4d3c2b1a6f",
    "ArtifactsBucketName": "dxops-dev-artifactsbucket-3c2b1a6f5e4d",
    "DataKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/0f1e2d3c-4b5a-4697-8877-665544332211",
    "code_version": hashlib.sha256(b"dxops sample: training code").hexdigest(),
    "TRAINING_IMAGE_URI": "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:3.0-5",
}
# The samples' dataset version (DatasetReady sample): twelve labelled classes, 1,100 labelled rows.
CLASS_COUNTS = {
    "ICD10:J45": 240,
    "ICD10:E11": 180,
    "ICD10:I10": 160,
    "ICD10:G40": 120,
    "ICD10:K50": 90,
    "ICD10:M32": 70,
    "ORPHA:558": 60,
    "ORPHA:586": 50,
    "ORPHA:33069": 45,
    "ORPHA:508": 35,
    "ORPHA:79445": 30,
    "ORPHA:98896": 20,
}


@dataclass(frozen=True)
class SampleVersion:
    """A model version of the samples' account, and the training run that made it."""

    package_version: int
    model_version: str  # <code>-<data fingerprint>-<settings> (ml/train.py)
    dataset_version: str
    run_name: str
    training_job: str
    metrics: dict[str, float | None]


METRICS_V1 = {"macro_f1": 0.812, "rare_recall": 0.733, "ece": 0.041, "accuracy": 0.864, "top3_accuracy": 0.957}


def sample_version(package_version: int) -> SampleVersion:
    """Version 1: the conclude sample's candidate (the account's first model). Version 2: a later one."""
    if package_version == 1:
        plan = load(CONCLUDE)["plan"]
        return SampleVersion(
            package_version=1,
            model_version="4c1d9e2f7a3b5c6d-8e3f0b1a2c4d-9e8d7c6b",
            dataset_version=plan["dataset"]["dataset_version"],
            run_name=plan["run_name"],
            training_job=plan["training_job"]["TrainingJobName"],
            metrics=METRICS_V1,
        )
    return SampleVersion(
        package_version=2,
        model_version="4c1d9e2f7a3b5c6d-2f4a6c8e0b1d-9e8d7c6b",
        dataset_version="v20261204T094500Z-1b2c3d4e",
        run_name="dataset-v20261204T094500Z-1b2c3d4e",
        training_job="dxops-dev-20261204100002-5e1c07a2",
        metrics={**METRICS_V1, "macro_f1": 0.826, "rare_recall": 0.751},
    )


def code_version(cloud: LocalCloud) -> str:
    return str(read_json(cloud, "ArtifactsBucketName", CODE_POINTER)["sha256"])


def training_image(cloud: LocalCloud) -> str:
    return cloud.functions["PrepareTrainingRunFunction"].environment["TRAINING_IMAGE_URI"]


def as_sample(cloud: LocalCloud, document: Any) -> Any:
    """A document of this stack as the samples write it: the stack's names as placeholders."""
    names = {"code_version": code_version(cloud), "TRAINING_IMAGE_URI": training_image(cloud)}
    text = json.dumps(document)
    for name, placeholder in PLACEHOLDERS.items():
        text = text.replace(names.get(name) or cloud.outputs[name], placeholder)
    return json.loads(text)


def model_versions(cloud: LocalCloud) -> DynamoDbModelVersions:
    return DynamoDbModelVersions(cloud.outputs["ModelVersionsTableName"])


def version_item(cloud: LocalCloud, package_version: int) -> dict[str, Any]:
    table, key = cloud.outputs["ModelVersionsTableName"], {"pk": {"S": f"version#{package_version}"}}
    return dict(boto3.client("dynamodb").get_item(TableName=table, Key=key)["Item"])


def model_package(package_version: int) -> dict[str, Any]:
    sagemaker = boto3.client("sagemaker")
    listed = sagemaker.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]
    arn = next(p["ModelPackageArn"] for p in listed if p["ModelPackageVersion"] == package_version)
    return dict(sagemaker.describe_model_package(ModelPackageName=arn))


def started_input(cloud: LocalCloud, state_machine: str, name: str) -> Any:
    """The input of the one execution of a state machine, which must have this name."""
    (execution,) = executions(cloud, state_machine)
    assert execution["name"] == name
    described = boto3.client("stepfunctions").describe_execution(executionArn=execution["executionArn"])
    return json.loads(described["input"])


@contextmanager
def registry_events_paused(cloud: LocalCloud) -> Iterator[None]:
    """What a setup registers is the stack's past: the deployment trigger saw its registry events
    long ago (the setup records what the trigger kept of them), so they are not delivered again."""
    client = boto3.client("events")
    target = cloud.functions["DeploymentTriggerFunction"].arn
    rules = client.list_rule_names_by_target(TargetArn=target)["RuleNames"]
    assert rules, "no rule routes the registry's events to DeploymentTriggerFunction"
    for rule in rules:
        client.disable_rule(Name=rule)
    try:
        yield
    finally:
        for rule in rules:
            client.enable_rule(Name=rule)


def register(cloud: LocalCloud, version: SampleVersion, status: str) -> str:
    """The version's model package, as ConcludeTrainingRun registers one (and a reviewer approves
    it), and its item in the model versions table."""
    artifacts, code = cloud.outputs["ArtifactsBucketName"], code_version(cloud)
    evidence_uri = f"s3://{artifacts}/training/runs/{version.training_job}/evidence.json"
    model_data_url = f"s3://{artifacts}/training/models/{version.training_job}/output/model.tar.gz"
    container = {
        "Image": training_image(cloud),
        "ModelDataUrl": model_data_url,
        "Environment": {
            "SAGEMAKER_PROGRAM": "dxops_inference.py",
            "SAGEMAKER_SUBMIT_DIRECTORY": f"s3://{artifacts}/training/code/{code}/sourcedir.tar.gz",
        },
    }
    registered_at = dt.datetime(2026, 11, 27, 10, 21, 7, tzinfo=dt.UTC) + dt.timedelta(
        days=7 * (version.package_version - 1)
    )
    with registry_events_paused(cloud):
        arn = boto3.client("sagemaker").create_model_package(
            ModelPackageGroupName=GROUP,
            ModelPackageDescription=f"{version.model_version} trained on {version.dataset_version} (dataset-ready)",
            ModelApprovalStatus=status,
            InferenceSpecification={
                "Containers": [container],
                "SupportedContentTypes": ["application/json", "application/jsonlines"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            CustomerMetadataProperties={
                "dataset_version": version.dataset_version,
                "training_job": version.training_job,
                "run_name": version.run_name,
                "model_version": version.model_version,
                "code_version": code,
                "reason": "dataset-ready",
                "evidence_uri": evidence_uri,
            },
        )["ModelPackageArn"]
    assert arn.endswith(f"/{GROUP}/{version.package_version}"), arn  # a group's versions count from 1
    approval = None
    if status == "Approved":
        approval = ApprovalRecord(
            package_version=version.package_version,
            status="Approved",
            decided_by=REVIEWER,
            decided_via="api",
            rationale="Macro-F1 and rare-disease recall above the floors; reviewed the per-site recall.",
            decided_at=registered_at + dt.timedelta(hours=3),
        )
    record = ModelVersionRecord(
        package_version=version.package_version,
        package_arn=arn,
        model_version=version.model_version,
        run_name=version.run_name,
        training_job=version.training_job,
        dataset_version=version.dataset_version,
        model_data_url=model_data_url,
        registered_at=registered_at,
        metrics=version.metrics,
        evidence_uri=evidence_uri,
        approval_status=status,  # type: ignore[arg-type]
        approval=approval,
    )
    model_versions(cloud).put_version(record)
    return str(arn)


def serving(cloud: LocalCloud, version: SampleVersion, *, previous: list[int]) -> None:
    """The version is the champion (VerifyDeployment crowned it); the ones before it retired."""
    versions = model_versions(cloud)
    for earlier in previous:
        versions.set_deployment_status(earlier, "retired")
    versions.set_deployment_status(version.package_version, "serving")
    package = model_package(version.package_version)
    suffix = hashlib.sha256(version.run_name.encode()).hexdigest()[:8]
    versions.set_champion(
        ChampionRecord(
            package_version=version.package_version,
            package_arn=package["ModelPackageArn"],
            model_version=version.model_version,
            model_data_url=package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"],
            endpoint_config=f"dxops-dev-config-v{version.package_version}-{suffix}",
            since=dt.datetime(2026, 11, 27, 14, 2, 51, tzinfo=dt.UTC)
            + dt.timedelta(days=7 * (version.package_version - 1)),
            previous=previous,
        )
    )


def dataset_published(cloud: LocalCloud, event: Event) -> None:
    """Setup of prepare_training_run: the dataset version the DatasetReady sample announces,
    published (its manifest and the published pointer). The training code was published at deploy."""
    detail = load(DATASET_READY)["detail"]
    version, bucket = detail["dataset_version"], cloud.outputs["CuratedBucketName"]
    prefix = f"s3://{bucket}/datasets/{version}/"
    manifest = DatasetManifest(
        dataset_version=version,
        created_at=dt.datetime(2026, 11, 27, 9, 58, 42, tzinfo=dt.UTC),
        content_hash=detail["content_hash"],
        schema_version="1.0",
        table_uri=prefix + "table/",
        partition_keys=["source"],
        partitions=list(TABLE_PARTS),
        rows={"curated": detail["rows"]},
        class_counts=CLASS_COUNTS,
        label_status_counts={
            "confirmed": detail["labelled_rows"],
            "unlabelled": detail["rows"] - detail["labelled_rows"],
        },
        columns={"phenotypes": ["HP:0001250", "HP:0001263"], "labs": ["lab_2345_7"]},
        sources_uri=prefix + "sources.json",
        source_objects=14,
        dq_status="pass",
        dq_ruleset="curated v1",
        dq_report_uri=prefix + "dq_report.json",
        run_summary_uri=prefix + "run_summary.json",
        previous_version=None,
        pipeline={"execution": "raw-20261127T093000Z", "glue_job_run_id": "jr_0a1b2c3d", "trigger": "raw-objects"},
    )
    pointer = PreviousVersion(
        dataset_version=version,
        content_hash=detail["content_hash"],
        row_count=detail["rows"],
        manifest_uri=prefix + "manifest.json",
    )
    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key=manifest_key(version), Body=manifest.model_dump_json().encode())
    s3.put_object(Bucket=bucket, Key="datasets/published.json", Body=pointer.model_dump_json().encode())


def comparison(event: Event) -> dict[str, Any]:
    """What the comparison job (ml/compare.py) writes for the conclude sample's run: the account's
    first candidate (no champion), passing the floors."""
    plan, job = event["plan"], event["training_job"]
    version = sample_version(1)
    candidate = {
        "model_version": version.model_version,
        "dataset_version": plan["dataset"]["dataset_version"],
        "source": job["ModelArtifacts"]["S3ModelArtifacts"],
        **version.metrics,
        "intervals": {
            "macro_f1": {"low": 0.771, "high": 0.849},
            "accuracy": {"low": 0.829, "high": 0.896},
            "ece": {"low": 0.027, "high": 0.058},
        },
    }
    checks = [
        {
            "name": name,
            "candidate": version.metrics[name],
            "champion": None,
            "limit": 0.0,
            "tolerance": None,
            "passed": True,
        }
        for name in ("macro_f1", "rare_recall")
    ]
    groups = [
        {
            "group": group,
            "rows": rows,
            "candidate_recall": recall,
            "champion_recall": None,
            "judged": False,
            "passed": None,
            "status": "no champion",
        }
        for group, rows, recall in (
            ("disease=rare", 36, 0.733),
            ("disease=common", 184, 0.88),
            ("source=site-a", 131, 0.87),
            ("source=site-b", 89, 0.85),
        )
    ]
    return {
        "verdict": "pass",
        "reasons": [],
        "warnings": [],
        "clearly_better": False,
        "candidate": candidate,
        "champion": None,
        "checks": checks,
        "groups": groups,
        "macro_f1_difference": {"estimate": None, "low": None, "high": None},
        "rows": {"held_out": 220, "excluded_seen_by_champion": 0, "evaluated": 220},
        "dataset": {
            "dataset_version": plan["dataset"]["dataset_version"],
            "uri": plan["dataset"]["table_uri"],
            "rows": {"table": 1200, "labelled": 1100},
            "matches_candidate": True,
        },
        "tolerances": {"macro_f1": 0.01, "rare_recall": 0.02, "ece": 0.02, "group_recall": 0.05, "min_group_rows": 20},
        "leakage_checked": None,
        "seconds": 41.7,
    }


def comparison_written(cloud: LocalCloud, event: Event) -> None:
    """Setup of conclude_training_run: the comparison job's comparison.json at the plan's
    comparison_uri (its placeholder bucket, made here: see the module docstring)."""
    bucket, _, prefix = event["plan"]["comparison_uri"].removeprefix("s3://").partition("/")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": s3.meta.region_name})
    s3.put_object(Bucket=bucket, Key=prefix + "comparison.json", Body=json.dumps(comparison(event)).encode())


def version_registered(cloud: LocalCloud, _: Event) -> None:
    """Version 1 registered and pending review, as the conclude sample leaves it."""
    register(cloud, sample_version(1), "PendingManualApproval")


def version_approved(cloud: LocalCloud, _: Event) -> None:
    """Setup of deployment_trigger: version 1 approved by the reviewer; the trigger saw the version's
    registration (pending), not yet its approval."""
    register(cloud, sample_version(1), "Approved")
    model_versions(cloud).observe_status(1, "PendingManualApproval", "-")


def deployment_started(cloud: LocalCloud, event: Event) -> None:
    """Setup of prepare_deployment: version 1 approved, and the approval seen by the trigger, which
    started the sample's deployment run."""
    register(cloud, sample_version(1), "Approved")
    versions = model_versions(cloud)
    assert versions.observe_status(1, "Approved", event["run_name"]) == event["run_name"]
    versions.deployment_started(1, event["run_name"])


def models_in_service(cloud: LocalCloud, _: Event) -> None:
    """Version 1 approved and serving (the champion); version 2 registered, waiting for review."""
    register(cloud, sample_version(1), "Approved")
    register(cloud, sample_version(2), "PendingManualApproval")
    serving(cloud, sample_version(1), previous=[])


def newer_version_in_service(cloud: LocalCloud, _: Event) -> None:
    """Setup of post_rollback: version 2 serves; version 1, approved, served before it."""
    register(cloud, sample_version(1), "Approved")
    register(cloud, sample_version(2), "Approved")
    serving(cloud, sample_version(1), previous=[])
    serving(cloud, sample_version(2), previous=[1])


def chain(*setups: Setup) -> Setup:
    def setup(cloud: LocalCloud, event: Event) -> None:
        for each in setups:
            each(cloud, event)

    return setup


# --- Checks of the model lifecycle's samples ------------------------------------------------------


def header(response: dict[str, Any], name: str) -> str | None:
    for key, value in (response.get("headers") or {}).items():
        if key.lower() == name.lower():
            return str(value)
    for key, values in (response.get("multiValueHeaders") or {}).items():
        if key.lower() == name.lower():
            return str(values[0])
    return None


def model_unavailable(cloud: LocalCloud, event: Event, response: Any) -> None:
    """No model is deployed yet: 503 with Retry-After, and nothing was served or stored."""
    error = body(response)
    assert error["error"] == "model_unavailable" and error["request_id"] == event["requestContext"]["requestId"]
    assert header(response, "Retry-After") == "30"  # the function's RETRY_AFTER_SECONDS
    assert bucket_keys(cloud, "MonitoringBucketName") == []


def diagnoses_stored(cloud: LocalCloud, event: Event, response: Any) -> None:
    accepted, sent = body(response), json.loads(event["body"])["diagnoses"]
    batch = accepted["batch_id"]
    assert accepted == {"batch_id": batch, "received": len(sent), "stored": len(sent), "replayed": False}
    (key,) = bucket_keys(cloud, "MonitoringBucketName")
    assert re.fullmatch(rf"diagnoses/date=\d{{4}}-\d{{2}}-\d{{2}}/{re.escape(batch)}\.ndjson", key), key
    lines = cloud.ndjson_lines(cloud.outputs["MonitoringBucketName"], "diagnoses/")
    assert [(line["record_id"], line["code"]) for line in lines] == [
        (d["record_id"], d["diagnosis"]["code"]) for d in sent
    ]
    assert lines[0]["prediction_id"] == sent[0]["prediction_id"] and lines[1]["prediction_id"] is None
    # The patient named in the first diagnosis is pseudonymised at once; the second names none.
    assert re.fullmatch(r"[0-9a-f]{64}", lines[0]["patient_pseudonym"]) and lines[1]["patient_pseudonym"] is None
    assert sent[0]["patient_id"] not in json.dumps(lines)
    # The same body again: the same batch, stored once.
    assert body(cloud.invoke("PredictApiFunction", event)) == {**accepted, "replayed": True}
    assert bucket_keys(cloud, "MonitoringBucketName") == [key]


def manual_training_started(cloud: LocalCloud, event: Event, response: Any) -> None:
    request_id = event["requestContext"]["requestId"]  # no Idempotency-Key header: the API request id
    name = f"manual-{request_id}"
    assert body(response) == {"run_name": name, "started": True}
    assert started_input(cloud, "TrainingStateMachineArn", name) == {
        "reason": "manual",
        "requested_by": REVIEWER,
        "trigger_id": request_id,
        "dataset_version": None,  # the published version
        "hyperparameters": json.loads(event["body"])["hyperparameters"],
        "evidence": None,
    }
    # The same event again (a retried invocation, same request id): nothing new starts.
    assert body(cloud.invoke("ModelsApiFunction", event)) == {"run_name": name, "started": False}
    assert len(executions(cloud, "TrainingStateMachineArn")) == 1


def models_listed(cloud: LocalCloud, event: Event, response: Any) -> None:
    listed = body(response)
    summary = [(m["package_version"], m["approval_status"], m["champion"], m["deployment_status"]) for m in listed]
    assert summary == [(2, "PendingManualApproval", False, None), (1, "Approved", True, "serving")]  # newest first
    assert [m["model_version"] for m in listed] == [sample_version(2).model_version, sample_version(1).model_version]
    assert listed[1]["approval"]["decided_by"] == REVIEWER and listed[0]["approval"] is None


def model_shown(cloud: LocalCloud, event: Event, response: Any) -> None:
    shown, version = body(response), sample_version(1)
    assert int(event["pathParameters"]["version"]) == shown["package_version"] == 1
    assert (shown["model_version"], shown["training_job"], shown["dataset_version"]) == (
        version.model_version,
        version.training_job,
        version.dataset_version,
    )
    assert shown["champion"] and shown["deployment_status"] == "serving" and shown["metrics"] == version.metrics
    assert (shown["approval"]["status"], shown["approval"]["decided_by"]) == ("Approved", REVIEWER)
    artifacts = cloud.outputs["ArtifactsBucketName"]
    assert shown["evidence_uri"] == f"s3://{artifacts}/training/runs/{version.training_job}/evidence.json"


def approved_by_reviewer(cloud: LocalCloud, event: Event, response: Any) -> None:
    decision = body(response)
    assert (decision["package_version"], decision["status"], decision["decided_via"]) == (1, "Approved", "api")
    assert decision["decided_by"] == REVIEWER and decision["rationale"] == json.loads(event["body"])["rationale"]
    item = version_item(cloud, 1)
    assert item["approval_status"]["S"] == "Approved" and "task_token" not in item  # the waiting run answered
    assert json.loads(item["approval"]["S"]) == decision
    package = model_package(1)
    assert package["ModelApprovalStatus"] == "Approved" and REVIEWER in package["ApprovalDescription"]
    # The registry's state-change event reaches the deployment trigger: version 1 deploys.
    events.flush()
    (run,) = executions(cloud, "DeploymentStateMachineArn")
    assert re.fullmatch(r"deploy-v1-[0-9a-f]{12}", run["name"]), run["name"]  # named after the event
    assert version_item(cloud, 1)["last_event_status"]["S"] == "Approved"


def rollback_started(cloud: LocalCloud, event: Event, response: Any) -> None:
    request_id = event["requestContext"]["requestId"]
    name = f"rollback-v1-{hashlib.sha256(request_id.encode()).hexdigest()[:8]}"
    assert body(response) == {"from_version": 2, "to_version": 1, "run_name": name}
    assert started_input(cloud, "DeploymentStateMachineArn", name) == {
        "package_version": 1,
        "package_arn": model_package(1)["ModelPackageArn"],
        "reason": "rollback",
        "requested_by": REVIEWER,
    }


def dataset_training_started(cloud: LocalCloud, event: Event, response: Any) -> None:
    name = f"dataset-{event['detail']['dataset_version']}"
    assert response == {"run_name": name, "outcome": "started", "suppressed_because": None}
    # What the training state machine starts with: the prepare_training_run sample's request.
    prepare = load(PREPARE_TRAINING)
    assert name == prepare["run_name"]
    assert started_input(cloud, "TrainingStateMachineArn", name) == prepare["request"]
    # EventBridge delivers the event again: the same run, nothing new starts.
    again = cloud.invoke("StartTrainingFunction", event)
    assert again == {"run_name": name, "outcome": "already-started", "suppressed_because": None}
    assert len(executions(cloud, "TrainingStateMachineArn")) == 1
    assert [(t.run_name, t.outcome) for t in recorded_triggers(cloud)] == [(name, "started"), (name, "already-started")]


def recorded_triggers(cloud: LocalCloud) -> list[TriggerRecord]:
    table = DynamoDbTrainingTriggers(cloud.outputs["TrainingTriggersTableName"], dt.timedelta(days=1))
    return table.recent(dt.datetime(2026, 11, 1, tzinfo=dt.UTC))


def scheduled_training_started(cloud: LocalCloud, event: Event, response: Any) -> None:
    """No champion serves: the schedule trains the first model on the published version."""
    firing = dt.datetime.fromisoformat(event["time"]).strftime("%Y%m%dT%H%M%SZ")
    name = f"schedule-{firing}"
    assert response == {"run_name": name, "outcome": "started", "suppressed_because": None}
    assert started_input(cloud, "TrainingStateMachineArn", name) == {
        "reason": "schedule",
        "requested_by": "events:Scheduled Event",
        "trigger_id": firing,
        "dataset_version": None,  # the published version
        "hyperparameters": {},
        "evidence": None,
    }


def retraining_triggered_once(cloud: LocalCloud, event: Event, response: Any) -> None:
    """The drift alarm starts a run carrying the alarm and the monitor's latest results; the alarm's
    next state change while it trains is suppressed, and both are recorded."""
    alarm = event["detail"]
    name = response["run_name"]
    assert response == {"run_name": name, "outcome": "started", "suppressed_because": None}
    assert name.startswith("retrain-dxops-dev-drift-2026-11-27T13-55-01-512-0000")
    started = started_input(cloud, "TrainingStateMachineArn", name)
    assert (started["reason"], started["requested_by"]) == ("retraining-trigger", "alarm:dxops-dev-drift")
    assert started["evidence"]["alarm"]["reason"] == alarm["state"]["reason"]
    assert started["evidence"]["monitoring"] == read_json(cloud, "MonitoringBucketName", "monitoring/latest.json")
    assert [f["name"] for f in started["evidence"]["monitoring"]["drifted_features"]] == ["age_years"]
    suppressed = alarm_again(cloud, event)
    assert suppressed["outcome"] == "suppressed" and suppressed["suppressed_because"] == "training-running"
    assert len(executions(cloud, "TrainingStateMachineArn")) == 1
    assert [t.outcome for t in recorded_triggers(cloud)] == ["started", "suppressed"]


def alarm_again(cloud: LocalCloud, event: Event) -> Any:
    """The drift alarm's next episode (it went OK and back to ALARM an hour later)."""
    state = {**event["detail"]["state"], "timestamp": "2026-11-27T14:55:01.000+0000"}
    return cloud.invoke(
        "StartTrainingFunction", {**event, "id": "later", "detail": {**event["detail"], "state": state}}
    )


def retraining_triggered_twice(cloud: LocalCloud, _: Event) -> None:
    """Setup of get_training_triggers: the drift alarm sample, then the alarm's next episode."""
    run_sample(cloud, "start_training/drift_alarm.json")
    alarm_again(cloud, load("start_training/drift_alarm.json"))


# What ml/monitor.py writes for the publish sample's window (abridged): the age drifted.
MONITOR_RESULT = {
    "schema_version": 1,
    "drift": {
        "status": "drift",
        "samples": 412,
        "share_drifted": 0.025,
        "share_threshold": 0.0,
        "presentation_drifted": 0,
        "features": [
            {
                "name": "age_years",
                "test": "wasserstein",
                "statistic": 0.31,
                "p_value": None,
                "threshold": 0.1,
                "drifted": True,
                "status": "tested",
                "summary": {"reference_mean": 43.1, "current_mean": 51.2},
            },
            {
                "name": "sex",
                "test": "z",
                "statistic": 1.1,
                "p_value": 0.27,
                "threshold": 0.00125,
                "drifted": False,
                "status": "tested",
                "summary": {"reference_share": 0.52, "current_share": 0.55},
            },
        ],
        "prediction": {"drifted": False, "quantities": []},
    },
    "quality": {
        "status": "ok",
        "labelled": 64,
        "macro_f1": 0.79,
        "rare_recall": 0.7,
        "ece": 0.05,
        "accuracy": 0.83,
        "macro_f1_drop": 0.02,
        "reference": {"macro_f1": 0.81, "rare_recall": 0.72, "ece": 0.04, "accuracy": 0.84},
    },
}


def monitor_result_written(cloud: LocalCloud, event: Event) -> None:
    """Setup of publish_monitoring_results: the monitor job's monitoring.json at the plan's
    output_uri (its placeholder bucket, made here, as the conclude sample's comparison)."""
    bucket, _, prefix = event["output_uri"].removeprefix("s3://").partition("/")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": s3.meta.region_name})
    s3.put_object(Bucket=bucket, Key=prefix + "monitoring.json", Body=json.dumps(MONITOR_RESULT).encode())


def monitoring_results_published(cloud: LocalCloud, event: Event, response: Any) -> None:
    assert (response["drift_status"], response["drift_samples"], response["drift_share"]) == ("drift", 412, 0.025)
    assert [f["name"] for f in response["drifted_features"]] == ["age_years"]
    assert response["feature_drift"] == {"age_years": True, "sex": False}
    assert (response["quality_status"], response["quality"]["macro_f1"]) == ("ok", 0.79)
    assert response["report_uri"] == event["output_uri"] + "monitoring.md"
    assert read_json(cloud, "MonitoringBucketName", "monitoring/latest.json") == response
    # The metrics the drift and quality alarms judge, in the stack's namespace.
    cloudwatch = boto3.client("cloudwatch")
    published = {
        (m["MetricName"], tuple(sorted((d["Name"], d["Value"]) for d in m["Dimensions"])))
        for m in cloudwatch.list_metrics(Namespace="dxops/dev")["Metrics"]
    }
    service = ("service", "monitoring")
    for name in ("DriftShare", "DriftedFeatures", "QualityDrop", "LiveMacroF1", "MacroF1Drop", "LabelledPredictions"):
        assert (name, (service,)) in published, name
    assert ("FeatureDrift", (("feature", "age_years"), service)) in published
    share = cloudwatch.get_metric_statistics(
        Namespace="dxops/dev",
        MetricName="DriftShare",
        Dimensions=[{"Name": "service", "Value": "monitoring"}],
        StartTime=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
        EndTime=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1),
        Period=60,
        Statistics=["Maximum"],
    )["Datapoints"]
    assert [p["Maximum"] for p in share] == [0.025]


def monitoring_summary_written(cloud: LocalCloud, _: Event) -> None:
    """Setup of the drift alarm: the monitor's latest results (the publish sample's run)."""
    run_sample(cloud, PUBLISH_MONITORING)


# The captured traffic the monitoring sample finds (served 14:00:03 UTC, period one hour, quality
# window 30 days): two objects in the drift window (13:xx), two more in the quality window only, one
# too old; one object of late diagnoses.
CAPTURED = {
    "predictions/date=2026-11-27/hour=13/3b5e7a10-aaaa.ndjson": "window",
    "predictions/date=2026-11-27/hour=13/3b5e7a10-bbbb.ndjson": "window",
    "predictions/date=2026-11-27/hour=09/3b5e7a10-cccc.ndjson": "quality",
    "predictions/date=2026-11-02/hour=18/3b5e7a10-dddd.ndjson": "quality",
    "predictions/date=2026-10-01/hour=08/3b5e7a10-eeee.ndjson": "too old",
    "diagnoses/date=2026-11-27/diagnoses-1f2e3d4c.ndjson": "labels",
}


def traffic_captured(cloud: LocalCloud, event: Event) -> None:
    """Setup of prepare_monitoring_run: version 1 serves; predictions and diagnoses were stored."""
    models_in_service(cloud, event)
    s3 = boto3.client("s3")
    for key in CAPTURED:
        s3.put_object(Bucket=cloud.outputs["MonitoringBucketName"], Key=key, Body=b"{}\n")


def monitoring_run_planned(cloud: LocalCloud, event: Event, response: Any) -> None:
    monitoring, champion = cloud.outputs["MonitoringBucketName"], sample_version(1)
    assert (response["action"], response["package_version"], response["model_version"]) == (
        "monitor",
        1,
        champion.model_version,
    )
    assert (response["window_start"], response["window_end"]) == (
        "2026-11-27T13:00:03.117000Z",
        "2026-11-27T14:00:03.117000Z",
    )
    counts = (response["prediction_objects"], response["quality_prediction_objects"], response["diagnosis_objects"])
    assert counts == (2, 4, 1)
    job = response["processing_job"]
    digest = hashlib.sha256(event["run_name"].encode()).hexdigest()[:8]
    assert job["ProcessingJobName"] == f"dxops-dev-monitor-20261127140003-{digest}"
    run = f"s3://{monitoring}/monitoring/runs/{job['ProcessingJobName']}/"
    inputs = {i["InputName"]: (i["S3Input"]["S3Uri"], i["S3Input"]["S3DataType"]) for i in job["ProcessingInputs"]}
    assert inputs == {
        "code": (
            f"s3://{cloud.outputs['ArtifactsBucketName']}/training/code/{code_version(cloud)}/source/",
            "S3Prefix",
        ),
        "model": (model_package(1)["InferenceSpecification"]["Containers"][0]["ModelDataUrl"], "S3Prefix"),
        "predictions": (run + "predictions.manifest", "ManifestFile"),
        "diagnoses": (run + "diagnoses.manifest", "ManifestFile"),
    }
    manifest = read_json(
        cloud, "MonitoringBucketName", f"monitoring/runs/{job['ProcessingJobName']}/predictions.manifest"
    )
    assert manifest[0] == {"prefix": f"s3://{monitoring}/predictions/"}
    assert sorted(manifest[1:]) == sorted(
        k.removeprefix("predictions/") for k, w in CAPTURED.items() if w in {"window", "quality"}
    )
    arguments = job["AppSpecification"]["ContainerArguments"]
    flags = dict(zip(arguments[::2], arguments[1::2], strict=True))
    assert flags["--model-version"] == champion.model_version
    assert flags["--window-end"] == "2026-11-27T14:00:03.117000+00:00"
    assert response["output_uri"] == run + "output/"
    # The plan is what the state machine passes PublishMonitoringResults (the publish sample).
    assert as_sample(cloud, response) == load(PUBLISH_MONITORING)


def triggers_listed(cloud: LocalCloud, event: Event, response: Any) -> None:
    listed = body(response)
    assert [(t["reason"], t["outcome"], t["suppressed_because"]) for t in listed] == [
        ("retraining-trigger", "started", None),
        ("retraining-trigger", "suppressed", "training-running"),
    ]
    assert listed[1]["detail"].startswith(f"run {listed[0]['run_name']} is training")


def deployment_started_once(cloud: LocalCloud, event: Event, response: Any) -> None:
    run = deployment_run_name(1, event["id"])
    assert response == {"deployment_run": run}
    # The deployment state machine's input: the prepare_deployment sample's request and run name.
    prepare = load(PREPARE_DEPLOYMENT)
    assert run == prepare["run_name"]
    assert started_input(cloud, "DeploymentStateMachineArn", run) == prepare["request"]
    item = version_item(cloud, 1)
    # The approval is seen; the started run is forgotten (a later metadata edit deploys nothing).
    assert item["last_event_status"]["S"] == "Approved" and "deployment_run" not in item
    # EventBridge delivers the event again: nothing new starts.
    assert cloud.invoke("DeploymentTriggerFunction", event) == {"deployment_run": None}
    assert len(executions(cloud, "DeploymentStateMachineArn")) == 1


def training_run_planned(cloud: LocalCloud, event: Event, response: Any) -> None:
    ready = load(DATASET_READY)
    version, run_name = ready["detail"]["dataset_version"], event["run_name"]
    # The sample is what the training state machine passes for the DatasetReady sample's run.
    assert event["request"]["trigger_id"] == ready["id"] and event["request"]["dataset_version"] == version
    curated, artifacts = cloud.outputs["CuratedBucketName"], cloud.outputs["ArtifactsBucketName"]
    assert response["dataset"] == {
        "dataset_version": version,
        "manifest_uri": f"s3://{curated}/datasets/{version}/manifest.json",
        "table_uri": f"s3://{curated}/datasets/{version}/table/",
        "labelled_rows": sum(CLASS_COUNTS.values()),
        "classes": len(CLASS_COUNTS),
    }
    assert response["champion"] is None  # the account's first model
    job = response["training_job"]
    digest = hashlib.sha256(run_name.encode()).hexdigest()[:8]
    assert job["TrainingJobName"] == f"dxops-dev-20261127100001-{digest}"  # the execution's start time
    assert job["HyperParameters"]["dataset_version"] == version
    code = f"s3://{artifacts}/training/code/{code_version(cloud)}/"  # the code published at deploy
    assert job["HyperParameters"]["sagemaker_submit_directory"] == code + "sourcedir.tar.gz"
    assert job["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == response["dataset"]["table_uri"]
    assert response["comparison_uri"] == f"s3://{artifacts}/training/runs/{job['TrainingJobName']}/comparison/"
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in response["comparison_job"]["ProcessingInputs"]}
    assert inputs == {
        "code": code + "source/",
        "candidate": f"s3://{artifacts}/training/models/{job['TrainingJobName']}/output/model.tar.gz",
        "data": response["dataset"]["table_uri"],
    }
    # The plan is what the state machine passes ConcludeTrainingRun (the conclude sample).
    assert as_sample(cloud, response) == load(CONCLUDE)["plan"]


def candidate_registered(cloud: LocalCloud, event: Event, response: Any) -> None:
    plan, version = event["plan"], sample_version(1)
    job, artifacts = plan["training_job"]["TrainingJobName"], cloud.outputs["ArtifactsBucketName"]
    assert (response["outcome"], response["approval"], response["package_version"]) == ("registered", "manual", 1)
    assert response["model_version"] == version.model_version
    assert response["evidence_uri"] == f"s3://{artifacts}/training/runs/{job}/evidence.json"
    package = model_package(1)
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    container = package["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"] == event["training_job"]["ModelArtifacts"]["S3ModelArtifacts"]
    properties = package["CustomerMetadataProperties"]
    assert (properties["model_version"], properties["training_job"], properties["dataset_version"]) == (
        version.model_version,
        job,
        version.dataset_version,
    )
    assert package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == plan["comparison_uri"] + "comparison.json"
    record = model_versions(cloud).get(1)
    assert record is not None and record.approval_status == "PendingManualApproval"
    assert (record.run_name, record.training_job, record.metrics) == (version.run_name, job, version.metrics)
    evidence = read_json(cloud, "ArtifactsBucketName", f"training/runs/{job}/evidence.json")
    assert evidence["decision"] == {"outcome": "registered", "approval_status": "PendingManualApproval"}
    final = {m["MetricName"]: m["Value"] for m in event["training_job"]["FinalMetricDataList"]}
    assert evidence["training_job"]["final_metrics"] == final
    trial = boto3.client("sagemaker").describe_trial_component(TrialComponentName=f"{job}-evaluation")
    assert trial["Parameters"]["dataset_version"]["StringValue"] == version.dataset_version
    # The outcome is what the state machine passes RequestApprovalFunction (the approval samples).
    for sample in (AWAIT_REVIEW, REVIEW_EXPIRED):
        assert load(sample)["outcome"] == as_sample(cloud, response), sample


def review_awaited(cloud: LocalCloud, event: Event, response: Any) -> None:
    assert response == {"package_version": 1, "waiting": True}
    item = version_item(cloud, 1)
    # The waiting execution's token, kept for POST /models/1/approval to answer.
    assert item["task_token"]["S"] == event["task_token"]
    assert item["approval_status"]["S"] == "PendingManualApproval"
    assert model_package(1)["ModelApprovalStatus"] == "PendingManualApproval"


def review_expired(cloud: LocalCloud, event: Event, response: Any) -> None:
    assert response == {"package_version": 1, "rejected": True}
    item = version_item(cloud, 1)
    assert item["approval_status"]["S"] == "Rejected" and "task_token" not in item
    approval = json.loads(item["approval"]["S"])
    assert (approval["status"], approval["decided_by"], approval["decided_via"]) == (
        "Rejected",
        "policy:approval-timeout",
        "expiry",
    )
    assert model_package(1)["ModelApprovalStatus"] == "Rejected"
    events.flush()  # the registry's event reaches the deployment trigger: a rejection deploys nothing
    assert executions(cloud, "DeploymentStateMachineArn") == []


def deployment_planned(cloud: LocalCloud, event: Event, response: Any) -> None:
    package, run_name = model_package(1), event["run_name"]
    suffix = f"v1-{hashlib.sha256(run_name.encode()).hexdigest()[:8]}"
    container = package["InferenceSpecification"]["Containers"][0]
    assert response["model"]["ModelName"] == f"dxops-dev-model-{suffix}"
    assert response["model"]["PrimaryContainer"] == {k: container[k] for k in ("Image", "ModelDataUrl", "Environment")}
    assert response["model_version"] == sample_version(1).model_version
    config = response["endpoint_config"]
    assert config["EndpointConfigName"] == f"dxops-dev-config-{suffix}"
    # The stack's default hosting (InferenceMode serverless): no data capture, swapped at once.
    assert "ServerlessConfig" in config["ProductionVariants"][0] and "DataCaptureConfig" not in config
    assert response["deployment_config"] == {}
    assert (response["endpoint_name"], response["endpoint_exists"]) == (cloud.outputs["EndpointName"], False)
    assert (response["previous_endpoint_config"], response["previous_package_version"]) == (None, None)
    assert version_item(cloud, 1)["deployment_status"]["S"] == "deploying"
    # The plan is what the state machine passes VerifyDeployment (the verify sample).
    assert as_sample(cloud, response) == load(VERIFY)["plan"]


def smoke_test_failed(cloud: LocalCloud, event: Event, error: Any) -> None:
    """No endpoint serves in the sample's account (serving needs a trained model: the lifecycle
    tests train one): the smoke test cannot run (SmokeTestUnavailable, which the deployment state
    machine retries, then treats as a failed smoke test), and nothing is crowned."""
    assert "no model is deployed" in str(error), error
    assert model_versions(cloud).champion() is None
    assert version_item(cloud, 1)["deployment_status"]["S"] == "deploying"
    assert "champion_since" not in model_package(1).get("CustomerMetadataProperties", {})


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
    # two Phenopackets: both stored as records
    "ingest_api/post_phenopackets.json": Expect(202, raw=2),
    # a file of four Phenopackets in the inbox: three stored, one without subject.id quarantined
    "ingest_inbox/sqs_inbox_file_created.json": Expect(
        raw=3, quarantined=1, check=inbox_file_ingested, setup=inbox_file_uploaded
    ),
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
    # --- model lifecycle ---
    # no model deployed yet: 503 with Retry-After, nothing served or stored
    "predict_api/post_predict.json": Expect(503, check=model_unavailable),
    "predict_api/post_predict_batch.json": Expect(503, check=model_unavailable),
    # a FHIR Bundle: mapped and validated, then the same 503 (the lifecycle tests get RiskAssessments)
    "predict_api/post_fhir_predict.json": Expect(503, check=model_unavailable),
    # late labels: pseudonymised and stored once (the same body again is a replay)
    "predict_api/post_diagnoses.json": Expect(202, check=diagnoses_stored),
    "models_api/post_training.json": Expect(202, check=manual_training_started),
    "models_api/get_models.json": Expect(200, check=models_listed, setup=models_in_service),
    "models_api/get_model.json": Expect(200, check=model_shown, setup=models_in_service),
    # version 1 waits for review (its run's task token stored): approved, the registry's event deploys it
    "models_api/post_approval.json": Expect(200, check=approved_by_reviewer, setup=after(AWAIT_REVIEW)),
    "models_api/post_rollback.json": Expect(202, check=rollback_started, setup=newer_version_in_service),
    "start_training/dataset_ready.json": Expect(check=dataset_training_started),
    "start_training/schedule.json": Expect(check=scheduled_training_started, setup=dataset_published),
    "start_training/drift_alarm.json": Expect(check=retraining_triggered_once, setup=monitoring_summary_written),
    "models_api/get_training_triggers.json": Expect(200, check=triggers_listed, setup=retraining_triggered_twice),
    "deployment_trigger/package_approved.json": Expect(check=deployment_started_once, setup=version_approved),
    PREPARE_TRAINING: Expect(check=training_run_planned, setup=dataset_published),
    PREPARE_MONITORING: Expect(check=monitoring_run_planned, setup=traffic_captured),
    PUBLISH_MONITORING: Expect(check=monitoring_results_published, setup=monitor_result_written),
    CONCLUDE: Expect(check=candidate_registered, setup=comparison_written),
    AWAIT_REVIEW: Expect(check=review_awaited, setup=version_registered),
    REVIEW_EXPIRED: Expect(check=review_expired, setup=after(AWAIT_REVIEW)),
    PREPARE_DEPLOYMENT: Expect(check=deployment_planned, setup=deployment_started),
    # no endpoint serves (see smoke_test_failed); a stored clinical record is what the smoke test sends
    VERIFY: Expect(
        raw=1,
        error="SmokeTestUnavailable",
        check=smoke_test_failed,
        setup=chain(after("ingest_api/post_record.json"), after(PREPARE_DEPLOYMENT)),
    ),
}


def test_every_sample_has_an_expectation() -> None:
    assert {f"{path.parent.name}/{path.name}" for _, path in SAMPLES} == set(EXPECTED)


@pytest.mark.parametrize(("logical_id", "path"), SAMPLES, ids=[f"{f}:{p.name}" for f, p in SAMPLES])
def test_sample_event_runs_through_the_handler(cloud: LocalCloud, logical_id: str, path: Path) -> None:
    expect = EXPECTED[f"{path.parent.name}/{path.name}"]
    event = json.loads(path.read_text())
    if expect.setup is not None:
        expect.setup(cloud, event)
    response: Any
    if expect.error is not None:
        with pytest.raises(FunctionError) as raised:
            cloud.invoke(logical_id, event)
        assert raised.value.error_type == expect.error, raised.value
        response = raised.value.error
    else:
        response = cloud.invoke(logical_id, event)
    if expect.status is not None:
        assert response["statusCode"] == expect.status, response["body"][:500]
    if expect.check is not None:
        expect.check(cloud, event, response)
    assert (len(stored_lines(cloud, "raw/")), len(stored_lines(cloud, "quarantine/"))) == (
        expect.raw,
        expect.quarantined,
    )
