"""The whole SageMaker loop against a moto server (boto3 through AWS_ENDPOINT_URL): train, deploy the
trained model.tar.gz, predict, update blue/green to a configuration with data capture, approve a
model package (EventBridge); processing code reaches the local cloud itself."""

from __future__ import annotations

import json
import os

import boto3

from localcloud import sagemaker, sagemaker_capture
from tests.localcloud.events.support import messages
from tests.localcloud.sagemaker.support import (
    IMAGE,
    deploy_config,
    model_artifact,
    predict,
    processing_request,
    script,
    started,
    training_request,
    unique,
    wait_endpoint,
    wait_training,
)


def test_the_sagemaker_loop_on_a_moto_server() -> None:
    # One server-mode cloud per process: the in-process moto server keeps its state after it stops.
    with started(server=True) as env:
        assert env.cloud.endpoint is not None
        assert os.environ["AWS_ENDPOINT_URL"] == env.cloud.endpoint
        name = unique("train")
        env.sagemaker.create_training_job(**training_request(env, name))
        job = wait_training(env, name)
        assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")

        config = deploy_config(env, job["ModelArtifacts"]["S3ModelArtifacts"])
        endpoint = unique("endpoint")
        env.sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)
        assert wait_endpoint(env, endpoint)["EndpointStatus"] == "InService"
        # The trained threshold (50) decides, through the inference code the model carries.
        assert predict(env, endpoint, [{"age": 55}, {"age": 45}]) == {
            "predictions": [{"label": "rare", "model": "trained"}, {"label": "common", "model": "trained"}]
        }

        capture = {
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": env.uri("capture"),
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
        }
        stricter = deploy_config(
            env, model_artifact(env, "artifacts/strict/model.tar.gz", "strict", threshold=60), data_capture=capture
        )
        env.sagemaker.update_endpoint(EndpointName=endpoint, EndpointConfigName=stricter)
        assert wait_endpoint(env, endpoint)["EndpointStatus"] == "InService"
        assert predict(env, endpoint, {"age": 55}) == {"predictions": [{"label": "common", "model": "strict"}]}
        # The new configuration captures: the request and the answer reach S3 through the server.
        sagemaker_capture.flush_all()
        [key] = [o["Key"] for o in env.s3.list_objects_v2(Bucket=env.bucket, Prefix="capture/")["Contents"]]
        assert key.startswith(f"capture/{endpoint}/AllTraffic/")
        [line] = env.s3.get_object(Bucket=env.bucket, Key=key)["Body"].read().decode().splitlines()
        assert json.loads(json.loads(line)["captureData"]["endpointInput"]["data"]) == {"age": 55}

        # A Model Registry approval reaches the EventBridge rule on approved packages.
        group = env.cloud.outputs["ModelPackageGroupName"]
        package = env.sagemaker.create_model_package(
            ModelPackageGroupName=group,
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={
                "Containers": [{"Image": IMAGE, "ModelDataUrl": job["ModelArtifacts"]["S3ModelArtifacts"]}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
        )["ModelPackageArn"]
        env.sagemaker.update_model_package(ModelPackageArn=package, ModelApprovalStatus="Approved")
        [approved] = messages(env.cloud.outputs["ApprovedQueueUrl"], expected=1)
        assert approved["Json"]["detail"]["ModelPackageArn"] == package

        # Job code reaches the local cloud itself: the processing script writes its report to S3.
        env.s3.put_object(Bucket=env.bucket, Key="code/process.py", Body=script("process.py"))
        name = unique("process")
        request = processing_request(env, name, Environment={"DXOPS_STAGE": "test", "REPORT_BUCKET": env.bucket})
        env.sagemaker.create_processing_job(**request)
        job = sagemaker.wait_for_processing_job(name, 30, client=env.sagemaker)
        assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
        report = boto3.client("s3").get_object(Bucket=env.bucket, Key="reports/summary.json")["Body"].read()
        assert json.loads(report) == {"records": 4, "stage": "test"}
