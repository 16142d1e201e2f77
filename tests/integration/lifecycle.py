"""Helpers of the model lifecycle tests on the local cloud: a published dataset version in the
curated bucket (as the data-processing pipeline leaves it), DatasetReady on the bus, API calls to
the models API, and waiting for executions and endpoints."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import io
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pandas as pd

from dxops.schemas.datasets import DatasetManifest, DatasetReadyDetail, PreviousVersion
from localcloud import events
from localcloud.cloud import LocalCloud
from tests.integration.api_events import load_event, post_records
from tests.records import clinical_record

# Fast settings of ml/train.py for the tests (the defaults train for minutes on real data).
FAST_TRAINING = {"candidates": "logreg+class_weights", "folds": "2", "threads": "1"}
LIFECYCLE_PARAMETERS = {
    "InferenceMode": "instance",
    "InferenceInstanceCount": "2",
    "BakeSeconds": "1",
    "DeploymentPollSeconds": "1",
    "TrainingHyperparameters": json.dumps(FAST_TRAINING),
    "ApprovalPolicy": "manual",
    "ReviewTimeoutSeconds": "600",
    # The tests train one run after another: the retraining guard's cooldown and cap would suppress them
    # (tests/unit/test_training_guard.py tests the guard itself).
    "RetrainingCooldownSeconds": "0",
    "RetrainingDailyCap": "100",
}
REVIEWER = "arn:aws:sts::123456789012:assumed-role/ml-reviewer/dr-lee"


@contextmanager
def deployable_cloud(parameters: dict[str, str]) -> Iterator[LocalCloud]:
    """The local cloud with the template deployed, and records in the raw zone: a deployment's smoke
    test sends a few of them to the endpoint."""
    with LocalCloud.start(parameters=parameters) as cloud:
        response = cloud.invoke("IngestApiFunction", post_records([clinical_record(i) for i in range(3)]))
        assert response["statusCode"] == 202
        yield cloud


def version_id(index: int) -> str:
    return f"v20261127T{index:06d}Z-{index:08x}"


def publish_dataset(cloud: LocalCloud, version: str, table: pd.DataFrame) -> DatasetReadyDetail:
    """The curated version (Parquet, manifest, published pointer) and its DatasetReady detail."""
    s3 = boto3.client("s3")
    bucket = cloud.outputs["CuratedBucketName"]
    prefix = f"datasets/{version}/"
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    body = buffer.getvalue()
    s3.put_object(Bucket=bucket, Key=f"{prefix}table/part-00000.parquet", Body=body)
    labels = table["label"].dropna().astype(str)
    content_hash = "sha256:" + hashlib.sha256(body).hexdigest()
    manifest = DatasetManifest(
        dataset_version=version,
        created_at=dt.datetime.now(dt.UTC),
        content_hash=content_hash,
        schema_version="1.0",
        table_uri=f"s3://{bucket}/{prefix}table/",
        partition_keys=[],
        partitions=[],
        rows={"curated": len(table)},
        class_counts=labels.value_counts().to_dict(),
        label_status_counts={"confirmed": len(labels)},
        columns={"features": [c for c in table.columns if c.startswith("HP:")]},
        sources_uri=f"s3://{bucket}/{prefix}sources.json",
        source_objects=1,
        dq_status="pass",
        dq_ruleset="test",
        dq_report_uri=f"s3://{bucket}/{prefix}dq_report.json",
        run_summary_uri=f"s3://{bucket}/{prefix}run_summary.json",
        previous_version=None,
        pipeline={"execution": "test", "glue_job_run_id": "test", "trigger": "manual"},
    )
    manifest_uri = f"s3://{bucket}/{prefix}manifest.json"
    s3.put_object(Bucket=bucket, Key=f"{prefix}manifest.json", Body=manifest.model_dump_json().encode())
    pointer = PreviousVersion(
        dataset_version=version, content_hash=content_hash, row_count=len(table), manifest_uri=manifest_uri
    )
    s3.put_object(Bucket=bucket, Key="datasets/published.json", Body=pointer.model_dump_json().encode())
    return DatasetReadyDetail(
        dataset_version=version,
        manifest_uri=manifest_uri,
        table_uri=manifest.table_uri,
        content_hash=content_hash,
        rows=len(table),
        labelled_rows=len(labels),
        classes=labels.nunique(),
        previous_version=None,
    )


def announce(detail: DatasetReadyDetail) -> None:
    boto3.client("events").put_events(
        Entries=[{"Source": "dxops.datasets", "DetailType": "DatasetReady", "Detail": detail.model_dump_json()}]
    )
    events.flush()


def api_event(method: str, path: str, body: Any = None, user: str = REVIEWER) -> dict[str, Any]:
    """A signed API Gateway proxy event for the models API (from its sample)."""
    event = copy.deepcopy(load_event("models_api/get_models.json"))
    parts = path.strip("/").split("/")
    resource, parameters = path, None
    if len(parts) >= 2 and parts[0] == "models" and parts[1].isdigit():
        resource = "/models/{version}" + ("/" + "/".join(parts[2:]) if len(parts) > 2 else "")
        parameters = {"version": parts[1]}
    event.update(httpMethod=method, path=path, resource=resource, pathParameters=parameters)
    event["requestContext"].update(httpMethod=method, path=f"/dev{path}", resourcePath=resource)
    event["requestContext"]["identity"]["userArn"] = user
    event["body"] = None if body is None else json.dumps(body)
    return event


def call(cloud: LocalCloud, function: str, event: dict[str, Any]) -> tuple[int, Any]:
    response = cloud.invoke(function, event)
    return int(response["statusCode"]), json.loads(response["body"]) if response.get("body") else None


def executions(cloud: LocalCloud, output: str) -> list[dict[str, Any]]:
    sfn = boto3.client("stepfunctions")
    listed = sfn.list_executions(stateMachineArn=cloud.outputs[output])["executions"]
    return sorted(listed, key=lambda e: e["startDate"])


def wait_for(condition: Any, timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def execution_status(cloud: LocalCloud, output: str, name: str) -> str | None:
    machine = cloud.outputs[output]
    arn = machine.replace(":stateMachine:", ":execution:") + f":{name}"
    try:
        return str(boto3.client("stepfunctions").describe_execution(executionArn=arn)["status"])
    except boto3.client("stepfunctions").exceptions.ExecutionDoesNotExist:
        return None


def wait_execution(cloud: LocalCloud, output: str, name: str, timeout: float = 240) -> dict[str, Any]:
    """The execution's description once it has ended."""
    sfn = boto3.client("stepfunctions")
    arn = cloud.outputs[output].replace(":stateMachine:", ":execution:") + f":{name}"
    wait_for(
        lambda: execution_status(cloud, output, name) not in (None, "RUNNING"), timeout, f"execution {name} to end"
    )
    return dict(sfn.describe_execution(executionArn=arn))


def states_entered(execution_arn: str) -> list[str]:
    history = boto3.client("stepfunctions").get_execution_history(executionArn=execution_arn, maxResults=1000)
    return [e["stateEnteredEventDetails"]["name"] for e in history["events"] if "stateEnteredEventDetails" in e]
