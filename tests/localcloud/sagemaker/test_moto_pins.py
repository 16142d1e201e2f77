"""The moto internals localcloud.sagemaker patches or relies on, and the moto behaviours it replaces.

Each test fails loudly when a moto upgrade renames what the patches wrap, starts doing what they
add (UpdateEndpoint, StopTrainingJob), or changes what they work around. The behaviour tests run
with moto's own code (`moto_originals()`), in-process.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from typing import Any

import boto3
import moto
import pytest
from moto import mock_aws
from moto.core.responses import BaseResponse
from moto.sagemaker.models import BaseObject, FakeEndpoint, Model, SageMakerModelBackend
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

from localcloud import sagemaker
from localcloud.cloud import LOCAL_CREDENTIALS

ROLE = "arn:aws:iam::123456789012:role/x"


def test_moto_is_the_version_the_patches_were_written_for() -> None:
    assert moto.__version__ == "5.2.5"


@pytest.mark.parametrize(("owner", "name"), [(owner, name) for owner, name, _ in sagemaker._PATCHES])
def test_patched_actions_are_response_methods_without_arguments(owner: type, name: str) -> None:
    sagemaker.install()
    original = sagemaker._ORIGINALS[(owner, name)]
    if name in ("update_endpoint", "stop_training_job"):
        assert original is sagemaker._MISSING, f"moto now implements {name}: review localcloud.sagemaker"
    else:
        assert inspect.isfunction(original)
        assert list(inspect.signature(original).parameters) == ["self"]
    assert getattr(owner, name) is dict(((o, n), f) for o, n, f in sagemaker._PATCHES)[(owner, name)]


def test_moto_dispatches_actions_to_response_methods_by_name() -> None:
    # New actions (UpdateEndpoint, StopTrainingJob) are methods added to the response class.
    assert "method_names_from_class(self.__class__)" in inspect.getsource(BaseResponse.call_action)
    assert inspect.isfunction(SageMakerResponse._get_param)
    sagemaker.install()
    # Request bodies reach InvokeEndpoint as bytes only with use_raw_body (moto's default decodes them).
    assert sagemaker._ORIGINALS[(SageMakerRuntimeResponse, "use_raw_body")] is False
    assert SageMakerRuntimeResponse.use_raw_body is True
    assert "self.raw_body = self.body" in inspect.getsource(BaseResponse.setup_class)


def test_backend_and_resource_internals_the_patches_use() -> None:
    backend = SageMakerModelBackend("eu-west-1", "123456789012")
    for store in ("training_jobs", "processing_jobs", "endpoints", "endpoint_configs"):
        assert getattr(backend, store) == {}
    assert list(inspect.signature(SageMakerModelBackend.describe_endpoint_config).parameters) == [
        "self",
        "endpoint_config_name",
    ]
    assert list(inspect.signature(SageMakerModelBackend.describe_model).parameters) == ["self", "model_name"]
    model_class: Any = Model  # moto's CloudFormationModel is abstract to type checkers
    model = model_class("123456789012", "eu-west-1", "m", ROLE, {"Image": "i"}, {})
    assert (model.primary_container, model.containers) == ({"Image": "i"}, [])
    assert list(inspect.signature(FakeEndpoint._process_production_variants).parameters) == [
        "self",
        "production_variants",
    ]
    # Status and FailureReason reach Describe* as attributes turned into PascalCase keys.
    resource: Any = BaseObject()
    resource.failure_reason = "x"
    resource.last_deployment_config = {}
    assert resource.gen_response_object() == {"FailureReason": "x", "LastDeploymentConfig": {}}


@pytest.fixture
def raw_moto() -> Iterator[Any]:
    saved = dict(os.environ)
    os.environ.update(LOCAL_CREDENTIALS)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    try:
        with sagemaker.moto_originals(), mock_aws():
            yield boto3.client("sagemaker")
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_moto_completes_training_jobs_at_once_with_fake_metrics(raw_moto: Any) -> None:
    raw_moto.create_training_job(
        TrainingJobName="j",
        AlgorithmSpecification={
            "TrainingImage": "image",
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "acc", "Regex": "acc=(\\S+)"}],
        },
        RoleArn=ROLE,
        OutputDataConfig={"S3OutputPath": "s3://b/out"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        StoppingCondition={"MaxRuntimeInSeconds": 60},
        Environment={"STAGE": "test"},
    )
    job = raw_moto.describe_training_job(TrainingJobName="j")
    assert job["TrainingJobStatus"] == "Completed"
    assert job["AlgorithmSpecification"]["MetricDefinitions"][0]["Name"] == "test:dcg"  # ours are replaced
    assert job["FinalMetricDataList"][0]["MetricName"] == "train:progress"
    assert "Environment" not in job  # the response layer drops it: the patch reads the request
    with pytest.raises(NotImplementedError):
        raw_moto.stop_training_job(TrainingJobName="j")


def test_moto_completes_processing_jobs_at_once_without_their_environment(raw_moto: Any) -> None:
    raw_moto.create_processing_job(
        ProcessingJobName="p",
        AppSpecification={"ImageUri": "image", "ContainerEntrypoint": ["python3", "x.py"]},
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}},
        RoleArn=ROLE,
        Environment={"STAGE": "test"},
    )
    job = raw_moto.describe_processing_job(ProcessingJobName="p")
    assert job["ProcessingJobStatus"] == "Completed"
    assert "Environment" not in job


def test_moto_endpoints_are_in_service_at_once_and_cannot_be_updated(raw_moto: Any) -> None:
    raw_moto.create_model(ModelName="m", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "image"})
    variant = {"VariantName": "AllTraffic", "ModelName": "m", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
    raw_moto.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[variant])
    raw_moto.create_endpoint(EndpointName="e", EndpointConfigName="c")
    assert raw_moto.describe_endpoint(EndpointName="e")["EndpointStatus"] == "InService"
    raw_moto.create_endpoint(EndpointName="e", EndpointConfigName="c")  # AWS refuses a second one; moto not
    with pytest.raises(NotImplementedError):
        raw_moto.update_endpoint(EndpointName="e", EndpointConfigName="c")


def test_moto_invoke_endpoint_answers_a_canned_body_and_decodes_bodies_as_text(raw_moto: Any) -> None:
    runtime = boto3.client("sagemaker-runtime")
    answer = runtime.invoke_endpoint(EndpointName="anything", Body=b"{}", ContentType="application/json")
    assert answer["Body"].read() == b"body"
    with pytest.raises(UnicodeDecodeError):  # why the patch sets use_raw_body
        runtime.invoke_endpoint(EndpointName="anything", Body=bytes(range(256)), ContentType="application/x-npy")
