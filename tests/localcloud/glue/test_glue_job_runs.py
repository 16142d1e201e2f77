"""Glue job runs on the in-process local cloud, with a script that needs no Spark (fast).

The test template's jobs run tests/localcloud/glue/scripts/*.py; Spark runs are in
test_glue_spark_server_mode.py.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from localcloud import glue
from localcloud.cloud import LocalCloud

HERE = Path(__file__).parent
TEMPLATE = HERE / "template.yaml"
PLAIN_JOB = "dxops-test-plain"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    # The local cloud stops its Glue runs itself (services' shutdown, while moto still answers).
    with (
        glue.configured(workdir=tmp_path_factory.mktemp("glue-runs")),
        LocalCloud.start(template_path=TEMPLATE) as local_cloud,
    ):
        yield local_cloud


@pytest.fixture
def bucket(cloud: LocalCloud) -> str:
    return cloud.outputs["DataBucketName"]


def start(job: str, arguments: dict[str, str]) -> str:
    run_id: str = boto3.client("glue").start_job_run(JobName=job, Arguments=arguments)["JobRunId"]
    return run_id


def finished(job: str, run_id: str, timeout: float = 30.0) -> dict[str, Any]:
    glue.wait_for_job_run(job, run_id, timeout)
    run: dict[str, Any] = boto3.client("glue").get_job_run(JobName=job, RunId=run_id)["JobRun"]
    return run


def wait_until_sleeping(run_id: str, timeout: float = 10.0) -> int:
    """The script's pid, once it has printed "sleeping" (the process runs for sure)."""
    run = glue.local_run(run_id)
    assert run is not None
    deadline = time.monotonic() + timeout
    while not (run.stdout_path.is_file() and "sleeping" in run.stdout_path.read_text()):
        assert time.monotonic() < deadline, f"the script never started: {run.state}"
        time.sleep(0.05)
    assert run.pid is not None
    return run.pid


def put_ndjson(bucket: str, key: str, rows: list[dict[str, Any]]) -> None:
    body = "\n".join(json.dumps(row) for row in rows).encode()
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=body)


def test_template_job_is_created_in_glue_with_its_properties(cloud: LocalCloud) -> None:
    job = boto3.client("glue").get_job(JobName=PLAIN_JOB)["Job"]
    assert job["Command"]["ScriptLocation"] == str((HERE / "scripts" / "plain_job.py").resolve())
    assert job["DefaultArguments"] == {"--mode": "copy", "--label": "from-template"}
    assert (job["GlueVersion"], job["WorkerType"], job["NumberOfWorkers"]) == ("5.0", "G.1X", 2)
    assert (job["Timeout"], job["MaxRetries"], job["ExecutionProperty"]) == (1, 1, {"MaxConcurrentRuns": 1})
    assert cloud.physical_id("PlainJob") == PLAIN_JOB


def test_run_reads_s3_inputs_and_writes_s3_outputs_through_the_mirror(cloud: LocalCloud, bucket: str) -> None:
    s3 = boto3.client("s3")
    put_ndjson(bucket, "plain/in/a.ndjson", [{"patient": "p1"}, {"patient": "p2"}])
    put_ndjson(bucket, "plain/in/day=2/b.ndjson", [{"patient": "p3"}])
    s3.put_object(Bucket=bucket, Key="plain/out/stale.json", Body=b"{}")
    s3.put_object(Bucket=bucket, Key="plain/elsewhere.json", Body=b"{}")

    run_id = start(
        PLAIN_JOB,
        {"--input": f"s3://{bucket}/plain/in/", "--output": f"s3://{bucket}/plain/out/", "--label": "run-label"},
    )
    run = finished(PLAIN_JOB, run_id)

    assert run["JobRunState"] == "SUCCEEDED", run.get("ErrorMessage")
    assert run["CompletedOn"] >= run["StartedOn"]
    assert run["ExecutionTime"] >= 0
    assert run["Arguments"]["--input"] == f"s3://{bucket}/plain/in/"  # the API shows what was asked
    summary = json.loads(s3.get_object(Bucket=bucket, Key="plain/out/summary.json")["Body"].read())
    assert summary == {
        "rows": 3,
        "patients": ["p1", "p2", "p3"],
        "label": "run-label",  # the run's argument overrides the job's default
        "job": PLAIN_JOB,
        "run": run_id,
        "input_scheme": "file",
        "temp_dir_scheme": "file",
    }
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="plain/")["Contents"]}
    # The script replaced the output folder: the stale object is gone; what it did not touch stays.
    assert keys == {"plain/in/a.ndjson", "plain/in/day=2/b.ndjson", "plain/out/summary.json", "plain/elsewhere.json"}
    # Unchanged inputs are not uploaded again (a new version would appear in the versioned bucket).
    versions = s3.list_object_versions(Bucket=bucket, Prefix="plain/in/")["Versions"]
    assert len(versions) == 2


