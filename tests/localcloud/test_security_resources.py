"""The template's security resources on the local cloud (docs/security.md): the audit trail, the VPC
option (list parameters, the functions' guard outside a VPC), with the template's defaults and with
the parameters a private deployment sets."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from localcloud import events
from localcloud.cloud import LocalCloud
from localcloud.template import Resolver

SUBNETS, SECURITY_GROUP = "subnet-0a1b2c3d4e5f60718,subnet-1b2c3d4e5f6071829", "sg-0123456789abcdef0"
GUARD = "no-network-interfaces-outside-vpc"
SAGEMAKER_JOB_FUNCTIONS = ("PrepareTrainingRunFunction", "PrepareDeploymentFunction", "PrepareMonitoringRunFunction")


def test_list_parameters_are_lists_to_ref_as_in_cloudformation() -> None:
    resolver = Resolver(
        parameters={"Subnets": SUBNETS, "Groups": ""},
        pseudo={},
        conditions={"InVpc": {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "Groups"}]}, ""]}]}},
        list_parameters=frozenset({"Subnets", "Groups"}),
    )
    assert resolver.resolve({"Ref": "Subnets"}) == SUBNETS.split(",")
    assert resolver.resolve({"Fn::Join": [",", {"Ref": "Subnets"}]}) == SUBNETS
    assert resolver.resolve({"Ref": "Groups"}) == [""]  # CloudFormation's empty list parameter
    assert resolver.condition("InVpc") is False


def _role_policies(cloud: LocalCloud, role: str) -> dict[str, dict[str, Any]]:
    iam = boto3.client("iam")
    name = cloud.physical_id(role)
    return {
        policy: iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
        for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]
    }


def _actions(document: dict[str, Any] | str) -> set[str]:
    document = json.loads(document) if isinstance(document, str) else document
    statements = document["Statement"]
    return {
        action
        for s in (statements if isinstance(statements, list) else [statements])
        for action in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }


@pytest.mark.parametrize(
    "parameters",
    [{}, {"VpcSubnetIds": SUBNETS, "VpcSecurityGroupIds": SECURITY_GROUP}, {"CreateAuditTrail": "false"}],
    ids=["defaults", "in-a-vpc", "organisation-trail"],
)
def test_the_template_deploys_with_its_security_options(parameters: dict[str, str]) -> None:
    in_vpc = "VpcSubnetIds" in parameters
    creates_trail = parameters.get("CreateAuditTrail", "true") == "true"
    with LocalCloud.start(parameters=parameters) as cloud:
        # The functions that build SageMaker requests get the network; the others run as before.
        for name in SAGEMAKER_JOB_FUNCTIONS:
            environment = cloud.functions[name].environment
            assert environment["VPC_SUBNET_IDS"] == (SUBNETS if in_vpc else ""), name
            assert environment["VPC_SECURITY_GROUP_IDS"] == (SECURITY_GROUP if in_vpc else ""), name
        for name in cloud.functions:  # outside a VPC, no function may create network interfaces
            assert (GUARD in _role_policies(cloud, f"{name}Role")) is not in_vpc, name
        sagemaker = set().union(*(_actions(d) for d in _role_policies(cloud, "SageMakerExecutionRole").values()))
        assert ("ec2:CreateNetworkInterface" in sagemaker) is in_vpc

        trails = boto3.client("cloudtrail").describe_trails()["trailList"]
        assert ("AuditTrailBucketName" in cloud.outputs) is creates_trail
        if not creates_trail:
            assert trails == []
            return
        (trail,) = trails
        assert (trail["Name"], trail["S3BucketName"]) == ("dxops-dev-audit", cloud.outputs["AuditTrailBucketName"])
        assert trail["KmsKeyId"] == cloud.outputs["DataKeyArn"]
        assert trail["IsMultiRegionTrail"] and trail["LogFileValidationEnabled"] and trail["IncludeGlobalServiceEvents"]
        assert boto3.client("cloudtrail").get_trail_status(Name=trail["Name"])["IsLogging"] is True
        (selector,) = boto3.client("cloudtrail").get_event_selectors(TrailName=trail["Name"])["EventSelectors"]
        assert selector["IncludeManagementEvents"] is True and selector["ReadWriteType"] == "All"
        data = {d["Type"]: set(d["Values"]) for d in selector["DataResources"]}
        assert f"arn:aws:s3:::{cloud.outputs['RawBucketName']}/" in data["AWS::S3::Object"]
        assert len(data["AWS::S3::Object"]) == 5 and len(data["AWS::DynamoDB::Table"]) == 4
        lock = boto3.client("s3").get_object_lock_configuration(Bucket=trail["S3BucketName"])["ObjectLockConfiguration"]
        retention = lock["Rule"]["DefaultRetention"]
        assert (retention["Mode"], retention["Days"]) == ("COMPLIANCE", 2190)  # write-once for six years


def test_an_alert_for_a_run_that_ended_abnormally_carries_none_of_its_data(cloud: LocalCloud) -> None:
    # A stopped erasure's status-change event holds its input: the patient's pseudonym.
    sqs, sns = boto3.client("sqs"), boto3.client("sns")
    url = sqs.create_queue(QueueName="on-call")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(
        TopicArn=cloud.outputs["AlertsTopicArn"],
        Protocol="sqs",
        Endpoint=arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    machine = cloud.outputs["ErasureStateMachineArn"]
    execution = machine.replace(":stateMachine:", ":execution:") + ":er-0123456789abcdef0123456789abcdef"
    pseudonym = "ab" * 32
    detail = {
        "executionArn": execution,
        "stateMachineArn": machine,
        "name": "er-0123456789abcdef0123456789abcdef",
        "status": "TIMED_OUT",
        "startDate": 1795826154749,
        "stopDate": 1795829754749,
        "input": json.dumps({"erasure": {"patient_pseudonym": pseudonym}}),
        "output": None,
    }
    boto3.client("events").put_events(
        Entries=[
            {
                "Source": "aws.states",
                "DetailType": "Step Functions Execution Status Change",
                "Detail": json.dumps(detail),
            }
        ]
    )
    events.flush()
    (message,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert json.loads(message["Body"]) == {
        "alert": "run-ended-abnormally",
        "status": "TIMED_OUT",
        "stateMachineArn": machine,
        "executionArn": execution,
        "startDate": 1795826154749,
        "stopDate": 1795829754749,
    }
    assert pseudonym not in message["Body"]
