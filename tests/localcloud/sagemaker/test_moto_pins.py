"""The moto internals localcloud.sagemaker patches or relies on, and the moto behaviours it replaces.

Each test fails loudly when a moto upgrade renames what the patches wrap, starts doing what they
add (UpdateEndpoint, StopTrainingJob), or changes what they work around (the Model Registry's
updates and tags, serverless validation, Experiments). The behaviour tests run with moto's own code
(`moto_originals()`), in-process.
"""

from __future__ import annotations

import datetime as dt
import inspect
import os
from collections.abc import Iterator
from typing import Any

import boto3
import moto
import pytest
from moto import mock_aws
from moto.core.responses import BaseResponse
from moto.sagemaker.models import (
    BaseObject,
    FakeEndpoint,
    FakeTrialComponent,
    Model,
    ModelPackage,
    SageMakerModelBackend,
    sagemaker_backends,
)
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemakermetrics.models import SageMakerMetricsBackend
from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

from localcloud import sagemaker, sagemaker_events
from localcloud.cloud import LOCAL_CREDENTIALS

ROLE = "arn:aws:iam::123456789012:role/x"


def test_moto_is_the_version_the_patches_were_written_for() -> None:
    assert moto.__version__ == "5.2.5"


RESPONSES = (SageMakerResponse, SageMakerRuntimeResponse)


@pytest.mark.parametrize(
    ("owner", "name"), [(owner, name) for owner, name, _ in sagemaker._PATCHES if owner in RESPONSES]
)
def test_patched_actions_are_response_methods_without_arguments(owner: type, name: str) -> None:
    sagemaker.install()
    original = sagemaker._ORIGINALS[(owner, name)]
    if name in ("update_endpoint", "stop_training_job"):
        assert original is sagemaker._MISSING, f"moto now implements {name}: review localcloud.sagemaker"
    else:
        assert inspect.isfunction(original)
        assert list(inspect.signature(original).parameters) == ["self"]
    assert getattr(owner, name) is dict(((o, n), f) for o, n, f in sagemaker._PATCHES)[(owner, name)]


@pytest.mark.parametrize(("owner", "name", "replacement"), [p for p in sagemaker._PATCHES if p[0] not in RESPONSES])
def test_patched_backend_methods_keep_motos_signature(owner: type, name: str, replacement: Any) -> None:
    # Response methods call these with moto's argument names: the replacements take the same ones.
    sagemaker.install()
    original = sagemaker._ORIGINALS[(owner, name)]
    assert inspect.isfunction(original), f"moto no longer has {owner.__name__}.{name}"
    assert list(inspect.signature(original).parameters) == list(inspect.signature(replacement).parameters)
    assert getattr(owner, name) is replacement


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
    assert _backend().training_jobs["j"].response_object["TrainingJobArn"] == job["TrainingJobArn"]  # events
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


# --- Model Registry ---------------------------------------------------------------------------------


def _backend() -> Any:
    return sagemaker_backends["123456789012"]["eu-west-1"]


