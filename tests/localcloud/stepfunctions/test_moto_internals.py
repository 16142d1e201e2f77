"""The moto internals that localcloud.stepfunctions patches, pinned one by one.

Each test holds either the signature a patch relies on or the moto gap the patch works around
(run against moto's original code). A moto upgrade that changes one fails here, naming the patch
to revisit: adapt it, or delete it when moto has closed the gap."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import pkgutil
import sys
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import jsonpath_ng.ext
import moto
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent
from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_aws_sdk
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
    StateTaskService,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
    StateTaskServiceAwsSdk,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
    StateTaskServiceCallback,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_glue import (
    StateTaskServiceGlue,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_unsupported import (
    StateTaskServiceUnsupported,
)
from moto.stepfunctions.parser.asl.utils import boto_client, json_path
from moto.stepfunctions.parser.models import StepFunctionsParserBackend, stepfunctions_parser_backends
from moto.stepfunctions.responses import StepFunctionResponse

from localcloud import stepfunctions
from localcloud.cloud import LOCAL_CREDENTIALS, MOTO_CONFIG, REGION
from localcloud.provision import ACCOUNT_ID
from localcloud.stepfunctions import ORIGINALS, run_execution

ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/pin"


def parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


@pytest.fixture
def bare_moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto with execution switched on and the patches installed; a test restores one original."""
    stepfunctions.install()
    for key, value in LOCAL_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    with mock_aws(config=MOTO_CONFIG):  # type: ignore[call-overload]
        yield


def one_task_machine(task: dict[str, Any]) -> str:
    definition = {"StartAt": "Task", "States": {"Task": {**task, "Type": "Task", "End": True}}}
    sfn = boto3.client("stepfunctions", region_name=REGION)
    return sfn.create_state_machine(name="pin", definition=json.dumps(definition), roleArn=ROLE)["stateMachineArn"]


def test_moto_is_the_version_these_pins_were_taken_from() -> None:
    assert moto.__version__ == "5.2.5"


# --- Execution names (patch: _start_execution) --------------------------------------------------


def test_start_execution_signature() -> None:
    assert parameters(ORIGINALS["start_execution"]) == [
        "self",
        "state_machine_arn",
        "name",
        "execution_input",
        "trace_header",
    ]


def test_moto_names_an_unnamed_execution_none(bare_moto: None) -> None:
    arn = one_task_machine({"Resource": "arn:aws:states:::aws-sdk:sts:getCallerIdentity"})
    backend = stepfunctions_parser_backends[ACCOUNT_ID][REGION]
    execution = ORIGINALS["start_execution"](backend, arn, None, "{}")
    assert execution.execution_arn.endswith(":None")


# --- Requests and responses of integrations (patches: _normalise_parameters/_response) ----------


def test_moto_does_not_normalise_requests_or_responses() -> None:
    request, response = {"StateMachineArn": "arn", "Input": "{}"}, {"executionArn": "arn", "startDate": 0}
    ORIGINALS["normalise_parameters"](object(), request)
    ORIGINALS["normalise_response"](object(), response)
    assert (request, response) == ({"StateMachineArn": "arn", "Input": "{}"}, {"executionArn": "arn", "startDate": 0})


def test_normalisation_hooks_and_helpers_signatures() -> None:
    assert parameters(ORIGINALS["normalise_parameters"]) == [
        "self",
        "parameters",
        "boto_service_name",
        "service_action_name",
    ]
    assert parameters(ORIGINALS["normalise_response"]) == [
        "self",
        "response",
        "boto_service_name",
        "service_action_name",
    ]
    assert parameters(StateTaskService._to_boto_request) == ["self", "parameters", "structure_shape"]
    assert parameters(StateTaskService._from_boto_response) == ["self", "response", "structure_shape"]
    assert parameters(StateTaskService._get_boto_service_name) == ["self", "boto_service_name"]
    assert parameters(StateTaskService._get_boto_service_action) == ["self", "service_action_name"]


