"""The EventBridge events SageMaker sends (default bus, source aws.sagemaker) reach the template's
rules: model package state changes on every create and update, as on AWS (a rule on Approved also
fires for a later metadata-only update of an approved package), training job and endpoint state
changes (in-process moto)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.localcloud.events.support import messages
from tests.localcloud.sagemaker.support import (
    IMAGE,
    Env,
    deploy_config,
    model_artifact,
    started,
    training_request,
    unique,
    wait_endpoint,
    wait_training,
)

EVENT_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    with started() as started_env:
        yield started_env


@pytest.fixture
def queues(env: Env) -> Iterator[tuple[str, str]]:
    """(every aws.sagemaker event, approved model packages), empty before and after each test."""
    urls = env.cloud.outputs["SageMakerEventsQueueUrl"], env.cloud.outputs["ApprovedQueueUrl"]
    for url in urls:
        messages(url)
    yield urls
    for url in urls:
        messages(url)


def events_of(url: str, resource: str, *, expected: int | None = None, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The events about one resource on a queue, in order; waits for `expected` of them."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        found += [m["Json"] for m in messages(url) if resource in m["Json"]["resources"]]
        if expected is None or len(found) >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if expected is not None:
        assert len(found) == expected, [(e["detail-type"], e["detail"]) for e in found]
    return found


def register(env: Env, **extra: Any) -> str:
    return str(
        env.sagemaker.create_model_package(
            ModelPackageGroupName=env.cloud.outputs["ModelPackageGroupName"],
            InferenceSpecification={
                "Containers": [{"Image": IMAGE, "ModelDataUrl": env.uri(f"models/{unique('m')}/model.tar.gz")}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            **extra,
        )["ModelPackageArn"]
    )


def test_a_rule_on_approved_fires_for_the_approval_and_for_a_later_metadata_only_update(
    env: Env, queues: tuple[str, str]
) -> None:
    every, approved = queues
    arn = register(env, ModelApprovalStatus="PendingManualApproval", CustomerMetadataProperties={"dataset": "v7"})
    assert events_of(approved, arn) == []  # a pending candidate does not match the rule

    env.sagemaker.update_model_package(
        ModelPackageArn=arn, ModelApprovalStatus="Approved", ApprovalDescription="beats the champion"
    )
    env.sagemaker.update_model_package(ModelPackageArn=arn, CustomerMetadataProperties={"deployed": "yes"})

    approval, metadata_only = (e["detail"] for e in events_of(approved, arn, expected=2))
    assert approval["ModelApprovalStatus"] == metadata_only["ModelApprovalStatus"] == "Approved"
    assert approval["CustomerMetadataProperties"] == {"dataset": "v7"}
    # The update kept the approval and merged the metadata, as on AWS (moto cleared what was left out).
    assert metadata_only["CustomerMetadataProperties"] == {"dataset": "v7", "deployed": "yes"}
    assert metadata_only["ApprovalDescription"] == "beats the champion"
    described = env.sagemaker.describe_model_package(ModelPackageName=arn)
    assert (described["ModelApprovalStatus"], described["ApprovalDescription"]) == ("Approved", "beats the champion")
    assert described["CustomerMetadataProperties"] == {"dataset": "v7", "deployed": "yes"}
    statuses = [e["detail"]["ModelApprovalStatus"] for e in events_of(every, arn, expected=3)]
    assert statuses == ["PendingManualApproval", "Approved", "Approved"]


def test_the_model_package_event_has_the_shape_aws_sends(env: Env, queues: tuple[str, str]) -> None:
    every, _ = queues
    group = env.cloud.outputs["ModelPackageGroupName"]
    metrics = {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": env.uri("eval.json")}}}
    arn = register(
        env,
        ModelPackageDescription="candidate",
        ModelMetrics=metrics,
        CustomerMetadataProperties={"dataset": "v8"},
    )  # no ModelApprovalStatus: a versioned package is PendingManualApproval

    [event] = events_of(every, arn, expected=1)

    assert {k: event[k] for k in ("version", "source", "detail-type", "account", "region", "resources")} == {
        "version": "0",
        "source": "aws.sagemaker",
        "detail-type": "SageMaker Model Package State Change",
        "account": "123456789012",
        "region": "eu-west-1",
        "resources": [arn],
    }
    assert EVENT_TIME.fullmatch(event["time"])
    detail = event["detail"]
    version = int(arn.rsplit("/", 1)[1])
    assert set(detail) == {
        "ModelPackageGroupName",
        "ModelPackageVersion",
        "ModelPackageArn",
        "ModelPackageName",
        "ModelPackageDescription",
        "CreationTime",
        "InferenceSpecification",
        "ModelPackageStatus",
        "ModelPackageStatusDetails",
        "CertifyForMarketplace",
        "ModelApprovalStatus",
        "ModelMetrics",
        "CustomerMetadataProperties",
    }
    assert (detail["ModelPackageGroupName"], detail["ModelPackageVersion"]) == (group, version)
    assert (detail["ModelPackageArn"], detail["ModelPackageName"]) == (arn, f"{group}/{version}")
    assert isinstance(detail["CreationTime"], int)  # epoch milliseconds
    assert (detail["ModelApprovalStatus"], detail["ModelPackageStatus"]) == ("PendingManualApproval", "Completed")
    assert detail["ModelMetrics"] == metrics
    assert detail["InferenceSpecification"]["SupportedContentTypes"] == ["application/json"]
    described = env.sagemaker.describe_model_package(ModelPackageName=arn)
    assert described["ModelApprovalStatus"] == "PendingManualApproval"


def test_every_update_sends_an_event_a_rejection_and_a_re_approval_too(env: Env, queues: tuple[str, str]) -> None:
    every, approved = queues
    arn = register(env, ModelApprovalStatus="Approved")
    env.sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")  # re-approval
    env.sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Rejected", ApprovalDescription="drift")

    sent = [e["detail"] for e in events_of(every, arn, expected=3)]
    assert [d["ModelApprovalStatus"] for d in sent] == ["Approved", "Approved", "Rejected"]
    assert "LastModifiedTime" not in sent[0]  # only updates have one
    assert isinstance(sent[2]["LastModifiedTime"], int)
    assert sent[2]["ApprovalDescription"] == "drift"
    assert len(events_of(approved, arn)) == 2


def test_training_jobs_and_endpoints_send_their_state_changes(env: Env, queues: tuple[str, str]) -> None:
    every, _ = queues
    name = unique("train")
    env.sagemaker.create_training_job(**training_request(env, name))
    job = wait_training(env, name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    started_event, ended = events_of(every, job["TrainingJobArn"], expected=2)
    assert started_event["detail-type"] == ended["detail-type"] == "SageMaker Training Job State Change"
    assert [started_event["detail"]["TrainingJobStatus"], ended["detail"]["TrainingJobStatus"]] == [
        "InProgress",
        "Completed",
    ]
    detail = ended["detail"]
    assert detail["TrainingJobName"] == name
    assert detail["SecondaryStatus"] == "Completed"
    assert detail["ModelArtifacts"] == job["ModelArtifacts"]
    assert detail["HyperParameters"]["epochs"] == "3"
    assert isinstance(detail["TrainingEndTime"], int)
    assert detail["Tags"] == {}

    endpoint = unique("endpoint")
    env.sagemaker.create_endpoint(
        EndpointName=endpoint, EndpointConfigName=deploy_config(env, model_artifact(env, "m/v1.tar.gz", "v1"))
    )
    arn = wait_endpoint(env, endpoint)["EndpointArn"]
    new_config = deploy_config(env, model_artifact(env, "m/v2.tar.gz", "v2"))
    env.sagemaker.update_endpoint(EndpointName=endpoint, EndpointConfigName=new_config)
    assert wait_endpoint(env, endpoint)["EndpointStatus"] == "InService"
    env.sagemaker.delete_endpoint(EndpointName=endpoint)

    changes = events_of(every, arn, expected=5)
    assert {e["detail-type"] for e in changes} == {"SageMaker Endpoint State Change"}
    assert [e["detail"]["EndpointStatus"] for e in changes] == [
        "CREATING",
        "IN_SERVICE",
        "UPDATING",
        "IN_SERVICE",
        "DELETING",
    ]
    assert changes[3]["detail"]["EndpointConfigName"] == new_config
    assert changes[1]["detail"]["EndpointName"] == endpoint
    assert changes[1]["detail"]["ProductionVariants"][0]["VariantName"] == "AllTraffic"
