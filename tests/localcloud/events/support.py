"""Shared pieces of the EventBridge tests: the test template deployed with EventBridge attached,
and queue reading."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

from localcloud import cloudwatch, events
from localcloud.cloud import LocalCloud

HERE = Path(__file__).parent
TEMPLATE = HERE / "template.yaml"


@contextmanager
def started(template: Path = TEMPLATE, *, server: bool = False) -> Iterator[LocalCloud]:
    """A local cloud with `template` deployed and the EventBridge and CloudWatch services attached
    (what localcloud.cloud will do itself once it calls attach/shutdown)."""
    with LocalCloud.start(template, server=server) as cloud:
        events.attach(cloud)
        cloudwatch.attach(cloud)
        try:
            yield cloud
        finally:
            cloudwatch.shutdown()
            assert events.shutdown(), "deliveries were still pending when the cloud stopped"


def messages(queue_url: str, *, expected: int | None = None) -> list[dict[str, Any]]:
    """Every message on a queue (received and deleted), with its body parsed when it is JSON."""
    sqs = boto3.client("sqs")
    found: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        if not batch:
            break
        for message in batch:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            try:
                message["Json"] = json.loads(message["Body"])
            except ValueError:
                message["Json"] = None
            found.append(message)
    if expected is not None:
        assert len(found) == expected, [m["Body"] for m in found]
    return found


def received_by_probe(cloud: LocalCloud) -> list[Any]:
    """The events the probe function received (it stores each one in the probe bucket)."""
    s3 = boto3.client("s3")
    bucket = cloud.outputs["ProbeBucketName"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="received/").get("Contents", [])]
    return [json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()) for key in keys]


def put_event(detail: dict[str, Any], *, source: str = "dxops.test", detail_type: str = "Probe") -> str:
    response = boto3.client("events").put_events(
        Entries=[{"Source": source, "DetailType": detail_type, "Detail": json.dumps(detail)}]
    )
    assert response["FailedEntryCount"] == 0
    return str(response["Entries"][0]["EventId"])
