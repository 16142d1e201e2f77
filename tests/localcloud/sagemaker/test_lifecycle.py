"""The interpreter setting, and shutdown(): no job or model server outlives the local cloud."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from localcloud import sagemaker
from tests.localcloud.sagemaker.support import (
    IMAGE,
    deploy_config,
    model_artifact,
    script,
    started,
    training_request,
    unique,
    wait_endpoint,
)


def test_jobs_run_on_the_interpreter_configured_for_their_image(tmp_path: Path) -> None:
    wrapper = tmp_path / "python-of-the-image"
    wrapper.write_text(f'#!/bin/sh\nVIA_WRAPPER=yes exec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    sagemaker.configure(interpreters={r"sagemaker-scikit-learn:1\.2": str(wrapper)})
    try:
        with started() as env:
            env.s3.put_object(Bucket=env.bucket, Key="code/whoami.py", Body=script("whoami.py"))
            name = unique("who")
            code = {"S3DataType": "S3Prefix", "S3InputMode": "File", "S3Uri": env.uri("code/whoami.py")}
            env.sagemaker.create_processing_job(
                ProcessingJobName=name,
                RoleArn="arn:aws:iam::123456789012:role/x",
                AppSpecification={
                    "ImageUri": IMAGE,
                    "ContainerEntrypoint": ["python3", "/opt/ml/processing/code/whoami.py", "/opt/ml/processing/out"],
                },
                ProcessingInputs=[{"InputName": "code", "S3Input": {**code, "LocalPath": "/opt/ml/processing/code"}}],
                ProcessingOutputConfig={
                    "Outputs": [
                        {
                            "OutputName": "out",
                            "S3Output": {
                                "S3Uri": env.uri(f"who/{name}"),
                                "LocalPath": "/opt/ml/processing/out",
                                "S3UploadMode": "EndOfJob",
                            },
                        }
                    ]
                },
                ProcessingResources={
                    "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}
                },
            )
            job = sagemaker.wait_for_processing_job(name, 30, client=env.sagemaker)
            assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
            who = env.s3.get_object(Bucket=env.bucket, Key=f"who/{name}/who.json")["Body"].read()
            assert json.loads(who) == {"wrapper": "yes"}
    finally:
        sagemaker.configure(interpreters={})


def test_shutdown_stops_every_job_and_model_server() -> None:
    with started() as env:
        job = unique("slow")
        env.sagemaker.create_training_job(**training_request(env, job, "slow_train.py"))
        endpoint = unique("endpoint")
        config = deploy_config(env, model_artifact(env, "artifacts/v1/model.tar.gz", "v1"))
        env.sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)
        assert wait_endpoint(env, endpoint)["EndpointStatus"] == "InService"
        deadline = time.monotonic() + 10
        while len(sagemaker._PROCESSES) < 2:  # the training script and the model server
            assert time.monotonic() < deadline, env.sagemaker.describe_training_job(TrainingJobName=job)
            time.sleep(0.05)
        pids = [process.pid for process in sagemaker._PROCESSES]
        assert env.sagemaker.describe_training_job(TrainingJobName=job)["TrainingJobStatus"] == "InProgress"
        work = sagemaker._WORK["root"]

        sagemaker.shutdown()

        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        assert not work.exists()
        assert sagemaker.model_servers(endpoint) == {}
        sagemaker.shutdown()  # idempotent