def test_run_output_reaches_cloudwatch_logs_and_local_files(cloud: LocalCloud, bucket: str) -> None:
    run_id = start(PLAIN_JOB, {"--input": f"s3://{bucket}/logs/in/", "--output": f"s3://{bucket}/logs/out/"})
    assert finished(PLAIN_JOB, run_id)["JobRunState"] == "SUCCEEDED"
    events = boto3.client("logs").get_log_events(logGroupName=glue.OUTPUT_LOG_GROUP, logStreamName=run_id)["events"]
    assert [e["message"] for e in events] == ["summarised 0 rows"]
    local = glue.local_run(run_id)
    assert local is not None
    assert local.stdout_path.read_text() == "summarised 0 rows\n"


def test_script_exception_fails_the_run_with_its_type_and_message_only(cloud: LocalCloud, bucket: str) -> None:
    run_id = start(
        PLAIN_JOB,
        {"--mode": "raise", "--input": f"s3://{bucket}/x/", "--output": f"s3://{bucket}/raise-out/"},
    )
    run = finished(PLAIN_JOB, run_id)
    assert run["JobRunState"] == "FAILED"
    assert run["ErrorMessage"] == "ValueError: glucose out of range"  # not the data value the script printed
    local = glue.local_run(run_id)
    assert local is not None
    assert "Traceback" in local.stderr_path.read_text()
    assert "31.7" in local.stdout_path.read_text()
    # A failed run changes nothing in S3.
    assert "Contents" not in boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix="raise-out/")


def test_missing_required_argument_fails_clearly_before_any_work(cloud: LocalCloud, bucket: str) -> None:
    run_id = start(PLAIN_JOB, {"--input": f"s3://{bucket}/x/"})
    run = finished(PLAIN_JOB, run_id)
    assert run["JobRunState"] == "FAILED"
    assert run["ErrorMessage"] == "GlueArgumentError: the following arguments are required: --output"


def test_run_longer_than_the_job_timeout_ends_timeout(cloud: LocalCloud, bucket: str) -> None:
    previous = glue.configure(timeout_minute_seconds=1.0)  # the job's Timeout: 1 "minute" = 1 s here
    try:
        started = time.monotonic()
        run_id = start(PLAIN_JOB, {"--mode": "sleep", "--input": f"s3://{bucket}/x/", "--output": f"s3://{bucket}/y/"})
        run = finished(PLAIN_JOB, run_id)
    finally:
        glue.configure(previous)
    assert run["JobRunState"] == "TIMEOUT"
    assert run["ErrorMessage"] == "Job run timed out (Timeout: 1 min)"
    assert time.monotonic() - started < 10


def test_concurrent_runs_are_limited_and_batch_stop_job_run_stops_a_run(cloud: LocalCloud, bucket: str) -> None:
    client = boto3.client("glue")
    arguments = {"--mode": "sleep", "--input": f"s3://{bucket}/x/", "--output": f"s3://{bucket}/y/"}
    run_id = start(PLAIN_JOB, arguments)
    pid = wait_until_sleeping(run_id)
    assert client.get_job_run(JobName=PLAIN_JOB, RunId=run_id)["JobRun"]["JobRunState"] == "RUNNING"

    with pytest.raises(client.exceptions.ConcurrentRunsExceededException):
        start(PLAIN_JOB, arguments)  # MaxConcurrentRuns: 1

    answer = client.batch_stop_job_run(JobName=PLAIN_JOB, JobRunIds=[run_id, "jr_unknown"])
    assert answer["SuccessfulSubmissions"] == [{"JobName": PLAIN_JOB, "JobRunId": run_id}]
    assert [e["ErrorDetail"]["ErrorCode"] for e in answer["Errors"]] == ["EntityNotFoundException"]
    run = finished(PLAIN_JOB, run_id)
    assert run["JobRunState"] == "STOPPED"
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # the script's process group is gone

    again = client.batch_stop_job_run(JobName=PLAIN_JOB, JobRunIds=[run_id])
    assert [e["ErrorDetail"]["ErrorCode"] for e in again["Errors"]] == ["InvalidInputException"]


def test_script_location_in_s3_is_read_from_the_emulated_s3(cloud: LocalCloud, bucket: str) -> None:
    job = "dxops-test-s3-script"
    arguments = {"--input": f"s3://{bucket}/s3script/in/", "--output": f"s3://{bucket}/s3script/out/"}
    missing = finished(job, start(job, arguments))
    assert missing["JobRunState"] == "FAILED"
    assert missing["ErrorMessage"].startswith(f"ScriptLocation s3://{bucket}/scripts/plain_job.py cannot be read")

    boto3.client("s3").upload_file(str(HERE / "scripts" / "plain_job.py"), bucket, "scripts/plain_job.py")
    run = finished(job, start(job, arguments))
    assert run["JobRunState"] == "SUCCEEDED", run.get("ErrorMessage")
    summary = boto3.client("s3").get_object(Bucket=bucket, Key="s3script/out/summary.json")["Body"].read()
    assert json.loads(summary)["label"] == "from-s3"
