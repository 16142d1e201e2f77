"""Step Functions adapter: start a named execution at most once."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.exceptions import ClientError

from dxops.domain.dataset_trigger import ProcessingRun
from dxops.schemas.erasure import ErasureInput


def execution_arn(state_machine_arn: str, name: str) -> str:
    """arn:aws:states:<region>:<account>:stateMachine:<machine> -> ...:execution:<machine>:<name>"""
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"


class StepFunctionsRunStarter:
    def __init__(self, state_machine_arn: str, client: Any | None = None) -> None:
        self.state_machine_arn = state_machine_arn
        self._client = client or boto3.client("stepfunctions")

    def ensure_started(self, run: ProcessingRun) -> bool:
        """Same name and input: a running execution is returned as it is (AWS), a closed one raises
        ExecutionAlreadyExists; either way nothing new starts."""
        try:
            self._client.describe_execution(executionArn=execution_arn(self.state_machine_arn, run.name))
            return False
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ExecutionDoesNotExist":
                raise
        try:
            self._client.start_execution(
                stateMachineArn=self.state_machine_arn, name=run.name, input=run.trigger.model_dump_json()
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
                return False  # started meanwhile by another batch of the same window
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
