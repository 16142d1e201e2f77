"""Alarms evaluate against the metrics put, and their state changes reach EventBridge and SNS."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator

import boto3
import pytest

from localcloud import cloudwatch, events
from tests.localcloud.cloudwatch.support import (
    MINUTE,
    NAMESPACE,
    SERVICE,
    AlarmCloud,
    alarm_cloud,
    alarm_state,
    minute,
    reject,
)
from tests.localcloud.events.support import messages


@pytest.fixture
def local() -> Iterator[AlarmCloud]:
    with alarm_cloud() as cloud:
        yield cloud


def test_an_alarm_goes_ok_then_alarm_and_each_change_reaches_eventbridge_and_sns(local: AlarmCloud) -> None:
    t0 = minute()
    cloud = local.cloud
    name = cloud.physical_id("RejectedAlarm")
    assert alarm_state(name)["value"] == "INSUFFICIENT_DATA"  # as AWS creates it
    reject(1, t0 - MINUTE)
    reject(2, t0)
    cloudwatch.evaluate_alarms(now=t0)
    assert alarm_state(name)["value"] == "OK"

    reject(6, t0 + MINUTE)
    cloudwatch.evaluate_alarms(now=t0 + MINUTE)
    assert alarm_state(name)["value"] == "OK"  # 1 of the 2 datapoints needed
    reject(10, t0 + 2 * MINUTE)
    cloudwatch.evaluate_alarms(now=t0 + 2 * MINUTE)
    state = alarm_state(name)
    assert state["value"] == "ALARM"
    assert state["reason"].startswith("Threshold Crossed: 2 out of the last 2 datapoints [10.0 (")
    assert "were greater than the threshold (5.0) (minimum 2 datapoints for OK -> ALARM transition)" in state["reason"]
    assert json.loads(state["data"])["recentDatapoints"] == [6.0, 10.0]
    cloudwatch.evaluate_alarms(now=t0 + 2 * MINUTE)  # no change: nothing announced
    assert events.flush()

    changes = [m["Json"] for m in messages(cloud.physical_id("AlarmEventsQueue"), expected=2)]
    assert [(c["detail"]["previousState"]["value"], c["detail"]["state"]["value"]) for c in changes] == [
        ("INSUFFICIENT_DATA", "OK"),
        ("OK", "ALARM"),
    ]
    alarm_event = changes[1]
    assert (alarm_event["source"], alarm_event["detail-type"]) == ("aws.cloudwatch", "CloudWatch Alarm State Change")
    assert alarm_event["resources"] == [f"arn:aws:cloudwatch:eu-west-1:123456789012:alarm:{name}"]
    assert alarm_event["detail"]["alarmName"] == name
    assert alarm_event["detail"]["state"]["reason"] == state["reason"]
    [metric] = alarm_event["detail"]["configuration"]["metrics"]
    assert metric["metricStat"] == {
        "metric": {"namespace": NAMESPACE, "name": "RecordsRejected", "dimensions": {"service": "emf-probe"}},
        "period": 60,
        "stat": "Sum",
    }
    notifications = messages(local.notifications, expected=2)  # OKActions, then AlarmActions
    assert [n["Json"]["Subject"] for n in notifications] == [
        f'OK: "{name}" in EU (Ireland)',
        f'ALARM: "{name}" in EU (Ireland)',
    ]
    published = json.loads(notifications[1]["Json"]["Message"])
    assert (published["OldStateValue"], published["NewStateValue"]) == ("OK", "ALARM")
    assert published["Trigger"]["Threshold"] == 5.0


@pytest.mark.parametrize(
    ("treat", "expected", "reason"),
    [
        ("missing", "INSUFFICIENT_DATA", "Insufficient Data: 3 datapoints were unknown."),
        ("ignore", "ALARM", "set by the test"),  # the current state is kept
        ("breaching", "ALARM", "set by the test"),  # already ALARM: no change
        ("notBreaching", "OK", "3 missing datapoints were treated as [NonBreaching]."),
    ],
)
def test_treat_missing_data(local: AlarmCloud, treat: str, expected: str, reason: str) -> None:
    client = boto3.client("cloudwatch")
    client.put_metric_alarm(
        AlarmName=f"missing-{treat}",
        Namespace=NAMESPACE,
        MetricName="NothingHere",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=3,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData=treat,
    )
    client.set_alarm_state(AlarmName=f"missing-{treat}", StateValue="ALARM", StateReason="set by the test")
    cloudwatch.evaluate_alarms()
    state = alarm_state(f"missing-{treat}")
    assert state["value"] == expected
    assert state["reason"].endswith(reason)


def test_missing_breaching_datapoints_alarm_from_ok(local: AlarmCloud) -> None:
    t0 = minute()
    client = boto3.client("cloudwatch")
    client.put_metric_alarm(
        AlarmName="heartbeat",
        Namespace=NAMESPACE,
        MetricName="Heartbeat",
        Statistic="SampleCount",
        Period=60,
        EvaluationPeriods=2,
        Threshold=1,
        ComparisonOperator="LessThanThreshold",
        TreatMissingData="breaching",
    )
    client.put_metric_data(
        Namespace=NAMESPACE, MetricData=[{"MetricName": "Heartbeat", "Value": 1, "Timestamp": t0 - MINUTE}]
    )
    client.put_metric_data(Namespace=NAMESPACE, MetricData=[{"MetricName": "Heartbeat", "Value": 1, "Timestamp": t0}])
    cloudwatch.evaluate_alarms(now=t0)
    assert alarm_state("heartbeat")["value"] == "OK"
    cloudwatch.evaluate_alarms(now=t0 + 2 * MINUTE)  # two silent minutes
    state = alarm_state("heartbeat")
    assert state["value"] == "ALARM"
    assert "no datapoints were received for 2 periods" in state["reason"]


def test_m_out_of_n_with_a_gap(local: AlarmCloud) -> None:
    t0 = minute()
    client = boto3.client("cloudwatch")
    client.put_metric_alarm(
        AlarmName="two-of-three",
        Namespace=NAMESPACE,
        MetricName="Latency",
        Dimensions=SERVICE,
        Statistic="Maximum",
        Period=60,
        EvaluationPeriods=3,
        DatapointsToAlarm=2,
        Threshold=100,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )

    def put(value: float, at: dt.datetime, dimensions: list[dict[str, str]] = SERVICE) -> None:
        client.put_metric_data(
            Namespace=NAMESPACE,
            MetricData=[{"MetricName": "Latency", "Value": value, "Timestamp": at, "Dimensions": dimensions}],
        )

    put(150, t0 - 2 * MINUTE)
    put(20, t0 - 2 * MINUTE)
    put(500, t0, dimensions=[*SERVICE, {"Name": "source", "Value": "api"}])  # another metric on AWS
    cloudwatch.evaluate_alarms(now=t0)
    assert alarm_state("two-of-three")["value"] == "OK"  # 1 breaching of 2 present (a gap between)
    put(120, t0)
    [evaluation] = [e for e in cloudwatch.evaluate_alarms(now=t0) if e.alarm == "two-of-three"]
    assert (evaluation.previous, evaluation.state, evaluation.changed) == ("OK", "ALARM", True)
    assert [p.value for p in evaluation.datapoints] == [150.0, None, 120.0]


def test_the_set_alarm_state_api_announces_the_change_too(local: AlarmCloud) -> None:
    name = local.cloud.physical_id("RejectedAlarm")
    boto3.client("cloudwatch").set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="testing the actions")
    assert events.flush()
    [change] = messages(local.cloud.physical_id("AlarmEventsQueue"), expected=1)
    assert change["Json"]["detail"]["state"]["reason"] == "testing the actions"
    [notification] = messages(local.notifications, expected=1)
    assert json.loads(notification["Json"]["Message"])["NewStateReason"] == "testing the actions"


def test_updating_an_alarm_keeps_its_state_and_metric_math_is_not_evaluated(local: AlarmCloud) -> None:
    t0 = minute()
    client = boto3.client("cloudwatch")
    kwargs = {
        "AlarmName": "updated",
        "Namespace": NAMESPACE,
        "MetricName": "Any",
        "Statistic": "Sum",
        "Period": 60,
        "EvaluationPeriods": 1,
        "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanThreshold",
    }
    client.put_metric_alarm(**kwargs)
    client.set_alarm_state(AlarmName="updated", StateValue="ALARM", StateReason="set by the test")
    client.put_metric_alarm(**{**kwargs, "Threshold": 2.0})
    assert alarm_state("updated")["value"] == "ALARM"

    reject(90, t0)
    math_alarm = local.cloud.physical_id("RejectedRateAlarm")
    [evaluation] = [e for e in cloudwatch.evaluate_alarms(now=t0) if e.alarm == math_alarm]
    assert (evaluation.evaluated, evaluation.state) == (False, "INSUFFICIENT_DATA")


def test_the_evaluator_clock(local: AlarmCloud) -> None:
    name = local.cloud.physical_id("RejectedAlarm")
    now = dt.datetime.now(dt.UTC)  # the evaluator uses the real clock: the next minute is covered too
    for offset in (-1, 0, 1):
        reject(10, now + offset * MINUTE)
    evaluator = cloudwatch.start_alarm_evaluator(0.02)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and alarm_state(name)["value"] != "ALARM":
        time.sleep(0.02)
    cloudwatch.shutdown()
    assert evaluator.evaluations >= 1
    assert alarm_state(name)["value"] == "ALARM"