def _package(raw_moto: Any, **extra: Any) -> str:
    raw_moto.create_model_package_group(ModelPackageGroupName="g")
    return str(
        raw_moto.create_model_package(
            ModelPackageGroupName="g",
            InferenceSpecification={
                "Containers": [{"Image": "i", "ModelDataUrl": "s3://b/m.tar.gz"}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            **extra,
        )["ModelPackageArn"]
    )


def test_moto_leaves_approval_empty_and_a_metadata_only_update_clears_it(raw_moto: Any) -> None:
    arn = _package(raw_moto, CustomerMetadataProperties={"a": "1"})
    assert "ModelApprovalStatus" not in raw_moto.describe_model_package(ModelPackageName=arn)  # AWS: Pending...
    raw_moto.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved", ApprovalDescription="ok")
    raw_moto.update_model_package(ModelPackageArn=arn, CustomerMetadataProperties={"b": "2"})
    described = raw_moto.describe_model_package(ModelPackageName=arn)
    assert "ModelApprovalStatus" not in described  # AWS keeps the approval
    assert "ApprovalDescription" not in described
    assert described["CustomerMetadataProperties"] == {"b": "2"}  # AWS merges by key


def test_moto_cannot_find_model_packages_by_arn_for_tags(raw_moto: Any) -> None:
    arn = _package(raw_moto)
    with pytest.raises(ValueError, match="too many values to unpack"):
        raw_moto.add_tags(ResourceArn=arn, Tags=[{"Key": "k", "Value": "v"}])
    with pytest.raises(ValueError, match="too many values to unpack"):
        raw_moto.list_tags(ResourceArn=arn)


def test_model_package_internals_the_patches_and_events_use(raw_moto: Any) -> None:
    arn = _package(raw_moto, ModelApprovalStatus="Approved")
    package = _backend().describe_model_package(arn)
    assert isinstance(package, ModelPackage)
    assert _backend().model_packages[arn] is package  # CreateModelPackage's answer names its key
    detail = sagemaker_events.model_package_detail(package)  # reads moto's attributes
    assert (detail["ModelPackageArn"], detail["ModelPackageName"], detail["ModelApprovalStatus"]) == (
        arn,
        "g/1",
        "Approved",
    )
    assert (package.model_package_version, package.tags) == (1, None)  # None: the tag lookup makes it a list
    assert list(inspect.signature(ModelPackage.set_model_approval_status).parameters) == [
        "self",
        "model_approval_status",
    ]
    assert list(inspect.signature(ModelPackage.add_additional_inference_specifications).parameters) == [
        "self",
        "additional_inference_specifications_to_add",
    ]
    assert list(inspect.signature(ModelPackage.modifications_done).parameters) == ["self"]


# --- Serverless endpoint configurations --------------------------------------------------------------


def test_moto_accepts_serverless_configurations_that_aws_refuses(raw_moto: Any) -> None:
    raw_moto.create_model(ModelName="m", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "image"})
    serverless = {"ModelName": "m", "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 1}}
    raw_moto.create_endpoint_config(
        EndpointConfigName="capture",
        ProductionVariants=[{**serverless, "VariantName": "A"}],
        DataCaptureConfig={
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": "s3://b/capture",
            "CaptureOptions": [{"CaptureMode": "Input"}],
        },
    )
    raw_moto.create_endpoint_config(
        EndpointConfigName="two",
        ProductionVariants=[{**serverless, "VariantName": "A"}, {**serverless, "VariantName": "B"}],
    )
    described = raw_moto.describe_endpoint_config(EndpointConfigName="capture")
    assert described["ProductionVariants"][0]["ServerlessConfig"]["MemorySizeInMB"] == 2048
    assert described["DataCaptureConfig"]["DestinationS3Uri"] == "s3://b/capture"  # what the capture reads


# --- Experiments ---------------------------------------------------------------------------------------


def test_moto_batch_put_metrics_needs_a_step_and_keeps_one_value_per_step(raw_moto: Any) -> None:
    metrics = boto3.client("sagemaker-metrics")
    raw_moto.create_trial_component(TrialComponentName="c")
    now = dt.datetime.now(dt.UTC)
    with pytest.raises(KeyError, match="Step"):  # optional on AWS
        metrics.batch_put_metrics(
            TrialComponentName="c", MetricData=[{"MetricName": "m", "Timestamp": now, "Value": 1}]
        )
    for value in (1.0, 2.0):
        metrics.batch_put_metrics(
            TrialComponentName="c", MetricData=[{"MetricName": "n", "Timestamp": now, "Step": 0, "Value": value}]
        )
    described = raw_moto.describe_trial_component(TrialComponentName="c")
    [summary] = [m for m in described["Metrics"] if m["MetricName"] == "n"]
    assert summary["Count"] == 1  # AWS counts both
    # What the replacement feeds moto's summary: the last value at max(keys), the time at "Timestamp".
    source = inspect.getsource(FakeTrialComponent.gen_metrics_response_object)
    assert "max(list(metrics_steps.keys()))" in source
    assert '["Timestamp"]' in source
    assert "self.sagemaker_backend = sagemaker_backends" in inspect.getsource(SageMakerMetricsBackend.__init__)


def test_moto_update_trial_component_replaces_the_parameters(raw_moto: Any) -> None:
    raw_moto.create_trial_component(TrialComponentName="c", Parameters={"a": {"NumberValue": 1}})
    raw_moto.update_trial_component(TrialComponentName="c", Parameters={"b": {"NumberValue": 2}})
    assert raw_moto.describe_trial_component(TrialComponentName="c")["Parameters"] == {"b": {"NumberValue": 2}}


def test_moto_lists_trial_components_of_every_experiment(raw_moto: Any) -> None:
    for name in ("e1", "e2"):
        raw_moto.create_experiment(ExperimentName=name)
        raw_moto.create_trial(TrialName=f"t-{name}", ExperimentName=name)
        raw_moto.create_trial_component(TrialComponentName=f"c-{name}")
        raw_moto.associate_trial_component(TrialName=f"t-{name}", TrialComponentName=f"c-{name}")
    listed = raw_moto.list_trial_components(ExperimentName="e1")["TrialComponentSummaries"]
    assert sorted(s["TrialComponentName"] for s in listed) == ["c-e1", "c-e2"]  # AWS: c-e1 only
    trial = _backend().trials["t-e1"]
    assert (trial.trial_components, trial.experiment_name) == (["c-e1"], "e1")  # what the replacement reads
    component = _backend().trial_components["c-e1"]
    assert component.sources == []  # SourceArn filters read it


# --- Events --------------------------------------------------------------------------------------------


def test_endpoint_and_training_job_internals_the_events_use(raw_moto: Any) -> None:
    raw_moto.create_model(ModelName="m", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "image"})
    variant = {"VariantName": "A", "ModelName": "m", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
    raw_moto.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[variant])
    raw_moto.create_endpoint(EndpointName="e", EndpointConfigName="c")
    detail = sagemaker_events.endpoint_detail(_backend().endpoints["e"])
    assert (detail["EndpointName"], detail["EndpointConfigName"], detail["EndpointStatus"]) == ("e", "c", "IN_SERVICE")
    assert isinstance(detail["CreationTime"], dt.datetime)
    assert detail["ProductionVariants"][0]["VariantName"] == "A"
