"""IoT rule actions and SQS event source mappings, wired from template.yaml."""

from __future__ import annotations

import datetime as dt
import json
import re

import boto3

from localcloud.cloud import LocalCloud
from localcloud.event_sources import drain, sqs_mappings
from localcloud.iot import RuleActions, substitute, topic_rules
from tests.integration.api_events import put_binding
from tests.records import binding_request, device_publication, rule_envelope


def test_substitution_templates_of_action_fields() -> None:
    now = int(dt.datetime(2026, 11, 27, 8, 30, tzinfo=dt.UTC).timestamp() * 1000)
    key = substitute('err/${parse_time("yyyy-MM-dd", timestamp())}/${topic(3)}/${newuuid()}.json', "a/b/dev-1/r", now)
    assert re.fullmatch(r"err/2026-11-27/dev-1/[0-9a-f-]{36}\.json", key)


def test_template_rule_and_mapping_are_found(cloud: LocalCloud) -> None:
    [(name, payload)] = topic_rules(cloud).items()
    assert name == "dxops_dev_device_readings"
    assert "topic(3) AS device_id" in payload["Sql"] and "encode(*, 'base64') AS payload" in payload["Sql"]
    mappings = {m.function: m for m in sqs_mappings(cloud)}
    assert set(mappings) == {"IngestDeviceFunction", "DatasetTriggerFunction", "IngestInboxFunction"}
    mapping = mappings["IngestDeviceFunction"]
    assert (mapping.function, mapping.batch_size, mapping.reports_item_failures) == ("IngestDeviceFunction", 1000, True)
    inbox = mappings["IngestInboxFunction"]
    assert (inbox.batch_size, inbox.reports_item_failures) == (1, True)  # one file per invocation


def test_rule_output_reaches_the_function_through_the_queue(cloud: LocalCloud) -> None:
    [(name, payload)] = topic_rules(cloud).items()
    actions = RuleActions(cloud, payload)
    for i in range(3):
        assert cloud.invoke("IngestApiFunction", put_binding(f"dev-{i}", binding_request(i)))["statusCode"] == 200
        actions.on_output(name, rule_envelope(device_publication(), f"dev-{i}"))
    stats = drain(cloud)["IngestDeviceFunctionDeviceReadings"]
    assert (stats.invocations, stats.delivered, stats.deleted) == (1, 3, 3)
    s3 = boto3.client("s3")
    listing = s3.list_objects_v2(Bucket=cloud.outputs["RawBucketName"], Prefix="raw/device/")["Contents"]
    assert len(listing) == 1


def test_error_action_writes_to_the_quarantine(cloud: LocalCloud) -> None:
    [(name, payload)] = topic_rules(cloud).items()
    actions = RuleActions(cloud, payload)
    actions.on_error(name, {"ruleName": name, "topic": "dxops/devices/d1/readings", "failures": []})
    listing = boto3.client("s3").list_objects_v2(
        Bucket=cloud.outputs["RawBucketName"], Prefix="quarantine/device/rule-errors/"
    )["Contents"]
    [obj] = listing
    assert (
        json.loads(boto3.client("s3").get_object(Bucket=cloud.outputs["RawBucketName"], Key=obj["Key"])["Body"].read())[
            "ruleName"
        ]
        == name
    )


def test_failed_batches_stay_on_the_queue(cloud: LocalCloud) -> None:
    [mapping] = [m for m in sqs_mappings(cloud) if m.function == "IngestDeviceFunction"]
    sqs = boto3.client("sqs")
    sqs.send_message(QueueUrl=mapping.queue_url, MessageBody=json.dumps(rule_envelope(device_publication())))
    boto3.client("s3").put_bucket_policy(
        Bucket=cloud.outputs["RawBucketName"],
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": "*"}],
            }
        ),
    )
    stats = drain(cloud, max_polls=2)["IngestDeviceFunctionDeviceReadings"]
    assert stats.failed_invocations == 2 and stats.deleted == 0
    attributes = sqs.get_queue_attributes(QueueUrl=mapping.queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "1"
