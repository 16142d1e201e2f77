"""Serverless inference: a production variant with ServerlessConfig deploys as one local model server,
serves, and updates; what AWS refuses for serverless endpoints is refused (in-process moto)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from localcloud import sagemaker
from tests.localcloud.sagemaker.support import (
    IMAGE,
    ROLE,
    Env,
    deploy_config,
    model_artifact,
    predict,
    started,
    unique,
    wait_endpoint,
)

ADULT = {"age": 70}


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    with started() as started_env:
        yield started_env


def serverless_variant(env: Env, version: str, memory: int = 2048, concurrency: int = 5) -> dict[str, Any]:
    model = unique("model")
    env.sagemaker.create_model(
        ModelName=model,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": IMAGE,
            "ModelDataUrl": model_artifact(env, f"artifacts/{unique(version)}/model.tar.gz", version),
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"},
        },
    )
    return {
        "VariantName": "AllTraffic",
        "ModelName": model,
        "ServerlessConfig": {"MemorySizeInMB": memory, "MaxConcurrency": concurrency},
    }


def serverless_config(env: Env, version: str, memory: int = 2048) -> str:
    name = unique("serverless")
    env.sagemaker.create_endpoint_config(
        EndpointConfigName=name, ProductionVariants=[serverless_variant(env, version, memory)]
    )
    return name


def endpoint_for(env: Env, config: str) -> str:
    name = unique("endpoint")
    env.sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=config)
    described = wait_endpoint(env, name)
    assert described["EndpointStatus"] == "InService", described.get("FailureReason")
    return name


def test_a_serverless_endpoint_deploys_one_model_server_and_serves(env: Env) -> None:
    endpoint = endpoint_for(env, serverless_config(env, "v1"))

    assert predict(env, endpoint, ADULT) == {"predictions": [{"label": "rare", "model": "v1"}]}
    [variant] = env.sagemaker.describe_endpoint(EndpointName=endpoint)["ProductionVariants"]
    assert variant["CurrentServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    assert "CurrentInstanceCount" not in variant
    assert len(sagemaker.model_servers(endpoint)) == 1


def test_a_serverless_endpoint_updates_blue_green_to_a_new_serverless_config(env: Env) -> None:
    endpoint = endpoint_for(env, serverless_config(env, "v1"))
    canary = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50},
                "WaitIntervalInSeconds": 0,
            },
            "TerminationWaitInSeconds": 0,
        }
    }
    config = serverless_config(env, "v2", memory=4096)
    env.sagemaker.update_endpoint(EndpointName=endpoint, EndpointConfigName=config, DeploymentConfig=canary)
    described = wait_endpoint(env, endpoint)

    assert (described["EndpointStatus"], described["EndpointConfigName"]) == ("InService", config)
    assert described["ProductionVariants"][0]["CurrentServerlessConfig"]["MemorySizeInMB"] == 4096
    assert described["LastDeploymentConfig"] == canary
    assert predict(env, endpoint, ADULT) == {"predictions": [{"label": "rare", "model": "v2"}]}
    assert set(sagemaker.model_servers(endpoint)) == {f"{config}/AllTraffic"}


def test_a_serverless_endpoint_can_become_instance_based(env: Env) -> None:
    endpoint = endpoint_for(env, serverless_config(env, "v1"))
    config = deploy_config(env, model_artifact(env, "artifacts/instances/model.tar.gz", "instances"))
    env.sagemaker.update_endpoint(EndpointName=endpoint, EndpointConfigName=config)
    described = wait_endpoint(env, endpoint)
    assert (described["EndpointStatus"], described["EndpointConfigName"]) == ("InService", config)
    assert described["ProductionVariants"][0]["CurrentInstanceCount"] == 2
    assert predict(env, endpoint, ADULT)["predictions"][0]["model"] == "instances"


def test_what_aws_refuses_for_serverless_endpoints(env: Env) -> None:
    errors = env.sagemaker.exceptions.ClientError
    # An instance-based endpoint cannot become serverless (AWS: ValidationError); it keeps serving.
    instances = deploy_config(env, model_artifact(env, "artifacts/v1/model.tar.gz", "v1"))
    endpoint = endpoint_for(env, instances)
    with pytest.raises(errors, match=r"ValidationException.*serverless"):
        env.sagemaker.update_endpoint(EndpointName=endpoint, EndpointConfigName=serverless_config(env, "v2"))
    described = env.sagemaker.describe_endpoint(EndpointName=endpoint)
    assert (described["EndpointStatus"], described["EndpointConfigName"]) == ("InService", instances)

    # No data capture and a single variant on serverless endpoints.
    variant = serverless_variant(env, "v3")
    capture = {
        "InitialSamplingPercentage": 100,
        "DestinationS3Uri": env.uri("capture"),
        "CaptureOptions": [{"CaptureMode": "Input"}],
    }
    with pytest.raises(errors, match="DataCaptureConfig is not supported for serverless"):
        env.sagemaker.create_endpoint_config(
            EndpointConfigName=unique("config"), ProductionVariants=[variant], DataCaptureConfig=capture
        )
    with pytest.raises(errors, match="single production variant"):
        env.sagemaker.create_endpoint_config(
            EndpointConfigName=unique("config"),
            ProductionVariants=[variant, {**serverless_variant(env, "v4"), "VariantName": "Other"}],
        )

    # Rolling deployments exclude serverless endpoints (deployment guardrails' exclusions).
    serverless = endpoint_for(env, serverless_config(env, "v5"))
    rolling = {
        "RollingUpdatePolicy": {
            "MaximumBatchSize": {"Type": "CAPACITY_PERCENT", "Value": 50},
            "WaitIntervalInSeconds": 0,
        }
    }
    with pytest.raises(errors, match="RollingUpdatePolicy is not supported for serverless"):
        env.sagemaker.update_endpoint(
            EndpointName=serverless, EndpointConfigName=serverless_config(env, "v6"), DeploymentConfig=rolling
        )
