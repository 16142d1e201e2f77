"""Shared pieces of the Step Functions tests: the test template deployed with its training code and
data in S3, task tokens from the callback queue, and stand-ins for the job emulations."""

from __future__ import annotations

import io
import json
import tarfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from moto.glue.models import FakeJob

from localcloud.cloud import LocalCloud

HERE = Path(__file__).parent
TEMPLATE = HERE / "template.yaml"
TRAINING_CODE = HERE / "training"
# The scikit-learn framework image of eu-west-1, as the SageMaker SDK names it: script mode runs
# HyperParameters.sagemaker_program from sagemaker_submit_directory.
TRAINING_IMAGE = "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@contextmanager
def started(*, server: bool = False) -> Iterator[LocalCloud]:
    """The test template deployed, with the training code and data where the machines expect them."""
    with LocalCloud.start(TEMPLATE, server=server) as cloud:
        s3 = boto3.client("s3", endpoint_url=cloud.endpoint)
        bucket = cloud.outputs["ArtifactBucketName"]
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w:gz") as tar:
            for script in sorted(TRAINING_CODE.glob("*.py")):
                tar.add(script, arcname=script.name)
        s3.put_object(Bucket=bucket, Key="code/sourcedir.tar.gz", Body=archive.getvalue())
        s3.put_object(Bucket=bucket, Key="data/train/records.csv", Body=b"age,label\n54,1\n31,0\n")
        yield cloud


def training_input(program: str) -> dict[str, str]:
    # The SageMaker SDK sends hyperparameters JSON-encoded; the machine does the same (States.JsonToString).
    return {"job_name": unique("train"), "program": program, "training_image": TRAINING_IMAGE}


@contextmanager
def failing_glue_runs() -> Iterator[None]:
    """Runs of moto-only Glue jobs end FAILED (localcloud.glue runs only the template's jobs)."""
    original = FakeJob.start_job_run

    def start_job_run(self: FakeJob, *args: Any, **kwargs: Any) -> str:
        run_id: str = original(self, *args, **kwargs)
        run = next(r for r in self.job_runs if r.job_run_id == run_id)
        run.status = "FAILED"
        return run_id

    FakeJob.start_job_run = start_job_run  # type: ignore[method-assign]
    try:
        yield
    finally:
        FakeJob.start_job_run = original  # type: ignore[method-assign]


def task_token(cloud: LocalCloud, request: str, timeout: float = 10.0) -> str:
    """The task token a callback execution sent for `request` over the queue (the message is deleted)."""
    sqs = boto3.client("sqs", endpoint_url=cloud.endpoint)
    url = cloud.outputs["CallbackQueueUrl"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=0
        ).get("Messages", []):
            body = json.loads(message["Body"])
            if body["request"] == request:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                return str(body["token"])
        time.sleep(0.05)
    raise TimeoutError(f"no task token for {request} within {timeout} s")
