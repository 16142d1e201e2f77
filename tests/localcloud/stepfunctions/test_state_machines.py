"""State machines of a small test template run on the local cloud (in-process moto): real Lambda
handlers, Retry and Catch as AWS matches them, SageMaker and Glue jobs run to completion (.sync),
task tokens, nested executions and aws-sdk tasks."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from localcloud.cloud import LocalCloud
from localcloud.stepfunctions import execution_history, run_execution, start_execution, wait_for_execution
from tests.localcloud.stepfunctions.support import (
    failing_glue_runs,
    started,
    task_token,
    training_input,
    unique,
)

ISO_MILLIS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def sfn_cloud() -> Iterator[LocalCloud]:
    with started() as cloud:
        yield cloud


def output(execution: dict[str, Any]) -> Any:
    assert execution["status"] == "SUCCEEDED", execution
    return json.loads(execution["output"])


# --- Deploy -------------------------------------------------------------------------------------


def test_definitions_are_deployed_with_their_substitutions(sfn_cloud: LocalCloud) -> None:
    arn = sfn_cloud.physical_id("PipelineStateMachine")
    described = boto3.client("stepfunctions").describe_state_machine(stateMachineArn=arn)
    definition = json.loads(described["definition"])
    assert definition["States"]["Enrich"]["Resource"] == sfn_cloud.functions["EnrichFunction"].arn
    assert definition["States"]["Process"]["Parameters"]["FunctionName"] == sfn_cloud.functions["FlakyFunction"].arn
    assert "${" not in described["definition"]
    assert described["roleArn"] == sfn_cloud.stack.resolver.get_att("PipelineStateMachineRole", "Arn")
    assert described["loggingConfiguration"]["level"] == "ERROR"
    assert described["tracingConfiguration"] == {"enabled": True}
    assert sfn_cloud.stack.resolver.get_att("PipelineStateMachine", "Name") == described["name"]


# --- Lambda tasks -------------------------------------------------------------------------------


def test_input_passes_through_real_handlers(sfn_cloud: LocalCloud) -> None:
    record = {"id": unique("r"), "age": 54}
    execution = run_execution(sfn_cloud, "PipelineStateMachine", record)
    assert output(execution) == {**record, "enriched_by": sfn_cloud.functions["EnrichFunction"].name, "attempts": 1}
    assert execution_history(sfn_cloud, execution["executionArn"]) == ["Enrich", "Process", "Done"]


def test_a_handler_error_is_retried_on_its_exception_type(sfn_cloud: LocalCloud) -> None:
    execution = run_execution(sfn_cloud, "PipelineStateMachine", {"id": unique("r"), "fail_times": 2})
    assert output(execution)["attempts"] == 3
    assert execution_history(sfn_cloud, execution["executionArn"]) == [
        "Enrich",
        "Process",
        "Process",
        "Process",
        "Done",
    ]


def test_a_handler_error_without_retry_is_caught(sfn_cloud: LocalCloud) -> None:
    record_id = unique("r")
    execution = run_execution(sfn_cloud, "PipelineStateMachine", {"id": record_id, "fatal": True})
    result = output(execution)
    assert result["outcome"] == "handled"
    assert result["error"]["Error"] == "RuntimeError"  # the errorType, as on AWS for lambda:invoke
    assert json.loads(result["error"]["Cause"])["errorMessage"] == f"cannot process {record_id}"
    assert execution_history(sfn_cloud, execution["executionArn"]) == ["Enrich", "Process", "Handled"]


def test_the_function_arn_form_reports_the_exception_type_too(sfn_cloud: LocalCloud) -> None:
    execution = run_execution(sfn_cloud, "PipelineStateMachine", {"age": 54})  # no id: KeyError
    assert (execution["status"], execution["error"]) == ("FAILED", "Rejected")
    assert execution_history(sfn_cloud, execution["executionArn"]) == ["Enrich", "Rejected"]


# --- SageMaker and Glue jobs (.sync) ------------------------------------------------------------


def test_a_training_job_runs_to_completion(sfn_cloud: LocalCloud) -> None:
    job = training_input("train.py")
    execution = run_execution(sfn_cloud, "TrainingStateMachine", job)  # the script really runs (localcloud.sagemaker)
    training = output(execution)["training"]
    bucket = sfn_cloud.outputs["ArtifactBucketName"]
    assert training["name"] == f"{job['job_name']}-0"
    assert training["status"] == "Completed"
    assert training["model"] == f"s3://{bucket}/models/{training['name']}/output/model.tar.gz"
    assert isinstance(training["created"], int)  # epoch milliseconds, as the optimised integration returns
    assert execution_history(sfn_cloud, execution["executionArn"]) == ["Train", "Trained"]


def test_a_failed_training_job_is_retried_then_caught(sfn_cloud: LocalCloud) -> None:
    job = training_input("fail.py")
    execution = run_execution(sfn_cloud, "TrainingStateMachine", job)  # fail.py exits non-zero, for real
    result = output(execution)
    assert execution_history(sfn_cloud, execution["executionArn"]) == ["Train", "Train", "TrainingFailed"]
    assert result["outcome"] == "handled"
    assert result["error"]["Error"] == "States.TaskFailed"
    described = json.loads(result["error"]["Cause"])  # the last attempt's DescribeTrainingJob
    assert described["TrainingJobName"] == f"{job['job_name']}-1"
    assert described["TrainingJobStatus"] == "Failed"
    assert "the training channel holds no records" in described["FailureReason"]
    sagemaker = boto3.client("sagemaker")
    attempts = [f"{job['job_name']}-{n}" for n in (0, 1)]
    assert [sagemaker.describe_training_job(TrainingJobName=n)["TrainingJobStatus"] for n in attempts] == [
        "Failed",
        "Failed",
    ]


@pytest.fixture
def glue_job(sfn_cloud: LocalCloud) -> str:
    name = unique("etl")
    boto3.client("glue").create_job(
        Name=name,
        Role=sfn_cloud.stack.resolver.get_att("GlueStateMachineRole", "Arn"),
        Command={"Name": "glueetl", "ScriptLocation": f"s3://{sfn_cloud.outputs['ArtifactBucketName']}/etl.py"},
    )
    return name


def test_a_glue_job_run_is_awaited(sfn_cloud: LocalCloud, glue_job: str) -> None:
    execution = run_execution(sfn_cloud, "GlueStateMachine", {"job": glue_job, "day": "2026-11-27"})
    run = output(execution)["run"]
    assert run["state"] == "SUCCEEDED"
    assert isinstance(run["started"], int)
    [described] = boto3.client("glue").get_job_runs(JobName=glue_job)["JobRuns"]
    assert (described["Id"], described["Arguments"]) == (run["run"], {"--day": "2026-11-27"})


def test_a_failed_glue_job_run_is_caught(sfn_cloud: LocalCloud, glue_job: str) -> None:
    with failing_glue_runs():
        execution = run_execution(sfn_cloud, "GlueStateMachine", {"job": glue_job, "day": "2026-11-27"})
    result = output(execution)
    assert result["error"]["Error"] == "States.TaskFailed"
    assert json.loads(result["error"]["Cause"])["JobRunState"] == "FAILED"
    assert execution_history(sfn_cloud, execution["executionArn"]) == ["Transform", "TransformFailed"]


# --- Task tokens --------------------------------------------------------------------------------


def test_a_task_token_success_continues_after_heartbeats(sfn_cloud: LocalCloud) -> None:
    sfn = boto3.client("stepfunctions")
    request = unique("approve")
    arn = start_execution(sfn_cloud, "CallbackStateMachine", {"request": request})
    token = task_token(sfn_cloud, request)
    # HeartbeatSeconds is 8: long enough for a loaded CI machine to answer a token in time (at 4 s
    # the failure test below once timed out), short enough for the timeout test.
    for _ in range(4):  # 9.6 s in all: longer than HeartbeatSeconds, so the heartbeats count;
        time.sleep(2.4)  # 5.6 s of slack per beat
        sfn.send_task_heartbeat(taskToken=token)
    assert boto3.client("stepfunctions").describe_execution(executionArn=arn)["status"] == "RUNNING"
    sfn.send_task_success(taskToken=token, output=json.dumps({"approved_by": "reviewer-1"}))
    assert output(wait_for_execution(sfn_cloud, arn))["approval"] == {"approved_by": "reviewer-1"}
    assert execution_history(sfn_cloud, arn) == ["AwaitApproval", "Approved"]


def test_a_task_token_failure_is_caught_with_its_cause(sfn_cloud: LocalCloud) -> None:
    request = unique("approve")
    arn = start_execution(sfn_cloud, "CallbackStateMachine", {"request": request})
    boto3.client("stepfunctions").send_task_failure(
        taskToken=task_token(sfn_cloud, request), error="Rejected", cause="consent withdrawn"
    )
    result = output(wait_for_execution(sfn_cloud, arn))
    assert result["error"] == {"Error": "Rejected", "Cause": "consent withdrawn"}
    assert execution_history(sfn_cloud, arn) == ["AwaitApproval", "Refused"]


def test_a_task_without_heartbeat_times_out(sfn_cloud: LocalCloud) -> None:
    request = unique("approve")
    arn = start_execution(sfn_cloud, "CallbackStateMachine", {"request": request})
    task_token(sfn_cloud, request)  # taken, never answered
    result = output(wait_for_execution(sfn_cloud, arn, timeout=20))
    assert result["error"]["Error"] in {"States.Timeout", "States.HeartbeatTimeout"}
    assert result["outcome"] == "refused"


# --- Executions ---------------------------------------------------------------------------------


def test_start_execution_tasks_and_sdk_timestamps(sfn_cloud: LocalCloud) -> None:
    execution = run_execution(sfn_cloud, "ParentStateMachine", {"value": 42})
    result = output(execution)
    child_machine = sfn_cloud.physical_id("ChildStateMachine").split(":")[-1]
    started = result["started"]  # states:startExecution (request-response), unnamed
    assert re.fullmatch(
        rf"arn:aws:states:eu-west-1:\d{{12}}:execution:{child_machine}:{UUID.pattern}", started["ExecutionArn"]
    )
    assert isinstance(started["StartDate"], int)
    assert result["child"]["status"] == "SUCCEEDED"  # states:startExecution.sync:2 waited
    assert result["child"]["output"] == {"echo": 42}
    described = result["described"]  # aws-sdk:sfn:describeExecution: PascalCase, ISO timestamps
    assert described["name"] == started["ExecutionArn"].rsplit(":", 1)[1]
    assert ISO_MILLIS.fullmatch(described["startDate"])
    assert execution_history(sfn_cloud, execution["executionArn"]) == ["StartChild", "RunChild", "DescribeFirstChild"]


def test_executions_without_a_name_do_not_collide(sfn_cloud: LocalCloud) -> None:
    first, second = (run_execution(sfn_cloud, "ChildStateMachine", {"value": n}) for n in (1, 2))
    assert first["executionArn"] != second["executionArn"]
    assert UUID.fullmatch(first["name"]) and UUID.fullmatch(second["name"])
    assert [output(first), output(second)] == [{"echo": 1}, {"echo": 2}]


def test_a_named_execution_keeps_its_name(sfn_cloud: LocalCloud) -> None:
    name = unique("named")
    execution = run_execution(sfn_cloud, "ChildStateMachine", {"value": 3}, name=name)
    assert execution["executionArn"].endswith(f":{name}")
