"""Training jobs run their script under the SageMaker training container contract (in-process moto)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.localcloud.sagemaker.support import Env, read_archive, started, training_request, unique, wait_training


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    with started() as started_env:
        yield started_env


def test_a_job_runs_the_script_under_the_contract(env: Env) -> None:
    name = unique("train")
    env.sagemaker.create_training_job(**training_request(env, name))
    first = env.sagemaker.describe_training_job(TrainingJobName=name)
    assert first["TrainingJobStatus"] == "InProgress"

    job = wait_training(env, name)

    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert [t["Status"] for t in job["SecondaryStatusTransitions"]] == [
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    assert all("EndTime" in t for t in job["SecondaryStatusTransitions"])
    assert job["TrainingStartTime"] <= job["TrainingEndTime"]
    assert job["Environment"] == {"DXOPS_STAGE": "test"}
    # The script's own metric lines, not moto's stand-in values; the definitions as requested.
    metrics = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
    assert metrics == {"train:loss": 0.25, "validation:accuracy": 0.75}
    assert [d["Name"] for d in job["AlgorithmSpecification"]["MetricDefinitions"]] == [
        "train:loss",
        "validation:accuracy",
    ]
    model_uri = job["ModelArtifacts"]["S3ModelArtifacts"]
    assert model_uri == env.uri(f"models/{name}/output/model.tar.gz")
    model = read_archive(env.s3.get_object(Bucket=env.bucket, Key=f"models/{name}/output/model.tar.gz")["Body"].read())
    assert set(model) == {"model.json", "code/inference.py"}
    assert json.loads(model["model.json"]) == {"threshold": 50.0, "version": "trained"}
    output = read_archive(
        env.s3.get_object(Bucket=env.bucket, Key=f"models/{name}/output/output.tar.gz")["Body"].read()
    )
    assert json.loads(output["evaluation.json"]) == {"accuracy": 0.75}


def test_the_output_reaches_cloudwatch_logs_and_metrics(env: Env) -> None:
    import boto3

    name = unique("train")
    env.sagemaker.create_training_job(**training_request(env, name))
    wait_training(env, name)
    logs = boto3.client("logs")
    [stream] = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=name)[
        "logStreams"
    ]
    assert stream["logStreamName"].startswith(f"{name}/algo-1-")
    events = logs.get_log_events(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream["logStreamName"])
    assert [e["message"] for e in events["events"]][-1] == "validation:accuracy=0.7500"
    cloudwatch = boto3.client("cloudwatch")
    listed = cloudwatch.list_metrics(
        Namespace="/aws/sagemaker/TrainingJobs", Dimensions=[{"Name": "Host", "Value": f"{name}/algo-1"}]
    )["Metrics"]
    assert {m["MetricName"] for m in listed} == {"train:loss", "validation:accuracy"}


def test_a_failing_script_fails_the_job_with_its_failure_file(env: Env) -> None:
    name = unique("fail")
    env.sagemaker.create_training_job(**training_request(env, name, "fail_train.py"))
    job = wait_training(env, name)
    assert job["TrainingJobStatus"] == "Failed"
    assert job["SecondaryStatus"] == "Failed"
    assert job["FailureReason"] == "AlgorithmError: DataError: the train channel has no label column"
    assert "output.tar.gz" not in str(env.s3.list_objects_v2(Bucket=env.bucket, Prefix=f"models/{name}/"))


def test_without_a_failure_file_the_reason_is_the_toolkits(env: Env) -> None:
    name = unique("fail")
    hyperparameters = training_request(env, name)["HyperParameters"]
    env.sagemaker.create_training_job(
        **training_request(env, name, HyperParameters={**hyperparameters, "epochs": "4"})  # train.py asserts 3
    )
    job = wait_training(env, name)
    assert job["TrainingJobStatus"] == "Failed"
    reason = job["FailureReason"]
    assert reason.startswith("AlgorithmError: ExecuteUserScriptError:\nExitCode 1\n")
    assert "AssertionError" in reason and "train.py --epochs 4 --label diagnosis --learning-rate 0.5" in reason


def test_max_runtime_stops_the_job(env: Env) -> None:
    name = unique("slow")
    env.sagemaker.create_training_job(
        **training_request(env, name, "slow_train.py", StoppingCondition={"MaxRuntimeInSeconds": 1})
    )
    job = wait_training(env, name, timeout=10)
    # AWS ends a job that exceeds its MaxRuntimeInSeconds as Stopped, with this secondary status.
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Stopped", "MaxRuntimeExceeded")
    assert "MaxRuntimeInSeconds (1 s)" in job["FailureReason"]
    # What the script saved before it was stopped is uploaded, as in the SIGTERM window on AWS.
    saved = env.s3.get_object(Bucket=env.bucket, Key=f"models/{name}/output/model.tar.gz")["Body"].read()
    assert set(read_archive(saved)) == {"checkpoint.json"}


def test_stop_training_job_stops_the_script(env: Env) -> None:
    name = unique("slow")
    env.sagemaker.create_training_job(**training_request(env, name, "slow_train.py"))
    env.sagemaker.stop_training_job(TrainingJobName=name)
    job = wait_training(env, name, timeout=10)
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Stopped", "Stopped")
    assert "FailureReason" not in job
    with pytest.raises(env.sagemaker.exceptions.ClientError, match="in status Stopped"):
        env.sagemaker.stop_training_job(TrainingJobName=name)


def test_job_names_are_unique(env: Env) -> None:
    name = unique("slow")
    env.sagemaker.create_training_job(**training_request(env, name, "slow_train.py"))
    with pytest.raises(env.sagemaker.exceptions.ClientError, match="must be unique"):
        env.sagemaker.create_training_job(**training_request(env, name))
    env.sagemaker.stop_training_job(TrainingJobName=name)


def test_missing_input_data_fails_the_job_as_a_client_error(env: Env) -> None:
    name = unique("train")
    request = training_request(env, name)
    request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = env.uri("data/nowhere")
    env.sagemaker.create_training_job(**request)
    job = wait_training(env, name)
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("ClientError: Data download failed: no objects under")


def test_jobs_without_a_script_are_refused_with_a_reason(env: Env) -> None:
    name = unique("builtin")
    request = training_request(env, name, HyperParameters={"num_round": "10"})
    env.sagemaker.create_training_job(**request)
    job = wait_training(env, name)
    assert job["TrainingJobStatus"] == "Failed"
    assert "script-mode training only" in job["FailureReason"]


def test_a_container_entrypoint_runs_with_its_paths_mapped(env: Env) -> None:
    name = unique("byo")
    write_model = "import pathlib, sys; pathlib.Path(sys.argv[1], 'weights.txt').write_text('0.5')"
    spec = {"TrainingImage": "byo-image", "TrainingInputMode": "File", "ContainerEntrypoint": ["python3", "-c"]}
    spec["ContainerArguments"] = [write_model, "/opt/ml/model"]
    env.sagemaker.create_training_job(**training_request(env, name, AlgorithmSpecification=spec, HyperParameters={}))
    job = wait_training(env, name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    model = env.s3.get_object(Bucket=env.bucket, Key=f"models/{name}/output/model.tar.gz")["Body"].read()
    assert read_archive(model) == {"weights.txt": b"0.5"}


def test_a_manifest_file_channel_downloads_the_listed_objects(env: Env) -> None:
    # train.py checks that its train channel holds records.csv and part-2/records.csv.
    name = unique("train")
    manifest = [{"prefix": env.uri("data/train/")}, "records.csv", "part-2/records.csv"]
    env.s3.put_object(Bucket=env.bucket, Key=f"manifests/{name}.manifest", Body=json.dumps(manifest).encode())
    request = training_request(env, name)
    source = request["InputDataConfig"][0]["DataSource"]["S3DataSource"]
    source.update(S3DataType="ManifestFile", S3Uri=env.uri(f"manifests/{name}.manifest"))
    env.sagemaker.create_training_job(**request)
    job = wait_training(env, name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
