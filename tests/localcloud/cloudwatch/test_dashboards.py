"""AWS::CloudWatch::Dashboard: the template's dashboard is created with its body as Fn::Sub left
it, and a body CloudWatch would refuse fails the deployment."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from localcloud import cloudwatch
from localcloud.cloud import LOCAL_CREDENTIALS
from localcloud.provision import Context
from tests.localcloud.cloudwatch.support import alarm_cloud

REGION = "eu-west-1"


def test_the_templates_dashboard_is_created_with_its_substituted_body() -> None:
    with alarm_cloud() as local:
        name = local.cloud.physical_id("OperationsDashboard")
        alarm_arn = local.cloud.stack.resolver.get_att("RejectedAlarm", "Arn")
        assert name.endswith("-operations")

        dashboard = boto3.client("cloudwatch").get_dashboard(DashboardName=name)

    assert dashboard["DashboardName"] == name
    assert dashboard["DashboardArn"].endswith(f":dashboard/{name}")
    body = json.loads(dashboard["DashboardBody"])
    assert [widget["type"] for widget in body["widgets"]] == ["metric", "alarm"]
    assert body["widgets"][0]["properties"]["region"] == REGION
    assert body["widgets"][1]["properties"]["alarms"] == [alarm_arn]


@pytest.fixture
def ctx() -> Iterator[Context]:
    saved = dict(os.environ)
    os.environ.update(LOCAL_CREDENTIALS)
    try:
        with mock_aws():
            yield Context(stack="dxops-local", region=REGION)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_a_dashboard_without_a_name_gets_a_generated_one(ctx: Context) -> None:
    body = json.dumps({"widgets": []})
    physical = cloudwatch.cloudwatch_dashboard(ctx, "Ops", {"DashboardBody": body})
    assert physical.ref == ctx.name("Ops", max_length=255)
    assert boto3.client("cloudwatch").get_dashboard(DashboardName=physical.ref)["DashboardBody"] == body


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "Body is invalid JSON"),
        ("[]", "Should be object"),
        ('{"start": "-PT6H"}', "Should have required property 'widgets'"),
        ('{"widgets": {}}', "Should be array"),
    ],
)
def test_a_body_cloudwatch_refuses_fails_with_invalid_parameter_input(ctx: Context, body: str, message: str) -> None:
    with pytest.raises(ClientError) as raised:
        cloudwatch.cloudwatch_dashboard(ctx, "Ops", {"DashboardName": "ops", "DashboardBody": body})
    assert raised.value.response["Error"]["Code"] == "InvalidParameterInput"
    assert message in raised.value.response["Error"]["Message"]
    assert boto3.client("cloudwatch").list_dashboards()["DashboardEntries"] == []
