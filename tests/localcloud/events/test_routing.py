"""EventBridge rules route custom and S3 events to real handlers, queues and state machines."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import boto3
import pytest

from localcloud import events
from localcloud.cloud import LocalCloud
from tests.localcloud.events.support import messages, put_event, received_by_probe, started


@pytest.fixture
def cloud() -> Iterator[LocalCloud]:
    with started() as local_cloud:
        yield local_cloud


def test_a_custom_event_reaches_the_handler_and_the_queue(cloud: LocalCloud) -> None:
    event_id = put_event({"record_id": "r-1", "count": 3})
    put_event({"record_id": "r-2"}, source="dxops.other")  # matches no rule
    assert events.flush()

    [received] = received_by_probe(cloud)
    assert (received["id"], received["source"], received["detail"]) == (
        event_id,
        "dxops.test",
        {"record_id": "r-1", "count": 3},
    )
    [message] = messages(cloud.physical_id("EventsQueue"), expected=1)
    assert message["Json"]["id"] == event_id
    assert message["Json"]["detail-type"] == "Probe"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", message["Json"]["time"])  # AWS's format
    assert "ingestion-time" not in message["Json"]  # moto's internal field stays internal
    # A schedule-only rule has no pattern: moto would deliver every event to it, AWS delivers none.
    messages(cloud.physical_id("TickQueue"), expected=0)


def test_input_path_and_input_transformer_shape_what_the_target_gets(cloud: LocalCloud) -> None:
    put_event({"record_id": "r-7", "count": 2})

    [detail] = messages(cloud.physical_id("DetailQueue"), expected=1)
    assert detail["Json"] == {"record_id": "r-7", "count": 2}
    [shaped] = messages(cloud.physical_id("ShapedQueue"), expected=1)
    assert shaped["Json"] == {
        "kind": "Probe",
        "count": 2,
        "absent": None,
        "text": "record r-7 (Probe)",
        "rule": cloud.physical_id("CustomToQueues"),
    }


def test_disabled_rules_do_not_route(cloud: LocalCloud) -> None:
    boto3.client("events").disable_rule(Name=cloud.physical_id("CustomToQueues"))
    put_event({"record_id": "r-3"})
    assert events.flush()
    messages(cloud.physical_id("EventsQueue"), expected=0)
    assert len(received_by_probe(cloud)) == 1  # the probe's own rule is still enabled


def test_s3_objects_under_the_prefix_trigger_the_rule_and_others_do_not(cloud: LocalCloud) -> None:
    s3 = boto3.client("s3")
    bucket = cloud.outputs["DataBucketName"]
    s3.put_object(Bucket=bucket, Key="raw/clinical/2026/record-1.json", Body=b'{"a": 1}', Tagging="origin=test")
    s3.put_object(Bucket=bucket, Key="curated/record-1.json", Body=b"{}")
    assert events.flush()

    [raw] = messages(cloud.physical_id("RawQueue"), expected=1)
    event = raw["Json"]
    assert (event["source"], event["detail-type"], event["resources"]) == (
        "aws.s3",
        "Object Created",
        [f"arn:aws:s3:::{bucket}"],
    )
    assert event["detail"]["bucket"] == {"name": bucket}
    assert event["detail"]["object"]["key"] == "raw/clinical/2026/record-1.json"
    assert event["detail"]["object"]["size"] == 8
    assert re.fullmatch(r"[0-9a-f]{32}", event["detail"]["object"]["etag"])
    assert event["detail"]["reason"] == "PutObject"
    [received] = received_by_probe(cloud)  # the SAM EventBridgeRule event of the function
    assert received["detail"]["object"]["key"] == "raw/clinical/2026/record-1.json"
    # One event per upload: moto's extra "Object Tags Added" for PutObject is not announced ...
    every = messages(cloud.physical_id("AllS3Queue"), expected=2)
    assert {m["Json"]["detail-type"] for m in every} == {"Object Created"}
    # ... while the PutObjectTagging API still announces its tags.
    s3.put_object_tagging(Bucket=bucket, Key="curated/record-1.json", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
    [tagged] = messages(cloud.physical_id("AllS3Queue"), expected=1)
    assert tagged["Json"]["detail-type"] == "Object Tags Added"


def test_an_unreachable_target_is_dead_lettered_and_the_caller_is_unaffected(cloud: LocalCloud) -> None:
    event_id = put_event({"record_id": "r-4"}, source="dxops.test.unreachable")
    assert events.flush()

    [dead] = messages(cloud.physical_id("TargetDlq"), expected=1)
    assert dead["Json"]["id"] == event_id
    attributes = {name: value["StringValue"] for name, value in dead["MessageAttributes"].items()}
    assert attributes["ERROR_CODE"] == "ResourceNotFoundException"
    assert attributes["RULE_ARN"].endswith(f"rule/{cloud.physical_id('UnreachableTarget')}")
    assert attributes["TARGET_ARN"].endswith(":function:does-not-exist")
    assert attributes["RETRY_ATTEMPTS"] == "0"  # a missing resource is not retried (AWS neither)
    [delivery] = [d for d in events.deliveries() if d.event_id == event_id]
    assert (delivery.outcome, delivery.error) == ("dead-lettered", "ResourceNotFoundException")


def test_handler_errors_get_lambdas_async_retries_then_the_failure_destination(cloud: LocalCloud) -> None:
    function = cloud.functions["ProbeFunction"]
    failures = cloud.physical_id("FailureQueue")
    failure_arn = boto3.client("sqs").get_queue_attributes(QueueUrl=failures, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    boto3.client("lambda").put_function_event_invoke_config(
        FunctionName=function.name, DestinationConfig={"OnFailure": {"Destination": failure_arn}}
    )

    event_id = put_event({"record_id": "r-5", "fail": True})
    assert events.flush()

    [delivery] = [d for d in events.deliveries() if d.event_id == event_id and d.target_arn == function.arn]
    assert (delivery.outcome, delivery.attempts, delivery.error) == ("function-error", 3, "RuntimeError")
    [record] = messages(failures, expected=1)
    assert record["Json"]["requestContext"]["condition"] == "RetriesExhausted"
    assert record["Json"]["requestContext"]["approximateInvokeCount"] == 3
    assert record["Json"]["requestPayload"]["id"] == event_id
    assert record["Json"]["responsePayload"]["errorType"] == "RuntimeError"
    assert received_by_probe(cloud) == []


def test_a_state_machine_target_starts_one_named_execution_per_event(cloud: LocalCloud) -> None:
    sfn = boto3.client("stepfunctions")
    machine = sfn.create_state_machine(
        name="events-target",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}),
        roleArn="arn:aws:iam::123456789012:role/local-states",
    )["stateMachineArn"]
    client = boto3.client("events")
    client.put_rule(Name="to-state-machine", EventPattern=json.dumps({"source": ["dxops.test.sfn"]}))
    client.put_targets(
        Rule="to-state-machine",
        Targets=[{"Id": "Machine", "Arn": machine, "RoleArn": "arn:aws:iam::123456789012:role/local-events"}],
    )

    first = put_event({"record_id": "r-8"}, source="dxops.test.sfn")
    second = put_event({"record_id": "r-9"}, source="dxops.test.sfn")
    assert events.flush()

    executions = sfn.list_executions(stateMachineArn=machine)["executions"]
    assert len({e["name"] for e in executions}) == 2  # moto would name both "None" and collide
    inputs = [json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"]) for e in executions]
    assert sorted(i["id"] for i in inputs) == sorted([first, second])
    assert {i["detail"]["record_id"] for i in inputs} == {"r-8", "r-9"}
