"""The moto 5.2.5 Glue internals that localcloud/glue.py patches or relies on, one test each.

When a moto upgrade changes one of them, the test that pins it fails here, loudly, and the patch
in localcloud/glue.py needs revisiting.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core.utils import method_names_from_class
from moto.glue.models import FakeJob, FakeJobRun, glue_backends
from moto.glue.responses import GlueResponse
from moto.moto_api import state_manager
from moto.moto_api._internal.managed_state_model import ManagedState

from localcloud import glue
from localcloud.cloud import LOCAL_CREDENTIALS, REGION
from localcloud.provision import ACCOUNT_ID

JOB = "moto-only-job"


@pytest.fixture
def client() -> Iterator[Any]:
    """moto in-process with one Glue job that is NOT registered as local: moto's own behaviour."""
    glue.install()
    saved = dict(os.environ)
    os.environ.update(LOCAL_CREDENTIALS)
    try:
        with mock_aws():
            glue_client = boto3.client("glue", region_name=REGION)
            glue_client.create_job(
                Name=JOB,
                Role="arn:aws:iam::123456789012:role/glue",
                Command={"Name": "glueetl", "ScriptLocation": "s3://nowhere/job.py"},
                DefaultArguments={"--a": "job", "--b": "job"},
                NonOverridableArguments={"--c": "fixed"},
                Timeout=7,
                GlueVersion="5.0",
                ExecutionProperty={"MaxConcurrentRuns": 1},
            )
            yield glue_client
    finally:
        os.environ.clear()
        os.environ.update(saved)


def fake_job() -> FakeJob:
    job: FakeJob = glue_backends[ACCOUNT_ID][REGION].jobs[JOB]
    return job


def test_patches_are_installed_over_the_moto_members_they_replace() -> None:
    glue.install()
    assert FakeJob.start_job_run is glue._start_job_run
    assert inspect.getattr_static(FakeJobRun, "status").fget is glue._status
    assert FakeJobRun.as_dict is glue._as_dict
    assert GlueResponse.batch_stop_job_run is glue._batch_stop_job_run  # type: ignore[attr-defined]
    # What they replace: ManagedState's status property and FakeJobRun's own methods.
    assert glue._moto_status is inspect.getattr_static(ManagedState, "status")
    assert glue._moto_start_job_run.__qualname__ == "FakeJob.start_job_run"
    assert glue._moto_as_dict.__qualname__ == "FakeJobRun.as_dict"


def test_moto_job_runs_succeed_at_once_and_run_nothing(client: Any) -> None:
    # Why the state and the description are overridden for local runs; other jobs keep this.
    assert state_manager.get_transition("glue::job_run") == {"progression": "immediate"}
    run_id = client.start_job_run(JobName=JOB)["JobRunId"]
    run = client.get_job_run(JobName=JOB, RunId=run_id)["JobRun"]
    assert (run["JobRunState"], run["ExecutionTime"], run["GlueVersion"]) == ("SUCCEEDED", 123, "0.9")
    assert "ErrorMessage" not in run


def test_moto_backend_starts_runs_through_fake_job_start_job_run(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def spy(self: FakeJob, *args: Any, **kwargs: Any) -> str:
        calls.append(kwargs)
        return glue._moto_start_job_run(self, *args, **kwargs)

    monkeypatch.setattr(FakeJob, "start_job_run", spy)
    client.start_job_run(JobName=JOB, Arguments={"--a": "run"})
    assert len(calls) == 1
    assert calls[0]["arguments"] == {"--a": "run"}


def test_moto_start_job_run_records_the_run_with_merged_arguments(client: Any) -> None:
    run_id = glue._moto_start_job_run(
        fake_job(),
        arguments={"--a": "run", "--c": "overridden?"},
        allocated_capacity=None,
        max_capacity=None,
        timeout=None,
        worker_type=None,
        security_configuration=None,
        number_of_workers=None,
        notification_property=None,
        previous_run_id=None,
    )
    run = fake_job().job_runs[-1]
    assert run.job_run_id == run_id
    # Default < run < non-overridable: the runner passes run.arguments to the script as they are.
    assert run.arguments == {"--a": "run", "--b": "job", "--c": "fixed"}
    assert run.timeout == 7  # the job's Timeout when the run gives none


def test_moto_limits_concurrent_runs_by_the_status_of_earlier_runs(client: Any) -> None:
    # Local runs report RUNNING through the status property, so moto's own check applies to them.
    state_manager.set_transition("glue::job_run", {"progression": "manual", "times": 1_000})
    try:
        client.start_job_run(JobName=JOB)
        with pytest.raises(client.exceptions.ConcurrentRunsExceededException):
            client.start_job_run(JobName=JOB)
    finally:
        state_manager.unset_transition("glue::job_run")


def test_moto_job_keeps_what_the_runner_reads(client: Any) -> None:
    job = fake_job()
    assert job.command == {"Name": "glueetl", "ScriptLocation": "s3://nowhere/job.py"}  # type: ignore[comparison-overlap]
    assert (job.name, job.glue_version, job.backend.region_name) == (JOB, "5.0", REGION)
    assert isinstance(job.job_runs, list)


def test_moto_has_no_batch_stop_job_run_and_dispatches_added_actions(client: Any) -> None:
    assert glue._MOTO_BATCH_STOP_JOB_RUN is None  # moto gained one: compare it with ours
    assert "batch_stop_job_run" in method_names_from_class(GlueResponse)  # how moto finds an action's method
    run_id = client.start_job_run(JobName=JOB)["JobRunId"]
    answer = client.batch_stop_job_run(JobName=JOB, JobRunIds=[run_id])
    assert answer["SuccessfulSubmissions"] == [{"JobName": JOB, "JobRunId": run_id}]
    assert client.get_job_run(JobName=JOB, RunId=run_id)["JobRun"]["JobRunState"] == "STOPPED"
