"""The moto 5.2.5 internals localcloud.events patches or reads, and the moto behaviours it works
around. Each test fails when an upgrade changes one, so that the patch is revisited."""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.events.models import Rule, events_backends
from moto.s3 import notifications as s3_notifications
from moto.s3.models import s3_backends

from localcloud import events
from localcloud.cloud import LOCAL_CREDENTIALS

ACCOUNT, REGION = "123456789012", "eu-west-1"


@pytest.fixture
def aws() -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(LOCAL_CREDENTIALS)
    try:
        with mock_aws():
            events.install()
            yield
    finally:
        events.shutdown()
        os.environ.clear()
        os.environ.update(saved)


def _parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_the_replaced_functions_keep_moto_signatures() -> None:
    assert _parameters(events._MOTO_SEND_TO_TARGETS) == ["self", "original_event", "transform_input"]
    assert _parameters(events.route_to_targets) == ["rule", "event", "transform_input"]
    assert _parameters(events._MOTO_S3_TO_EVENTBRIDGE) == ["account_id", "bucket", "event_name", "key"]
    assert _parameters(events._s3_to_eventbridge) == ["account_id", "bucket", "event_name", "key"]
    assert _parameters(events._MOTO_PUT_OBJECT_TAGGING_API) == ["self"]
    assert s3_notifications._detail_type("s3:ObjectCreated:Put") == "Object Created"
    assert s3_notifications._detail_type("s3:ObjectTagging:Put") == "Object Tags Added"
    assert s3_notifications.S3NotificationEvent.OBJECT_TAGGING_PUT_EVENT == "s3:ObjectTagging:Put"


def _rule(*, state: str = "ENABLED", pattern: str | None = '{"source": ["dxops.test"]}', arn: str) -> Rule:
    rule = Rule("pin", ACCOUNT, REGION, None, pattern, None if pattern else "rate(1 minute)", None, "default", state)
    rule.put_targets([{"Id": "T", "Arn": arn}])
    return rule


EVENT = {
    "version": "0",
    "id": "1",
    "source": "dxops.test",
    "detail-type": "Probe",
    "detail": {},
    "time": 1.0,
    "ingestion-time": 1.0,
    "account": ACCOUNT,
    "region": REGION,
    "resources": [],
}


def test_moto_cannot_deliver_to_lambda_or_state_machine_targets() -> None:
    for arn in (
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:f",
        f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:m",
        f"arn:aws:sns:{REGION}:{ACCOUNT}:t",
    ):
        with pytest.raises(NotImplementedError):
            events._MOTO_SEND_TO_TARGETS(_rule(arn=arn), EVENT)  # type: ignore[arg-type]


def test_moto_routes_to_disabled_and_to_schedule_only_rules(aws: None) -> None:
    queue_url = boto3.client("sqs").create_queue(QueueName="pin")["QueueUrl"]
    arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:pin"
    events._MOTO_SEND_TO_TARGETS(_rule(state="DISABLED", arn=arn), dict(EVENT))  # type: ignore[arg-type]
    scheduled = _rule(pattern=None, arn=arn)
    assert scheduled.event_pattern.get_pattern() == {}
    events._MOTO_SEND_TO_TARGETS(scheduled, dict(EVENT))  # type: ignore[arg-type]
    received = boto3.client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert len(received) == 2


def test_moto_announces_tags_on_every_put_object(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    names: list[str] = []
    monkeypatch.setattr(s3_notifications, "_send_event_bridge_message", lambda _a, _b, name, _k: names.append(name))
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="pin", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_notification_configuration(Bucket="pin", NotificationConfiguration={"EventBridgeConfiguration": {}})
    s3.put_object(Bucket="pin", Key="k", Body=b"x")
    assert names == ["s3:ObjectCreated:Put", "s3:ObjectTagging:Put"]


def test_the_moto_models_read_here(aws: None) -> None:
    client = boto3.client("events")
    client.put_rule(Name="pin", EventPattern=json.dumps({"source": ["dxops.test"]}), State="DISABLED")
    client.put_targets(Rule="pin", Targets=[{"Id": "T", "Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:q"}])
    rule = events_backends[ACCOUNT][REGION].event_buses["default"].rules["pin"]
    assert (rule.state, rule.arn, rule.account_id, rule.region_name) == (
        "DISABLED",
        f"arn:aws:events:{REGION}:{ACCOUNT}:rule/pin",
        ACCOUNT,
        REGION,
    )
    assert rule.targets == [{"Id": "T", "Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:q"}]
    assert rule.event_pattern.matches_event({"source": "dxops.test", "detail": {}})

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="pin", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="pin", Key="k", Body=b"abc")
    bucket = s3_backends[ACCOUNT]["aws"].get_bucket("pin")
    key = bucket.keys["k"]
    assert (bucket.name, bucket.arn, bucket.region_name, bucket.is_versioned) == (
        "pin",
        "arn:aws:s3:::pin",
        REGION,
        False,
    )
    assert (key.name, key.size, key.etag.strip('"')) == ("k", 3, "900150983cd24fb0d6963f7d28e17f72")
