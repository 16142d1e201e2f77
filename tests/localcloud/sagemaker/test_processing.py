"""Processing jobs run their container command with inputs downloaded and outputs uploaded (in-process)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcloud import sagemaker
from tests.localcloud.sagemaker.support import Env, processing_request, script, started, unique


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    with started() as started_env:
        started_env.s3.put_object(Bucket=started_env.bucket, Key="code/process.py", Body=script("process.py"))
        yield started_env


def test_a_processing_job_runs_and_uploads_its_outputs(env: Env) -> None:
    name = unique("process")
    env.sagemaker.create_processing_job(**processing_request(env, name))
    assert env.sagemaker.describe_processing_job(ProcessingJobName=name)["ProcessingJobStatus"] == "InProgress"

    job = sagemaker.wait_for_processing_job(name, 30, client=env.sagemaker)

    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["ExitMessage"] == "summarised 4 records"
    assert job["Environment"] == {"DXOPS_STAGE": "test"}
    assert job["ProcessingStartTime"] <= job["ProcessingEndTime"]
    summary = env.s3.get_object(Bucket=env.bucket, Key=f"processed/{name}/summary.json")["Body"].read()
    assert json.loads(summary) == {"records": 4, "stage": "test"}
    nested = env.s3.get_object(Bucket=env.bucket, Key=f"processed/{name}/nested/count.txt")["Body"].read()
    assert nested == b"4"


def test_a_failing_container_fails_the_job_and_uploads_nothing(env: Env) -> None:
    name = unique("process")
    env.sagemaker.create_processing_job(**processing_request(env, name, "--fail"))
    job = sagemaker.wait_for_processing_job(name, 30, client=env.sagemaker)
    assert job["ProcessingJobStatus"] == "Failed"
    assert job["ExitMessage"] == "the input holds no usable records"
    assert job["FailureReason"].startswith("AlgorithmError: See job logs for more information. Exit code 3.")
    assert "no usable records" in job["FailureReason"]
    assert "Contents" not in env.s3.list_objects_v2(Bucket=env.bucket, Prefix=f"processed/{name}/")


def test_container_paths_are_mapped_under_the_jobs_root() -> None:
    root = Path("/tmp/job/container")
    command = sagemaker._map_command(
        [
            "python3.11",
            "/opt/ml/processing/code/run.py",
            "--in=/opt/ml/processing/in",
            "/data/x",
            "/opt/mlx",
            "s3://b/opt/ml",
        ],
        root,
        ["/data"],
        None,
    )
    assert command == [
        sagemaker.SETTINGS.python,
        "/tmp/job/container/opt/ml/processing/code/run.py",
        "--in=/tmp/job/container/opt/ml/processing/in",
        "/tmp/job/container/data/x",
        "/opt/mlx",
        "s3://b/opt/ml",
    ]


def test_stop_processing_job_stops_the_container(env: Env) -> None:
    name = unique("process")
    request = processing_request(env, name)
    request["AppSpecification"] = {
        "ImageUri": "image",
        "ContainerEntrypoint": ["python3", "-c", "import time; time.sleep(60)"],
    }
    env.sagemaker.create_processing_job(**request)
    env.sagemaker.stop_processing_job(ProcessingJobName=name)
    job = sagemaker.wait_for_processing_job(name, 10, client=env.sagemaker)
    assert job["ProcessingJobStatus"] == "Stopped"
