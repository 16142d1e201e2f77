"""Shared pieces of the CloudWatch tests: the test template, an SNS topic for the alarm actions
(subscribed by a queue the tests read), and EMF-publishing invocations at chosen times."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3

from localcloud.cloud import LocalCloud
from tests.localcloud.events.support import started

HERE = Path(__file__).parent
TEMPLATE = HERE / "template.yaml"
NAMESPACE = "DxopsLocalTest"
SERVICE = [{"Name": "service", "Value": "emf-probe"}]


@dataclass
class AlarmCloud:
    cloud: LocalCloud
    notifications: str  # URL of the queue subscribed to the alarm topic


@contextmanager
def alarm_cloud(*, server: bool = False) -> Iterator[AlarmCloud]:
    with started(TEMPLATE, server=server) as cloud:
        sns, sqs = boto3.client("sns"), boto3.client("sqs")
        topic = sns.create_topic(Name="dxops-local-alarms")["TopicArn"]  # the template's default AlarmTopicArn
        queue = sqs.create_queue(QueueName="alarm-notifications")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        yield AlarmCloud(cloud, queue)


MINUTE = dt.timedelta(minutes=1)


def minute() -> dt.datetime:
    """Half past the current minute: datapoints at whole minutes from it sit well inside their
    periods. Tests take it once and count from it, so that crossing a minute changes nothing."""
    return dt.datetime.now(dt.UTC).replace(second=30, microsecond=0)


def reject(rejected: int, at: dt.datetime) -> None:
    """Invoke the EMF probe through the Lambda API: it publishes RecordsRejected=rejected at `at`."""
    event = {"rejected": rejected, "timestamp_ms": int(at.timestamp() * 1000)}
    response = boto3.client("lambda").invoke(FunctionName=_probe_name(), Payload=json.dumps(event).encode())
    assert "FunctionError" not in response


def _probe_name() -> str:
    functions = boto3.client("lambda").list_functions()["Functions"]
    [name] = [f["FunctionName"] for f in functions if "EmfFunction" in f["FunctionName"]]
    return str(name)


def alarm_state(name: str) -> dict[str, str]:
    [alarm] = boto3.client("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"]
    return {"value": alarm["StateValue"], "reason": alarm["StateReason"], "data": alarm.get("StateReasonData", "")}
