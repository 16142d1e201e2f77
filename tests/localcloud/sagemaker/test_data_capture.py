"""Endpoint data capture: an endpoint configuration's DataCaptureConfig makes the local endpoint write
its sampled requests and responses to S3 as SageMaker does (JSON Lines under
{DestinationS3Uri}/{EndpointName}/{VariantName}/yyyy/mm/dd/hh/), in-process moto."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from localcloud import sagemaker, sagemaker_capture
from tests.localcloud.sagemaker.support import IMAGE, ROLE, Env, deploy_config, model_artifact, started, unique

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
INFERENCE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    sagemaker.configure(capture_flush_interval=60)  # the tests write when they choose (one file each)
    try:
        with started() as started_env:
            yield started_env
    finally:
        sagemaker.configure(capture_flush_interval=5)


def capture(env: Env, prefix: str, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "EnableCapture": True,
        "InitialSamplingPercentage": 100,
        "DestinationS3Uri": env.uri(prefix),
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
    }
    config.update(overrides)
    return config


def capturing_config(env: Env, version: str, data_capture: dict[str, Any] | None) -> str:
    """A model of this version and an endpoint configuration with the given DataCaptureConfig; its name."""
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
    config = unique("config")
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": model,
        "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large",
    }
    extra = {"DataCaptureConfig": data_capture} if data_capture is not None else {}
    env.sagemaker.create_endpoint_config(EndpointConfigName=config, ProductionVariants=[variant], **extra)
    return config


def serving(env: Env, config: str) -> str:
    name = unique("endpoint")
    env.sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=config)
    assert sagemaker.wait_for_endpoint(name, 30, client=env.sagemaker)["EndpointStatus"] == "InService"
    return name


def invoke(env: Env, endpoint: str, body: Any, **extra: Any) -> bytes:
    answer = env.runtime.invoke_endpoint(
        EndpointName=endpoint, Body=json.dumps(body), ContentType="application/json", Accept="application/json", **extra
    )
    return bytes(answer["Body"].read())


def captured(env: Env, prefix: str) -> dict[str, list[dict[str, Any]]]:
    """Capture files under a prefix: key -> its JSON lines."""
    listing = env.s3.list_objects_v2(Bucket=env.bucket, Prefix=prefix + "/").get("Contents", [])
    return {
        o["Key"]: [
            json.loads(line)
            for line in env.s3.get_object(Bucket=env.bucket, Key=o["Key"])["Body"].read().decode().splitlines()
        ]
        for o in listing
    }


def test_invocations_are_captured_as_sagemaker_writes_them(env: Env) -> None:
    key_id = boto3.client("kms").create_key(Description="capture")["KeyMetadata"]["Arn"]
    prefix = unique("capture")
    endpoint = serving(env, capturing_config(env, "v1", capture(env, prefix, KmsKeyId=key_id)))
    first = invoke(env, endpoint, {"age": 70})
    second = invoke(env, endpoint, [{"age": 40}], InferenceId="request-42")

    assert sagemaker_capture.flush_all()
    [(key, lines)] = captured(env, prefix).items()

    assert re.fullmatch(rf"{prefix}/{endpoint}/AllTraffic/\d{{4}}/\d\d/\d\d/\d\d/\d\d-\d\d-\d{{3}}-{UUID}\.jsonl", key)
    assert len(lines) == 2
    assert lines[0]["captureData"] == {
        "endpointInput": {
            "observedContentType": "application/json",
            "mode": "INPUT",
            "data": json.dumps({"age": 70}),
            "encoding": "JSON",
        },
        "endpointOutput": {
            "observedContentType": "application/json",
            "mode": "OUTPUT",
            "data": first.decode(),
            "encoding": "JSON",
        },
    }
    assert lines[0]["eventVersion"] == "0"
    assert set(lines[0]["eventMetadata"]) == {"eventId", "inferenceTime"}
    assert re.fullmatch(UUID, lines[0]["eventMetadata"]["eventId"])
    assert INFERENCE_TIME.fullmatch(lines[0]["eventMetadata"]["inferenceTime"])
    assert lines[1]["eventMetadata"]["inferenceId"] == "request-42"
    assert lines[1]["captureData"]["endpointOutput"]["data"] == second.decode()
    at = lines[0]["eventMetadata"]["inferenceTime"]  # the hour of the inferences names the folder
    assert key.split("/")[3:7] == [at[0:4], at[5:7], at[8:10], at[11:13]]
    head = env.s3.head_object(Bucket=env.bucket, Key=key)
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", key_id)


def test_bodies_without_a_listed_content_type_are_base64_and_capture_options_apply(env: Env) -> None:
    prefix = unique("capture")
    config = capture(env, prefix, CaptureOptions=[{"CaptureMode": "Input"}])
    del config["CaptureContentTypeHeader"]  # SageMaker's default: base64
    endpoint = serving(env, capturing_config(env, "v1", config))
    invoke(env, endpoint, {"age": 70})
    sagemaker_capture.flush_all()

    [lines] = captured(env, prefix).values()
    [line] = lines
    assert set(line["captureData"]) == {"endpointInput"}  # Input only
    assert line["captureData"]["endpointInput"]["encoding"] == "BASE64"
    assert json.loads(base64.b64decode(line["captureData"]["endpointInput"]["data"])) == {"age": 70}


def test_sampling_zero_captures_nothing(env: Env) -> None:
    prefix = unique("capture")
    endpoint = serving(env, capturing_config(env, "v1", capture(env, prefix, InitialSamplingPercentage=0)))
    for _ in range(5):
        invoke(env, endpoint, {"age": 70})
    sagemaker_capture.flush_all()
    assert captured(env, prefix) == {}


def test_capture_is_written_on_its_interval_and_when_the_fleet_stops(env: Env) -> None:
    prefix = unique("capture")
    endpoint = serving(env, capturing_config(env, "v1", capture(env, prefix)))
    sagemaker.configure(capture_flush_interval=0.2)
    try:
        invoke(env, endpoint, {"age": 70})
        deadline = time.monotonic() + 10
        while not captured(env, prefix):  # the flusher writes it, nobody asked
            assert time.monotonic() < deadline, "no capture file within 10 s"
            time.sleep(0.05)
    finally:
        sagemaker.configure(capture_flush_interval=60)
    invoke(env, endpoint, {"age": 40})
    invoke(env, endpoint, {"age": 50})
    env.sagemaker.delete_endpoint(EndpointName=endpoint)  # its buffer is written as its fleet stops
    files = captured(env, prefix)
    assert sorted(len(lines) for lines in files.values()) == [1, 2]


def test_an_update_captures_as_the_new_configuration_says(env: Env) -> None:
    endpoint = serving(env, deploy_config(env, model_artifact(env, "artifacts/plain/model.tar.gz", "plain")))
    invoke(env, endpoint, {"age": 70})  # no DataCaptureConfig: nothing to capture
    prefix = unique("capture")
    env.sagemaker.update_endpoint(
        EndpointName=endpoint, EndpointConfigName=capturing_config(env, "v2", capture(env, prefix))
    )
    described = sagemaker.wait_for_endpoint(endpoint, 30, client=env.sagemaker)
    assert described["EndpointStatus"] == "InService"
    invoke(env, endpoint, {"age": 70})
    sagemaker_capture.flush_all()
    [lines] = captured(env, prefix).values()
    assert [json.loads(line["captureData"]["endpointOutput"]["data"])["predictions"][0]["model"] for line in lines] == [
        "v2"
    ]
    assert described["DataCaptureConfig"]["EnableCapture"] is True
