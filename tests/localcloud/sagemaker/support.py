"""Shared pieces of the SageMaker tests: the test template started with the scripts and data in S3,
requests as the SageMaker Python SDK builds them, and model artifacts."""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from localcloud import sagemaker
from localcloud.cloud import LocalCloud

HERE = Path(__file__).parent
TEMPLATE = HERE / "template.yaml"
SCRIPTS = HERE / "scripts"
# The scikit-learn framework image of eu-west-1, as the SageMaker SDK names it.
IMAGE = "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
ROLE = "arn:aws:iam::123456789012:role/dxops-sagemaker"
TRAIN_CSV = "age,diagnosis\n70,rare\n74,rare\n30,common\n"
TRAIN_PART_CSV = "age,diagnosis\n26,common\n"
VALIDATION_CSV = "age,diagnosis\n80,rare\n20,common\n60,common\n50,rare\n"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Env:
    """A started local cloud with the scripts and data uploaded, and clients for it."""

    cloud: LocalCloud
    bucket: str
    s3: Any
    sagemaker: Any
    runtime: Any

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


def archive(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def script(name: str) -> bytes:
    return (SCRIPTS / name).read_bytes()


def read_archive(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


@contextmanager
def started(*, server: bool = False, parameters: dict[str, str] | None = None) -> Iterator[Env]:
    """The test template deployed; every job and model server is stopped before the cloud is."""
    with LocalCloud.start(TEMPLATE, parameters, server=server) as cloud:
        try:
            env = Env(
                cloud=cloud,
                bucket=cloud.outputs["ArtifactBucketName"],
                s3=boto3.client("s3"),
                sagemaker=boto3.client("sagemaker"),
                runtime=boto3.client("sagemaker-runtime"),
            )
            sources = {
                n: script(n) for n in ("train.py", "model_lib.py", "inference.py", "fail_train.py", "slow_train.py")
            }
            env.s3.put_object(Bucket=env.bucket, Key="code/sourcedir.tar.gz", Body=archive(sources))
            env.s3.put_object(Bucket=env.bucket, Key="data/train/records.csv", Body=TRAIN_CSV.encode())
            env.s3.put_object(Bucket=env.bucket, Key="data/train/part-2/records.csv", Body=TRAIN_PART_CSV.encode())
            env.s3.put_object(Bucket=env.bucket, Key="data/validation/records.csv", Body=VALIDATION_CSV.encode())
            yield env
        finally:
            sagemaker.shutdown()


def training_request(env: Env, name: str, program: str = "train.py", **overrides: Any) -> dict[str, Any]:
    """CreateTrainingJob as the SageMaker Python SDK sends it for a framework estimator in script mode
    (hyperparameters JSON-encoded)."""
    hyperparameters = {
        "epochs": "3",
        "learning-rate": "0.5",
        "label": json.dumps("diagnosis"),
        "sagemaker_program": json.dumps(program),
        "sagemaker_submit_directory": json.dumps(env.uri("code/sourcedir.tar.gz")),
        "sagemaker_container_log_level": "20",
        "sagemaker_region": json.dumps("eu-west-1"),
    }
    channel = {"S3DataType": "S3Prefix", "S3DataDistributionType": "FullyReplicated"}
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": IMAGE,
            "TrainingInputMode": "File",
            "MetricDefinitions": [
                {"Name": "train:loss", "Regex": r"train:loss=([0-9.]+)"},
                {"Name": "validation:accuracy", "Regex": r"validation:accuracy=([0-9.]+)"},
            ],
        },
        "RoleArn": ROLE,
        "HyperParameters": hyperparameters,
        "InputDataConfig": [
            {"ChannelName": "train", "DataSource": {"S3DataSource": {**channel, "S3Uri": env.uri("data/train")}}},
            {
                "ChannelName": "validation",
                "DataSource": {"S3DataSource": {**channel, "S3Uri": env.uri("data/validation/")}},
                "ContentType": "text/csv",
            },
        ],
        "OutputDataConfig": {"S3OutputPath": env.uri("models")},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
        "Environment": {"DXOPS_STAGE": "test"},
    }
    request.update(overrides)
    return request


def model_artifact(env: Env, key: str, version: str, threshold: float = 65.0, program: str = "inference.py") -> str:
    """A model.tar.gz as train.py writes it (model.json and code/inference.py, here from `program`),
    uploaded; its S3 URI."""
    files = {"model.json": json.dumps({"threshold": threshold, "version": version}).encode()}
    files["code/inference.py"] = script(program)
    env.s3.put_object(Bucket=env.bucket, Key=key, Body=archive(files))
    return env.uri(key)


def deploy_config(
    env: Env, model_data_url: str, variant: str = "AllTraffic", data_capture: dict[str, Any] | None = None
) -> str:
    """CreateModel (as the SDK sets a framework model's environment) and an endpoint config (with a
    DataCaptureConfig when given); its name."""
    model = unique("model")
    env.sagemaker.create_model(
        ModelName=model,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": IMAGE,
            "ModelDataUrl": model_data_url,
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"},
        },
    )
    config = unique("config")
    env.sagemaker.create_endpoint_config(
        EndpointConfigName=config,
        ProductionVariants=[
            {
                "VariantName": variant,
                "ModelName": model,
                "InitialInstanceCount": 2,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": 1.0,
            }
        ],
        **({"DataCaptureConfig": data_capture} if data_capture is not None else {}),
    )
    return config


def predict(env: Env, endpoint: str, records: Any) -> Any:
    answer = env.runtime.invoke_endpoint(
        EndpointName=endpoint, Body=json.dumps(records), ContentType="application/json", Accept="application/json"
    )
    assert answer["ContentType"] == "application/json"
    return json.loads(answer["Body"].read())


def wait_training(env: Env, name: str, timeout: float = 30) -> dict[str, Any]:
    return sagemaker.wait_for_training_job(name, timeout, client=env.sagemaker)


def wait_endpoint(env: Env, name: str, timeout: float = 30) -> dict[str, Any]:
    return sagemaker.wait_for_endpoint(name, timeout, client=env.sagemaker)


def processing_request(env: Env, name: str, *arguments: str, **overrides: Any) -> dict[str, Any]:
    """CreateProcessingJob as the SageMaker SDK's ScriptProcessor sends it (code as an input)."""
    s3_input = {"S3DataType": "S3Prefix", "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated"}
    request: dict[str, Any] = {
        "ProcessingJobName": name,
        "RoleArn": ROLE,
        "AppSpecification": {
            "ImageUri": IMAGE,
            "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/process.py"],
            "ContainerArguments": [
                "--input",
                "/opt/ml/processing/input/data",
                "--output=/opt/ml/processing/output",
                "--message",
                "/opt/ml/output/message",
                *arguments,
            ],
        },
        "ProcessingInputs": [
            {
                "InputName": "code",
                "S3Input": {
                    **s3_input,
                    "S3Uri": env.uri("code/process.py"),
                    "LocalPath": "/opt/ml/processing/input/code",
                },
            },
            {
                "InputName": "data",
                "S3Input": {**s3_input, "S3Uri": env.uri("data/train"), "LocalPath": "/opt/ml/processing/input/data"},
            },
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "summary",
                    "S3Output": {
                        "S3Uri": env.uri(f"processed/{name}"),
                        "LocalPath": "/opt/ml/processing/output",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        "ProcessingResources": {
            "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5}
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
        "Environment": {"DXOPS_STAGE": "test"},
    }
    request.update(overrides)
    return request
