"""The moto 5.2.5 internals localcloud.cloudwatch wraps or reads, and the moto behaviours it works
around. Each test fails when an upgrade changes one, so that the patch is revisited."""

from __future__ import annotations

import datetime as dt
import inspect
import os
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws
from moto.cloudwatch.models import MetricAggregatedDatum, MetricDatum, cloudwatch_backends

from localcloud import cloudwatch, events
from localcloud.cloud import LOCAL_CREDENTIALS

ACCOUNT, REGION = "123456789012", "eu-west-1"
ALARM = {
    "AlarmName": "pin",
    "Namespace": "Pin",
    "MetricName": "M",
    "Dimensions": [{"Name": "service", "Value": "s"}],
    "Statistic": "Sum",
    "Period": 60,
    "EvaluationPeriods": 1,
    "Threshold": 1.0,
    "ComparisonOperator": "GreaterThanThreshold",
}


@pytest.fixture
def aws() -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(LOCAL_CREDENTIALS)
    try:
        with mock_aws():
            cloudwatch.install()
            yield
    finally:
        cloudwatch.shutdown()
        events.shutdown()
        os.environ.clear()
        os.environ.update(saved)


def test_the_wrapped_methods_keep_moto_signatures() -> None:
    assert list(inspect.signature(cloudwatch._MOTO_SET_ALARM_STATE).parameters) == [
        "self",
        "alarm_name",
        "reason",
        "reason_data",
        "state_value",
    ]
    assert list(inspect.signature(cloudwatch._MOTO_PUT_METRIC_ALARM).parameters)[:2] == ["self", "name"]


def test_moto_starts_alarms_in_ok_and_never_evaluates_them(aws: None) -> None:
    backend = cloudwatch_backends[ACCOUNT][REGION]
    alarm = cloudwatch._MOTO_PUT_METRIC_ALARM(
        backend, "moto-own", "Pin", "M", "GreaterThanThreshold", 1, 60, 1.0, "Sum", "", [], []
    )
    assert (alarm.state_value, alarm.state_reason) == ("OK", "Unchecked: Initial alarm creation")
    client = boto3.client("cloudwatch")
    client.put_metric_alarm(**ALARM)
    client.put_metric_data(
        Namespace="Pin", MetricData=[{"MetricName": "M", "Value": 5, "Dimensions": ALARM["Dimensions"]}]
    )
    [described] = client.describe_alarms(AlarmNames=["pin"])["MetricAlarms"]
    assert described["StateValue"] == "INSUFFICIENT_DATA"  # ours at creation; moto evaluated nothing
    assert cloudwatch.evaluate_alarms()[-1].state == "ALARM"


def test_the_moto_models_read_here(aws: None) -> None:
    client = boto3.client("cloudwatch")
    stamp = dt.datetime(2026, 11, 27, 11, 0, 30, tzinfo=dt.UTC)
    dimensions = [{"Name": "service", "Value": "s"}]
    client.put_metric_data(
        Namespace="Pin",
        MetricData=[
            {"MetricName": "M", "Value": 2, "Unit": "Count", "Timestamp": stamp, "Dimensions": dimensions},
            {"MetricName": "M", "Values": [1, 3], "Counts": [1, 2], "Timestamp": stamp},
            {
                "MetricName": "M",
                "StatisticValues": {"SampleCount": 4, "Sum": 10, "Minimum": 1, "Maximum": 4},
                "Timestamp": stamp,
            },
        ],
    )
    backend = cloudwatch_backends[ACCOUNT][REGION]
    assert backend.account_id == ACCOUNT
    single, *values, aggregated = backend.metric_data
    assert isinstance(single, MetricDatum) and isinstance(aggregated, MetricAggregatedDatum)
    assert (single.namespace, single.name, single.value, single.unit) == ("Pin", "M", 2.0, "Count")
    assert single.timestamp == dt.datetime(2026, 11, 27, 11, 0, 30)  # naive UTC
    assert [(d.name, d.value) for d in single.dimensions] == [("service", "s")]
    assert [v.value for v in values] == [1.0, 3.0, 3.0]  # Values x Counts
    assert (aggregated.sum, aggregated.min, aggregated.max, aggregated.sample_count) == (10.0, 1.0, 4.0, 4.0)
    assert backend.get_all_metrics()[:5] == backend.metric_data

    client.put_metric_alarm(**ALARM, DatapointsToAlarm=1, TreatMissingData="ignore", ExtendedStatistic="p90")
    alarm = backend.alarms["pin"]
    read = [
        "alarm_arn",
        "region_name",
        "name",
        "namespace",
        "metric_name",
        "metric_data_queries",
        "comparison_operator",
        "evaluation_periods",
        "datapoints_to_alarm",
        "period",
        "threshold",
        "statistic",
        "extended_statistic",
        "description",
        "dimensions",
        "alarm_actions",
        "ok_actions",
        "insufficient_data_actions",
        "unit",
        "actions_enabled",
        "treat_missing_data",
        "evaluate_low_sample_count_percentile",
        "threshold_metric_id",
        "rule",
        "state_value",
        "state_reason",
        "state_reason_data",
        "state_updated_timestamp",
        "configuration_updated_timestamp",
        "history",
    ]
    assert [name for name in read if not hasattr(alarm, name)] == []
    assert (alarm.period, alarm.threshold, alarm.treat_missing_data, alarm.datapoints_to_alarm) == (
        60,
        1.0,
        "ignore",
        1,
    )

    client.put_metric_alarm(
        AlarmName="math",
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanThreshold",
        Metrics=[{"Id": "e", "Expression": "m * 2", "Label": "double", "ReturnData": True}],
    )
    [query] = backend.alarms["math"].metric_data_queries
    assert (query.id, query.expression, query.label, query.return_data) == ("e", "m * 2", "double", True)


def test_moto_put_dashboard_checks_only_that_the_body_is_json(aws: None) -> None:
    """CloudWatch refuses a body without a "widgets" list; moto does not, so the dashboard
    provisioner checks it. GetDashboard returns the body verbatim."""
    client = boto3.client("cloudwatch", region_name=REGION)
    client.put_dashboard(DashboardName="pin", DashboardBody='{"start": "-PT6H"}')
    assert client.get_dashboard(DashboardName="pin")["DashboardBody"] == '{"start": "-PT6H"}'
    with pytest.raises(client.exceptions.DashboardInvalidInputError):
        client.put_dashboard(DashboardName="pin", DashboardBody="{not json")
