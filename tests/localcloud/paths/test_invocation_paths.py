"""Every Lambda invocation path runs the real handler: direct Invoke, S3 notification, SNS,
EventBridge (plus Step Functions, SQS, IoT and API Gateway, proved in their own folders and in
tests/integration with dxops's template). Both local cloud modes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from localcloud import events
from localcloud.cloud import LocalCloud

TEMPLATE = Path(__file__).with_name("template.yaml")


@pytest.fixture(params=[False, True], ids=["in-process", "server"])
def paths_cloud(request: pytest.FixtureRequest) -> Iterator[LocalCloud]:
    with LocalCloud.start(template_path=TEMPLATE, server=request.param) as cloud:
        yield cloud


def recorded(cloud: LocalCloud) -> dict[str, int]:
    assert events.flush(10), "asynchronous deliveries did not finish"
    listing = boto3.client("s3").list_objects_v2(Bucket=cloud.physical_id("Recordings")).get("Contents", [])
    counts: dict[str, int] = {}
    for obj in listing:
        counts[obj["Key"].split("/")[0]] = counts.get(obj["Key"].split("/")[0], 0) + 1
    return counts


def test_direct_invoke_returns_the_handler_result_and_errors(paths_cloud: LocalCloud) -> None:
    lam = boto3.client("lambda")
    name = paths_cloud.physical_id("Recorder")
    ok = lam.invoke(FunctionName=name, Payload=json.dumps({"hello": 1}))
    assert json.loads(ok["Payload"].read()) == {"path": "direct", "function": name}
    failed = lam.invoke(FunctionName=name, Payload=json.dumps({"fail": True}))
    assert "FunctionError" in failed
    assert json.loads(failed["Payload"].read())["errorType"] == "ValueError"


def test_s3_notification_with_prefix_filter(paths_cloud: LocalCloud) -> None:
    s3 = boto3.client("s3")
    uploads = paths_cloud.physical_id("Uploads")
    s3.put_object(Bucket=uploads, Key="incoming/a.csv", Body=b"1")
    s3.put_object(Bucket=uploads, Key="elsewhere/b.csv", Body=b"2")
    assert recorded(paths_cloud) == {"s3": 1}


def test_sns_subscription(paths_cloud: LocalCloud) -> None:
    boto3.client("sns").publish(TopicArn=paths_cloud.physical_id("Alerts"), Message="drift detected")
    assert recorded(paths_cloud) == {"sns": 1}


def test_eventbridge_rule(paths_cloud: LocalCloud) -> None:
    boto3.client("events").put_events(
        Entries=[
            {"Source": "dxops.test", "DetailType": "Test", "Detail": "{}"},
            {"Source": "other", "DetailType": "X", "Detail": "{}"},
        ]
    )
    assert recorded(paths_cloud) == {"eventbridge": 1}


def test_event_invocations_are_asynchronous(paths_cloud: LocalCloud) -> None:
    response = boto3.client("lambda").invoke(
        FunctionName=paths_cloud.physical_id("Recorder"), InvocationType="Event", Payload=json.dumps({"async": 1})
    )
    assert response["StatusCode"] == 202
    assert recorded(paths_cloud) == {"direct": 1}  # ran on the delivery worker; flush waited for it
