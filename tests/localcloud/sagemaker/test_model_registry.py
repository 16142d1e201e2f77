"""The Model Registry is moto's own: versioned packages in a group, approval, listing by status."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.localcloud.sagemaker.support import IMAGE, Env, started


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    with started() as started_env:
        yield started_env


def test_packages_are_versioned_approved_and_listed_by_status(env: Env) -> None:
    group = env.cloud.outputs["ModelPackageGroupName"]  # from the template's AWS::SageMaker::ModelPackageGroup
    described = env.sagemaker.describe_model_package_group(ModelPackageGroupName=group)
    assert (
        described["ModelPackageGroupArn"]
        == env.cloud.physical_id("ModelGroup")
        == env.cloud.outputs["ModelPackageGroupArn"]
    )
    arns = [
        env.sagemaker.create_model_package(
            ModelPackageGroupName=group,
            ModelPackageDescription=f"candidate {i}",
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={
                "Containers": [{"Image": IMAGE, "ModelDataUrl": env.uri(f"models/candidate-{i}/output/model.tar.gz")}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            CustomerMetadataProperties={"dataset_version": f"v{i}"},
        )["ModelPackageArn"]
        for i in (1, 2)
    ]
    assert [arn.rsplit("/", 1)[1] for arn in arns] == ["1", "2"]

    env.sagemaker.update_model_package(
        ModelPackageArn=arns[1], ModelApprovalStatus="Approved", ApprovalDescription="beats the champion"
    )

    approved = env.sagemaker.list_model_packages(ModelPackageGroupName=group, ModelApprovalStatus="Approved")
    assert [p["ModelPackageArn"] for p in approved["ModelPackageSummaryList"]] == [arns[1]]
    described = env.sagemaker.describe_model_package(ModelPackageName=arns[1])
    assert (described["ModelApprovalStatus"], described["ApprovalDescription"]) == ("Approved", "beats the champion")
    assert described["ModelPackageVersion"] == 2
    pending = env.sagemaker.list_model_packages(
        ModelPackageGroupName=group, ModelApprovalStatus="PendingManualApproval"
    )["ModelPackageSummaryList"]
    assert [p["ModelPackageArn"] for p in pending] == [arns[0]]
