"""Serverless hosting (InferenceMode=serverless, the dev default: scales to zero): an approved version
reaches a serverless endpoint, a newer one replaces it at once (no blue/green guardrails there), and
/predict serves both. The model is trained in-process and registered as a data scientist would from
SageMaker Studio; the training pipeline itself is tested in test_model_lifecycle.py."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from localcloud.cloud import LocalCloud
from ml.train import TrainConfig, train
from tests.integration.api_events import load_event, post_records
from tests.integration.lifecycle import FAST_TRAINING, executions, wait_execution, wait_for
from tests.records import clinical_record
from tests.unit.ml.tables import clinical_table, write_table

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    parameters = {"InferenceMode": "serverless", "DeploymentPollSeconds": "1"}
    with LocalCloud.start(parameters=parameters) as local_cloud:
        assert local_cloud.invoke("IngestApiFunction", post_records([clinical_record(0)]))["statusCode"] == 202
        yield local_cloud


@pytest.fixture(scope="module")
def model_artifact(cloud: LocalCloud, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(model.tar.gz URI, model version) of a small model trained here."""
    work = tmp_path_factory.mktemp("serverless")
    table = write_table(work / "table.parquet", clinical_table(200, seed=3))
    train(table, work / "model", TrainConfig.from_hyperparameters({**FAST_TRAINING, "dataset_version": "v-test"}))
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for path in sorted((work / "model").iterdir()):
            tar.add(path, arcname=path.name)
    bucket = cloud.outputs["ArtifactsBucketName"]
    boto3.client("s3").put_object(Bucket=bucket, Key="training/models/hand/model.tar.gz", Body=archive.getvalue())
    version = json.loads((work / "model" / "model.json").read_text())["model_version"]
    return f"s3://{bucket}/training/models/hand/model.tar.gz", str(version)


def register(cloud: LocalCloud, model_data_url: str, model_version: str) -> None:
    s3 = boto3.client("s3")
    bucket = cloud.outputs["ArtifactsBucketName"]
    code = json.loads(s3.get_object(Bucket=bucket, Key="training/code/current.json")["Body"].read())["sha256"]
    image = cloud.stack.properties["PrepareTrainingRunFunction"]["Environment"]["Variables"]["TRAINING_IMAGE_URI"]
    boto3.client("sagemaker").create_model_package(
        ModelPackageGroupName=cloud.outputs["ModelPackageGroupName"],
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [
                {
                    "Image": image,
                    "ModelDataUrl": model_data_url,
                    "Environment": {
                        "SAGEMAKER_PROGRAM": "dxops_inference.py",
                        "SAGEMAKER_SUBMIT_DIRECTORY": f"s3://{bucket}/training/code/{code}/sourcedir.tar.gz",
                    },
                }
            ],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        CustomerMetadataProperties={"model_version": model_version},
    )


def deployed(cloud: LocalCloud, count: int) -> dict[str, Any]:
    names = wait_for(
        lambda: (found := [e["name"] for e in executions(cloud, "DeploymentStateMachineArn")])[count - 1 :] and found,
        60,
        f"deployment {count}",
    )
    return wait_execution(cloud, "DeploymentStateMachineArn", names[count - 1])


def test_an_approved_version_serves_from_a_serverless_endpoint(
    cloud: LocalCloud, model_artifact: tuple[str, str]
) -> None:
    register(cloud, *model_artifact)
    run = deployed(cloud, 1)
    assert run["status"] == "SUCCEEDED"
    sagemaker = boto3.client("sagemaker")
    endpoint = sagemaker.describe_endpoint(EndpointName=cloud.outputs["EndpointName"])
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    (variant,) = config["ProductionVariants"]
    assert variant["ServerlessConfig"]["MemorySizeInMB"] == 3072 and "InstanceType" not in variant
    assert not config.get("DataCaptureConfig") and not config.get("KmsKeyId")  # SageMaker offers neither there

    response = cloud.invoke("PredictApiFunction", load_event("predict_api/post_predict.json"))

    assert response["statusCode"] == 200
    assert json.loads(response["body"])["model_version"] == model_artifact[1]


def test_a_newer_version_replaces_it_at_once(cloud: LocalCloud, model_artifact: tuple[str, str]) -> None:
    uri, version = model_artifact
    register(cloud, uri, version)
    run = deployed(cloud, 2)
    assert run["status"] == "SUCCEEDED"
    history = boto3.client("stepfunctions").get_execution_history(executionArn=run["executionArn"], maxResults=500)
    entered = {e["stateEnteredEventDetails"]["name"] for e in history["events"] if "stateEnteredEventDetails" in e}
    assert "UpdateEndpointAtOnce" in entered and "UpdateEndpointBlueGreen" not in entered
    champion = boto3.client("dynamodb").get_item(
        TableName=cloud.outputs["ModelVersionsTableName"], Key={"pk": {"S": "champion"}}
    )["Item"]
    assert json.loads(champion["doc"]["S"])["package_version"] == 2
    assert Path(uri).name == "model.tar.gz"
