"""The same state machines with the local cloud as a moto server: the interpreter's own AWS calls
(Lambda, SageMaker, Step Functions) travel over HTTP to this server, whose port moto never learns
from ThreadedMotoServer (localcloud.stepfunctions derives it from AWS_ENDPOINT_URL)."""

from __future__ import annotations

import json
import os

import boto3

from localcloud.stepfunctions import execution_history, run_execution
from tests.localcloud.stepfunctions.support import started, training_input, unique


def test_state_machines_run_against_the_moto_server() -> None:
    with started(server=True) as cloud:
        assert cloud.endpoint is not None
        assert os.environ["AWS_ENDPOINT_URL"] == cloud.endpoint
        assert "MOTO_PORT" not in os.environ

        pipeline = run_execution(cloud, "PipelineStateMachine", {"id": unique("r"), "fail_times": 1})
        assert json.loads(pipeline["output"])["attempts"] == 2
        assert execution_history(cloud, pipeline["executionArn"]) == ["Enrich", "Process", "Process", "Done"]

        training = run_execution(cloud, "TrainingStateMachine", training_input("train.py"))
        assert json.loads(training["output"])["training"]["status"] == "Completed"

        parent = run_execution(cloud, "ParentStateMachine", {"value": 7})
        assert json.loads(parent["output"])["child"]["output"] == {"echo": 7}

        # Other processes see the same executions through the server.
        sfn = boto3.client("stepfunctions", endpoint_url=cloud.endpoint)
        listed = sfn.list_executions(stateMachineArn=cloud.physical_id("ChildStateMachine"))["executions"]
        assert len(listed) == 2  # one per StartExecution task, each with its own generated name
