"""Step Functions adapters: start a named execution at most once; answer task tokens."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.exceptions import ClientError

from dxops.domain.dataset_trigger import ProcessingRun
from dxops.schemas.erasure import ErasureInput


def execution_arn(state_machine_arn: str, name: str) -> str:
    """arn:aws:states:<region>:<account>:stateMachine:<machine> -> ...:execution:<machine>:<name>"""
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class StepFunctionsExecutions:
    """Named executions of one state machine: a name starts at most one execution."""

    def __init__(self, state_machine_arn: str, client: Any | None = None) -> None:
        self.state_machine_arn = state_machine_arn
        self._client = client or boto3.client("stepfunctions")

    def ensure_started(self, name: str, document: str) -> bool:
        """Same name and input: a running execution is returned as it is (AWS), a closed one raises
        ExecutionAlreadyExists; either way nothing new starts."""
        try:
            self._client.describe_execution(executionArn=execution_arn(self.state_machine_arn, name))
            return False
        except ClientError as error:
            if _error_code(error) != "ExecutionDoesNotExist":
                raise
        try:
            self._client.start_execution(stateMachineArn=self.state_machine_arn, name=name, input=document)
        except ClientError as error:
            if _error_code(error) == "ExecutionAlreadyExists":
                return False  # started meanwhile by another caller with the same name
            raise
        return True

    def status(self, name: str) -> str | None:
        try:
            described = self._client.describe_execution(executionArn=execution_arn(self.state_machine_arn, name))
        except ClientError as error:
            if _error_code(error) == "ExecutionDoesNotExist":
                return None
            raise
        return str(described["status"])


class StepFunctionsRunStarter:
    """Data-processing runs (one per trigger window)."""

    def __init__(self, state_machine_arn: str, client: Any | None = None) -> None:
        self._executions = StepFunctionsExecutions(state_machine_arn, client)

    def ensure_started(self, run: ProcessingRun) -> bool:
        return self._executions.ensure_started(run.name, run.trigger.model_dump_json())


class StepFunctionsTaskTokens:
    """Resume executions waiting on a task token (.waitForTaskToken)."""

    GONE = ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken")

    def __init__(self, client: Any | None = None) -> None:
        self._client = client or boto3.client("stepfunctions")

    def succeed(self, token: str, output: str) -> bool:
        try:
            self._client.send_task_success(taskToken=token, output=output)
        except ClientError as error:
            if _error_code(error) in self.GONE:
                return False
            raise
        return True

    def fail(self, token: str, error: str, cause: str) -> bool:
        try:
            self._client.send_task_failure(taskToken=token, error=error, cause=cause)
        except ClientError as failure:
            if _error_code(failure) in self.GONE:
                return False
            raise
        return True


class StepFunctionsErasureRuns:
    """One execution of the erasure state machine per request, named after the request id."""

    def __init__(self, state_machine_arn: str, client: Any | None = None) -> None:
        self.state_machine_arn = state_machine_arn
        self._client = client or boto3.client("stepfunctions")

    def start(self, erasure: ErasureInput) -> None:
        self._client.start_execution(
            stateMachineArn=self.state_machine_arn, name=erasure.request_id, input=erasure.model_dump_json()
        )

    def status(self, request_id: str) -> str | None:
        """RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED; None if no such execution."""
        try:
            arn = execution_arn(self.state_machine_arn, request_id)
            return str(self._client.describe_execution(executionArn=arn)["status"])
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ExecutionDoesNotExist":
                return None
            raise
