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


# Lists what the container finds under its input (relative paths), and whether the input is a directory.
LIST_INPUT = (
    "import json, pathlib, sys; root = pathlib.Path(sys.argv[1]); "
    "files = sorted(p.relative_to(root).as_posix() for p in root.rglob('*') if p.is_file()); "
    "pathlib.Path(sys.argv[2], 'input.json').write_text(json.dumps({'directory': root.is_dir(), 'files': files}))"
)


def manifest_request(env: Env, name: str, manifest: list[object] | None) -> dict[str, object]:
    """A processing job whose "data" input is the manifest file manifests/<name>.manifest (uploaded
    unless None) and whose container lists what it finds under the input's LocalPath."""
    key = f"manifests/{name}.manifest"
    if manifest is not None:
        env.s3.put_object(Bucket=env.bucket, Key=key, Body=json.dumps(manifest).encode())
    request = processing_request(env, name)
    data = {"S3DataType": "ManifestFile", "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated"}
    request["ProcessingInputs"][1]["S3Input"] = {
        **data,
        "S3Uri": env.uri(key),
        "LocalPath": "/opt/ml/processing/input/data",
    }
    request["AppSpecification"] = {
        "ImageUri": "image",
        "ContainerEntrypoint": ["python3", "-c", LIST_INPUT],
        "ContainerArguments": ["/opt/ml/processing/input/data", "/opt/ml/processing/output"],
    }
    return request


def listed_input(env: Env, name: str) -> dict[str, object]:
    body = env.s3.get_object(Bucket=env.bucket, Key=f"processed/{name}/input.json")["Body"].read()
    return dict(json.loads(body))


def test_a_manifest_file_input_downloads_the_listed_objects_keeping_their_relative_paths(env: Env) -> None:
    name = unique("manifest")
    # data/train/records.csv is under the prefix but not listed: it is not downloaded.
    manifest = [{"prefix": env.uri("data/")}, "train/part-2/records.csv", "validation/records.csv"]
    env.sagemaker.create_processing_job(**manifest_request(env, name, manifest))

    job = sagemaker.wait_for_processing_job(name, 30, client=env.sagemaker)

    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["ProcessingInputs"][1]["S3Input"]["S3DataType"] == "ManifestFile"
    assert listed_input(env, name) == {
        "directory": True,
        "files": ["train/part-2/records.csv", "validation/records.csv"],
    }


def test_an_empty_manifest_gives_an_empty_input_directory(env: Env) -> None:
    name = unique("manifest")
    env.sagemaker.create_processing_job(**manifest_request(env, name, [{"prefix": env.uri("data/")}]))
    job = sagemaker.wait_for_processing_job(name, 30, client=env.sagemaker)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert listed_input(env, name) == {"directory": True, "files": []}


def test_a_missing_listed_object_fails_the_job_before_the_container_runs(env: Env) -> None:
    name = unique("manifest")
    manifest = [{"prefix": env.uri("data/")}, "train/records.csv", "train/gone.csv"]
    env.sagemaker.create_processing_job(**manifest_request(env, name, manifest))
    job = sagemaker.wait_for_processing_job(name, 30, client=env.sagemaker)
    assert job["ProcessingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("ClientError: Failed to download data. Input data: ")
    assert f"{env.uri('data/train/gone.csv')} listed in the manifest file" in job["FailureReason"]
    assert "does not exist" in job["FailureReason"]
    assert "Contents" not in env.s3.list_objects_v2(Bucket=env.bucket, Prefix=f"processed/{name}/")


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        (None, "could not be read"),  # no manifest object
        ({"prefix": "s3://bucket/data/"}, 'must be a JSON array starting with {"prefix": "s3://..."}'),
        (["train/records.csv"], 'must be a JSON array starting with {"prefix": "s3://..."}'),
        ([{"prefix": "s3://bucket/data/"}, 7], "must list its objects as non-empty strings"),
        ([{"prefix": "s3://bucket/data/"}, "../../escape.csv"], "which leaves the input directory"),
    ],
)
def test_an_unusable_manifest_fails_the_job(env: Env, manifest: list[object] | None, reason: str) -> None:
    name = unique("manifest")
    env.sagemaker.create_processing_job(**manifest_request(env, name, manifest))
    job = sagemaker.wait_for_processing_job(name, 30, client=env.sagemaker)
    assert job["ProcessingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("ClientError: Failed to download data. Input data: ")
    assert reason in job["FailureReason"]