def test_moto_cannot_describe_an_execution_whose_output_holds_timestamps(
    bare_moto: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(StateTaskService, "_normalise_response", ORIGINALS["normalise_response"])
    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket="pin", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    boto3.client("s3", region_name=REGION).put_object(Bucket="pin", Key="k", Body=b"x")
    arn = one_task_machine({"Resource": "arn:aws:states:::aws-sdk:s3:listObjectsV2", "Parameters": {"Bucket": "pin"}})
    with pytest.raises(TypeError, match="not JSON serializable"):
        run_execution(boto3.client("stepfunctions", region_name=REGION), arn)


# --- .sync without a task token (patch: _eval_integration_pattern) ------------------------------


def test_integration_pattern_signatures() -> None:
    hook = ["self", "env", "resource_runtime_part", "normalised_parameters", "state_credentials"]
    assert parameters(ORIGINALS["eval_integration_pattern"]) == hook
    assert parameters(StateTaskServiceCallback._build_sync_resolver) == hook
    assert parameters(StateTaskServiceCallback._build_sync2_resolver) == hook
    assert parameters(StateTaskServiceCallback._eval_sync) == [
        "self",
        "env",
        "sync_resolver",
        "timeout_seconds",
        "callback_endpoint",
        "heartbeat_endpoint",
    ]
    glue = StateTaskServiceGlue()  # type: ignore[no-untyped-call]
    assert glue._supported_integration_patterns == {ResourceCondition.Sync}


def test_moto_fails_every_glue_sync_task(bare_moto: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(StateTaskServiceCallback, "_eval_integration_pattern", ORIGINALS["eval_integration_pattern"])
    boto3.client("glue", region_name=REGION).create_job(
        Name="pin", Role=ROLE, Command={"Name": "glueetl", "ScriptLocation": "s3://pin/etl.py"}
    )
    arn = one_task_machine({"Resource": "arn:aws:states:::glue:startJobRun.sync", "Parameters": {"JobName": "pin"}})
    execution = run_execution(boto3.client("stepfunctions", region_name=REGION), arn)
    assert execution["status"] == "FAILED"
    assert "interrupt_all" in execution["cause"]  # None.interrupt_all(): no callback endpoint


# --- SageMaker (patch: the factory's state_task_service_for) ------------------------------------


def test_moto_has_no_sagemaker_sync_integration() -> None:
    task = ORIGINALS["state_task_service_for"]("sagemaker")
    assert isinstance(task, StateTaskServiceUnsupported)
    assert ResourceCondition.Sync not in task._supported_integration_patterns
    # The factory function is looked up in state_task_factory's globals when a task is built.
    assert "state_task_service_for" in state_task_factory.state_task_for.__code__.co_names


def test_what_the_sagemaker_integration_builds_on() -> None:
    assert parameters(StateTaskServiceCallback.__init__) == ["self", "supported_integration_patterns"]
    assert parameters(StateTaskService._eval_service_task) == [
        "self",
        "env",
        "resource_runtime_part",
        "normalised_parameters",
        "state_credentials",
    ]
    assert parameters(StateTaskService._validate_service_integration_is_supported) == ["self"]
    assert parameters(StateTaskServiceCallback._from_error) == ["self", "env", "ex"]
    assert parameters(FailureEvent.__init__) == ["self", "env", "error_name", "event_type", "event_details"]
    assert parameters(boto_client.boto_client_for) == ["region", "service", "state_credentials"]


# --- Server mode (patch: boto_client.moto_server_port) ------------------------------------------


def test_moto_sends_the_interpreters_calls_to_moto_port_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOTO_PORT", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4567")
    assert ORIGINALS["moto_server_port"]() == "5000"
    assert stepfunctions._moto_server_port() == "4567"
    assert "moto_server_port" in boto_client.boto_client_for.__code__.co_names  # looked up at call time
    assert "MOTO_PORT" not in inspect.getsource(ThreadedMotoServer)
    assert "MOTO_PORT" not in os.environ


# --- SendTaskFailure (patch: StepFunctionResponse.send_task_failure) ----------------------------


def test_moto_drops_the_cause_of_send_task_failure() -> None:
    assert "cause" not in inspect.getsource(ORIGINALS["send_task_failure"])
    assert parameters(StepFunctionsParserBackend.send_task_failure) == ["self", "task_token", "error", "cause"]
    assert parameters(ORIGINALS["send_task_failure"]) == ["self"]


# --- aws-sdk error names (patch: StateTaskServiceAwsSdk._normalise_exception_name) ------------------


def test_moto_names_aws_sdk_errors_after_botocores_exception_class() -> None:
    unmodelled = ClientError({"Error": {"Code": "ValidationException", "Message": "m"}}, "DescribeEndpoint")
    assert ORIGINALS["normalise_exception_name"]("sagemaker", unmodelled) == "sagemaker.sagemakerException"
    assert parameters(ORIGINALS["normalise_exception_name"]) == ["norm_service_name", "ex"]
    # The service's name comes from this module dict (moto binds dynamodb and sfn; the patch adds more).
    assert "_SERVICE_ERROR_NAMES" in inspect.getsource(StateTaskServiceAwsSdk._normalise_service_error_name)
    assert {"dynamodb": "DynamoDb", "sfn": "Sfn"}.items() <= state_task_service_aws_sdk._SERVICE_ERROR_NAMES.items()
    assert "self._normalise_exception_name(" in inspect.getsource(StateTaskServiceAwsSdk._from_error)


def test_aws_sdk_errors_are_named_by_their_code() -> None:
    stepfunctions.install()
    unmodelled = ClientError({"Error": {"Code": "ValidationException", "Message": "m"}}, "DescribeEndpoint")
    not_found = ClientError({"Error": {"Code": "ResourceNotFound", "Message": "m"}}, "AssociateTrialComponent")
    name = StateTaskServiceAwsSdk._normalise_exception_name
    assert name(StateTaskServiceAwsSdk._normalise_service_error_name("sagemaker"), unmodelled) == (
        "SageMaker.ValidationException"
    )
    assert name("SageMaker", not_found) == "SageMaker.ResourceNotFoundException"
    assert name("S3", ValueError("x")) == ORIGINALS["normalise_exception_name"]("S3", ValueError("x"))


# --- JSONPath through array indexes (patch: json_path.extract_json, rebound where imported) -------------


def test_moto_wraps_a_value_reached_through_an_array_index_in_a_list() -> None:
    data = {"List": [{"Arn": "a"}, {"Arn": "b"}]}
    assert ORIGINALS["extract_json"]("$.List[0].Arn", data) == ["a"]  # AWS: "a"
    assert ORIGINALS["extract_json"]("$.List[*].Arn", data) == ["a", "b"]
    assert parameters(ORIGINALS["extract_json"]) == ["path", "data"]
    assert json_path.parse is jsonpath_ng.ext.parse


def test_every_interpreter_module_uses_the_patched_extract_json() -> None:
    stepfunctions.install()
    import moto.stepfunctions.parser as parser_package

    for module_info in pkgutil.walk_packages(parser_package.__path__, parser_package.__name__ + "."):
        try:
            importlib.import_module(module_info.name)
        except ImportError:  # LocalStack-only modules moto ships but never imports
            continue
    holders = [
        name
        for name, module in list(sys.modules.items())
        if name.startswith("moto.stepfunctions.parser") and hasattr(module, "extract_json")
    ]
    assert len(holders) >= 9
    stale = [name for name in holders if sys.modules[name].extract_json is ORIGINALS["extract_json"]]
    assert stale == [], "a module imported after install() keeps moto's extract_json: rebind it"
    data = {"List": [{"Arn": "a"}, {"Arn": "b"}]}
    assert stepfunctions._extract_json("$.List[0].Arn", data) == "a"
    assert stepfunctions._extract_json("$.List[1:].Arn", data) == ["b"]
    assert stepfunctions._extract_json("$..Arn", data) == ["a", "b"]


def test_install_replaces_each_pinned_original() -> None:
    stepfunctions.install()
    installed = {
        "start_execution": StepFunctionsParserBackend.start_execution,
        "normalise_parameters": StateTaskService._normalise_parameters,
        "normalise_response": StateTaskService._normalise_response,
        "eval_integration_pattern": StateTaskServiceCallback._eval_integration_pattern,
        "state_task_service_for": state_task_factory.state_task_service_for,  # type: ignore[attr-defined]
        "moto_server_port": boto_client.moto_server_port,  # type: ignore[attr-defined]
        "send_task_failure": StepFunctionResponse.send_task_failure,
        "normalise_exception_name": vars(StateTaskServiceAwsSdk)["_normalise_exception_name"],
        "extract_json": json_path.extract_json,
    }
    assert installed.keys() == ORIGINALS.keys()
    assert all(installed[name] is not ORIGINALS[name] for name in ORIGINALS)
    stepfunctions.install()  # idempotent: the originals stay moto's
    assert ORIGINALS["start_execution"].__module__ == "moto.stepfunctions.parser.models"
