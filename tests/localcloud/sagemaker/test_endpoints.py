"""Endpoints serve InvokeEndpoint from model.tar.gz through the inference script, and UpdateEndpoint
deploys blue/green with rollback (in-process moto)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from localcloud import sagemaker
from tests.localcloud.sagemaker.support import (
    Env,
    deploy_config,
    model_artifact,
    predict,
    started,
    unique,
    wait_endpoint,
)

ADULT, CHILD = {"age": 70}, {"age": 40}


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    with started() as started_env:
        yield started_env


def serving(env: Env, version: str, program: str = "inference.py") -> str:
    """An InService endpoint serving a model of this version; its name."""
    config = deploy_config(
        env, model_artifact(env, f"artifacts/{unique(version)}/model.tar.gz", version, program=program)
    )
    name = unique("endpoint")
    env.sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=config)
    assert wait_endpoint(env, name)["EndpointStatus"] == "InService"
    return name


def versions(env: Env, endpoint: str, calls: int) -> set[str]:
    return {predict(env, endpoint, ADULT)["predictions"][0]["model"] for _ in range(calls)}


def test_an_endpoint_serves_the_models_predictions(env: Env) -> None:
    config = deploy_config(env, model_artifact(env, "artifacts/v1/model.tar.gz", "v1"))
    name = unique("endpoint")
    env.sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=config)
    assert env.sagemaker.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Creating"

    described = wait_endpoint(env, name)

    assert described["EndpointStatus"] == "InService", described.get("FailureReason")
    assert [v["VariantName"] for v in described["ProductionVariants"]] == ["AllTraffic"]
    answer = env.runtime.invoke_endpoint(
        EndpointName=name, Body=json.dumps([ADULT, CHILD]), ContentType="application/json", Accept="application/json"
    )
    assert answer["InvokedProductionVariant"] == "AllTraffic"
    assert json.loads(answer["Body"].read()) == {
        "predictions": [{"label": "rare", "model": "v1"}, {"label": "common", "model": "v1"}]
    }


def test_a_model_error_surfaces_as_model_error(env: Env) -> None:
    name = serving(env, "v1")
    with pytest.raises(env.runtime.exceptions.ModelError) as caught:
        predict(env, name, {"weight": 3})  # predict_fn needs an age: KeyError in the model
    error = caught.value.response
    assert error["OriginalStatusCode"] == 500
    assert error["Error"]["Message"].startswith("Received server error (500) from primary with message")
    assert "KeyError: 'age'" in error["OriginalMessage"]
    assert error["LogStreamArn"].endswith(f":log-group:/aws/sagemaker/Endpoints/{name}")
    assert predict(env, name, ADULT) == {"predictions": [{"label": "rare", "model": "v1"}]}  # still serving


def test_binary_bodies_reach_the_model_untouched(env: Env) -> None:
    name = serving(env, "binary", program="binary_inference.py")
    body = bytes(range(256))
    answer = env.runtime.invoke_endpoint(EndpointName=name, Body=body, ContentType="application/octet-stream")
    assert json.loads(answer["Body"].read()) == {"length": 256}


def test_unknown_and_failed_endpoints_are_validation_errors(env: Env) -> None:
    with pytest.raises(env.runtime.exceptions.ValidationError, match="not found"):
        predict(env, "no-such-endpoint", ADULT)
    config = deploy_config(
        env, model_artifact(env, "artifacts/broken/model.tar.gz", "x", program="broken_inference.py")
    )
    name = unique("endpoint")
    env.sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=config)
    described = wait_endpoint(env, name)
    assert described["EndpointStatus"] == "Failed"
    assert "production variant AllTraffic did not pass the ping health check" in described["FailureReason"]
    assert "ValueError: the model artifact is corrupt" in described["FailureReason"]
    with pytest.raises(env.runtime.exceptions.ValidationError, match="Failed"):
        predict(env, name, ADULT)


def test_update_endpoint_switches_to_the_new_model_and_stops_the_old(env: Env) -> None:
    name = serving(env, "v1")
    blue = sagemaker.model_servers(name)
    config = deploy_config(env, model_artifact(env, "artifacts/v2/model.tar.gz", "v2", program="defaults_inference.py"))

    env.sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=config)
    assert env.sagemaker.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Updating"
    described = wait_endpoint(env, name)

    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == config
    assert "FailureReason" not in described
    # The script with only model_fn answers through the server's JSON defaults.
    assert predict(env, name, [ADULT]) == [{"label": "common", "model": "v2"}]
    assert set(sagemaker.model_servers(name)) == {f"{config}/AllTraffic"}
    for pid in blue.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_broken_model_keeps_the_old_one_serving(env: Env) -> None:
    name = serving(env, "v1")
    before = env.sagemaker.describe_endpoint(EndpointName=name)["EndpointConfigName"]
    broken = deploy_config(env, model_artifact(env, "artifacts/bad/model.tar.gz", "bad", program="broken_inference.py"))

    env.sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=broken)
    described = wait_endpoint(env, name)

    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == before
    assert described["FailureReason"].startswith("Failed to update endpoint: The primary container")
    assert "the model artifact is corrupt" in described["FailureReason"]
    assert predict(env, name, ADULT) == {"predictions": [{"label": "rare", "model": "v1"}]}


def test_an_alarm_during_the_canary_bake_rolls_back(env: Env) -> None:
    cloudwatch = boto3.client("cloudwatch")
    alarm = unique("endpoint-errors")
    cloudwatch.put_metric_alarm(
        AlarmName=alarm,
        Namespace="AWS/SageMaker",
        MetricName="Invocation5XXErrors",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    name = serving(env, "v1")
    config = deploy_config(env, model_artifact(env, "artifacts/v3/model.tar.gz", "v3"))
    deployment: dict[str, Any] = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50},
                "WaitIntervalInSeconds": 20,
            }
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": alarm}]},
    }
    env.sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=config, DeploymentConfig=deployment)

    deadline = time.monotonic() + 10
    while "v3" not in versions(env, name, 4) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert versions(env, name, 40) == {"v1", "v3"}  # the canary takes half the traffic during the bake
    assert env.sagemaker.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Updating"
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="errors on the canary")
    described = wait_endpoint(env, name)

    assert described["EndpointStatus"] == "InService"
    assert f"alarm {alarm} went into ALARM state" in described["FailureReason"]
    assert versions(env, name, 10) == {"v1"}


def test_a_canary_without_alarms_completes_and_is_recorded(env: Env) -> None:
    name = serving(env, "v1")
    config = deploy_config(env, model_artifact(env, "artifacts/v4/model.tar.gz", "v4"))
    deployment = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "LINEAR",
                "LinearStepSize": {"Type": "INSTANCE_COUNT", "Value": 1},
                "WaitIntervalInSeconds": 0,
            },
            "TerminationWaitInSeconds": 0,
        }
    }
    env.sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=config, DeploymentConfig=deployment)
    described = wait_endpoint(env, name)
    assert described["EndpointStatus"] == "InService"
    assert described["LastDeploymentConfig"] == deployment
    assert versions(env, name, 5) == {"v4"}


def test_traffic_steps_follow_the_routing_configuration() -> None:
    steps = sagemaker._traffic_steps
    assert steps("ALL_AT_ONCE", {}, 2) == [1.0]
    assert steps("CANARY", {"CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1}}, 4) == [0.25, 1.0]
    assert steps("LINEAR", {"LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 40}}, 1) == [0.4, 0.8, 1.0]


def test_updates_are_refused_while_one_is_in_progress(env: Env) -> None:
    name = serving(env, "v1")
    config = deploy_config(env, model_artifact(env, "artifacts/v5/model.tar.gz", "v5"))
    slow = {
        "BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 5}}
    }
    env.sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=config, DeploymentConfig=slow)
    with pytest.raises(env.sagemaker.exceptions.ClientError, match="Cannot update in-progress endpoint"):
        env.sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=config)
    env.sagemaker.delete_endpoint(EndpointName=name)  # ends the deployment too


def test_target_variant_and_weights_route_requests(env: Env) -> None:
    one = deploy_config(env, model_artifact(env, "artifacts/a/model.tar.gz", "a"), variant="A")
    two = deploy_config(env, model_artifact(env, "artifacts/b/model.tar.gz", "b"), variant="B")
    variants = [
        {
            **env.sagemaker.describe_endpoint_config(EndpointConfigName=c)["ProductionVariants"][0],
            "InitialVariantWeight": w,
        }
        for c, w in ((one, 1.0), (two, 0.0))
    ]
    config = unique("config")
    env.sagemaker.create_endpoint_config(EndpointConfigName=config, ProductionVariants=variants)
    name = unique("endpoint")
    env.sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=config)
    assert wait_endpoint(env, name)["EndpointStatus"] == "InService"

    assert versions(env, name, 10) == {"a"}  # B has no weight
    answer = env.runtime.invoke_endpoint(
        EndpointName=name, Body=json.dumps(ADULT), ContentType="application/json", TargetVariant="B"
    )
    assert answer["InvokedProductionVariant"] == "B"
    assert json.loads(answer["Body"].read())["predictions"][0]["model"] == "b"


def test_delete_endpoint_stops_its_servers(env: Env) -> None:
    name = serving(env, "v1")
    [pid] = sagemaker.model_servers(name).values()
    env.sagemaker.delete_endpoint(EndpointName=name)
    assert sagemaker.model_servers(name) == {}
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(env.runtime.exceptions.ValidationError):
        predict(env, name, ADULT)
