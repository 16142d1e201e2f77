"""Step Functions on the local cloud: the template's state machines run for real in moto's interpreter.

moto executes ASL with an interpreter vendored from LocalStack (moto/stepfunctions/parser/), which
has gaps that the dxops machines hit. install() closes them, each with one small patch that
tests/localcloud/stepfunctions/test_moto_internals.py pins, so that a moto upgrade fails loudly:

- service integration requests and responses are normalised against botocore's shapes as on AWS
  (PascalCase parameters such as StateMachineArn reach boto's stateMachineArn; responses come back
  PascalCase), and timestamps become JSON values (moto's DescribeExecution crashed on datetimes);
- `.sync` integrations without a task token (Glue, SageMaker) no longer dereference a None
  callback endpoint; SageMaker gets an optimised integration (training, processing, transform
  jobs run to completion; a failed job raises States.TaskFailed with the job's description);
- StartExecution without a name gets a UUID, as on AWS (moto named every execution "None");
- SendTaskFailure passes its cause on; in server mode the interpreter's AWS calls reach this
  moto server (ThreadedMotoServer leaves MOTO_PORT unset);
- a definite JSONPath through an array index ($.List[0].Arn) selects the value, as on AWS; moto
  wrapped it in a list (["arn:..."]) whenever an index preceded the last step;
- aws-sdk errors are named as AWS names them, ServiceName.ErrorCode with an Exception suffix
  (SageMaker.ValidationException, SageMaker.ResourceNotFoundException): moto named them after
  botocore's exception class, in lower case ("sagemaker.sagemakerException" for a ValidationException).

The provisioner creates AWS::StepFunctions::StateMachine with DefinitionSubstitutions applied and
the definition linted, so a broken machine fails the local deploy instead of its first execution.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import urlsplit

import boto3
import botocore.session
from botocore.exceptions import ClientError, UnknownServiceError
from jsonpath_ng.ext import parse as jsonpath_parse  # type: ignore[attr-defined]
from moto.core.responses import ActionResult, EmptyResult
from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
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
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.utils import boto_client, json_path
from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str
from moto.stepfunctions.parser.models import StepFunctionsParserBackend
from moto.stepfunctions.responses import StepFunctionResponse

from localcloud.cloud import REGION, LocalCloud
from localcloud.provision import Context, camel_keys, register_provisioner
from localcloud.template import Physical

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

LOG = logging.getLogger(__name__)


def _original(owner: Any, attribute: str) -> Any:
    """moto's own attribute, remembered on its owner the first time, so that a second import of
    this module (or a second install) never takes a patch for the original."""
    key = f"_localcloud_original_{attribute}"
    if key not in vars(owner):
        setattr(owner, key, vars(owner)[attribute])
    return vars(owner)[key]


# moto's originals, kept for the patches that delegate to them and for the tests that pin them.
ORIGINALS: Final[dict[str, Any]] = {
    "start_execution": _original(StepFunctionsParserBackend, "start_execution"),
    "normalise_parameters": _original(StateTaskService, "_normalise_parameters"),
    "normalise_response": _original(StateTaskService, "_normalise_response"),
    "eval_integration_pattern": _original(StateTaskServiceCallback, "_eval_integration_pattern"),
    "state_task_service_for": _original(state_task_factory, "state_task_service_for"),
    "moto_server_port": _original(boto_client, "moto_server_port"),
    "send_task_failure": _original(StepFunctionResponse, "send_task_failure"),
    "normalise_exception_name": _original(StateTaskServiceAwsSdk, "_normalise_exception_name"),
    "extract_json": _original(json_path, "extract_json"),
}


# --- Deploy: AWS::StepFunctions::StateMachine -------------------------------------------------


class InvalidStateMachineDefinition(ValueError):
    """A definition that AWS would reject (or that would fail at run time): the deploy stops."""


_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_.:-]+)\}")


def substitute(definition: str, substitutions: dict[str, Any]) -> str:
    """DefinitionSubstitutions as CloudFormation applies them: each ${Name} becomes the value's text."""

    def text(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        return text(substitutions[name]) if name in substitutions else match.group(0)

    result = _PLACEHOLDER.sub(replace, definition)
    left = sorted(set(_PLACEHOLDER.findall(result)))
    if left:
        LOG.warning("state machine definition keeps placeholders without a substitution: %s", ", ".join(left))
    return result


def lint(definition: str) -> dict[str, Any]:
    """Parse and lint a definition with statelint (the linter `make lint` runs over statemachines/)."""
    try:
        document = json.loads(definition)
    except json.JSONDecodeError as exc:
        raise InvalidStateMachineDefinition(f"definition is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise InvalidStateMachineDefinition("definition is not a JSON object")
    try:
        from statelint.linter import Linter  # type: ignore[import-untyped]  # noqa: PLC0415 - optional dev tool
    except ImportError:
        problems = _minimal_problems(document)
    else:
        problems = [p for p in Linter.validate(document) if not _statelint_gap(p)]
    if problems:
        raise InvalidStateMachineDefinition("; ".join(problems))
    return document


# Valid ASL that statelint 3.1.0 does not know yet (AWS documents each): problems it reports about
# these fields are not problems of the definition.
STATELINT_GAPS: Final[tuple[str, ...]] = (
    '"InputType" not allowed in',  # ItemReader.ReaderConfig.InputType (CSV, JSON, JSONL, ...)
)


def _statelint_gap(problem: str) -> bool:
    return any(gap in problem for gap in STATELINT_GAPS)


def _minimal_problems(document: dict[str, Any]) -> list[str]:
    states = document.get("States")
    if not isinstance(states, dict) or not states:
        return ["States is missing or empty"]
    problems = [] if document.get("StartAt") in states else [f"StartAt {document.get('StartAt')!r} is not a state"]
    for name, state in states.items():
        for target in [state.get("Next"), *[c.get("Next") for c in state.get("Catch", [])]]:
            if target is not None and target not in states:
                problems.append(f"{name}: Next {target!r} is not a state")
    return problems


def state_machine(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    """AWS::StepFunctions::StateMachine: moto's CloudFormation ignores DefinitionSubstitutions and
    puts machines in its non-executing backend, so the local deploy creates them through the API."""
    if "DefinitionString" in props:
        definition = str(props["DefinitionString"])
    elif "Definition" in props:
        definition = json.dumps(props["Definition"])
    else:
        raise InvalidStateMachineDefinition(
            f"{logical_id}: no Definition/DefinitionString (DefinitionS3Location is not read locally)"
        )
    definition = substitute(definition, props.get("DefinitionSubstitutions", {}))
    try:
        lint(definition)
    except InvalidStateMachineDefinition as exc:
        raise InvalidStateMachineDefinition(f"{logical_id}: {exc}") from exc
    name = props.get("StateMachineName") or ctx.name(logical_id, max_length=80)
    args: dict[str, Any] = {
        "name": name,
        "definition": definition,
        "roleArn": props["RoleArn"],
        "type": props.get("StateMachineType", "STANDARD"),
        "tags": [{"key": t["Key"], "value": str(t["Value"])} for t in props.get("Tags", [])],
    }
    # Stored for DescribeStateMachine; nothing is logged, traced or encrypted locally.
    if "LoggingConfiguration" in props:
        args["loggingConfiguration"] = camel_keys(props["LoggingConfiguration"])
    if "TracingConfiguration" in props:
        args["tracingConfiguration"] = camel_keys(props["TracingConfiguration"])
    if "EncryptionConfiguration" in props:
        args["encryptionConfiguration"] = camel_keys(props["EncryptionConfiguration"])
    arn = ctx.client("stepfunctions").create_state_machine(**args)["stateMachineArn"]
    return Physical(arn, {"Arn": arn, "Name": name})


# --- Patch: names of executions -----------------------------------------------------------------


def _start_execution(
    self: StepFunctionsParserBackend,
    state_machine_arn: str,
    name: str | None = None,
    execution_input: str | None = None,
    trace_header: str | None = None,
) -> Any:
    """AWS names an execution with a UUID when the caller gives no name; moto used the text "None",
    so a second unnamed execution collided with the first (EventBridge targets, StartExecution tasks)."""
    return ORIGINALS["start_execution"](
        self, state_machine_arn, name or str(uuid.uuid4()), execution_input, trace_header
    )


# --- Patch: requests and responses of service integrations --------------------------------------


@functools.cache
def _service_model(service: str) -> Any:
    """botocore's model of a service, loaded once per process (SageMaker's takes a few tenths of a second)."""
    try:
        return _botocore_session().get_service_model(service)
    except UnknownServiceError:  # no model (apigateway, ...): the values stay as they are
        LOG.debug("no botocore model for %s", service)
        return None


@functools.cache
def _botocore_session() -> botocore.session.Session:
    return botocore.session.get_session()


@functools.cache
def _operation_model(service: str, action: str) -> Any:
    """botocore's model of service.action (action in any casing: startExecution, start_execution)."""
    model = _service_model(service)
    if model is None:
        return None
    wanted = action.replace("_", "").lower()
    for operation in model.operation_names:
        if operation.lower() == wanted:
            return model.operation_model(operation)
    return None


def _epoch_millis(value: dt.datetime) -> int:
    return int(value.timestamp() * 1000)


def _iso_millis(value: dt.datetime) -> str:
    value = value.astimezone(dt.UTC) if value.tzinfo else value
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def jsonable_timestamps(value: Any, convert: Callable[[dt.datetime], Any]) -> Any:
    """Replace datetimes in a response (in place where it is a container) by JSON values."""
    if isinstance(value, dt.datetime):
        return convert(value)
    if isinstance(value, dict):
        for key, item in value.items():
            value[key] = jsonable_timestamps(item, convert)
    elif isinstance(value, list):
        value[:] = [jsonable_timestamps(item, convert) for item in value]
    return value


def _timestamp_style(task: Any) -> Callable[[dt.datetime], Any]:
    # aws-sdk integrations return ISO-8601 strings ("2022-02-24T19:21:30.313Z"); optimised ones
    # (states, sagemaker, glue, ...) return epoch milliseconds, as their Java serialisers do.
    return _iso_millis if isinstance(task, StateTaskServiceAwsSdk) else _epoch_millis


def _normalise_parameters(
    self: StateTaskService,
    parameters: dict[str, Any],
    boto_service_name: str | None = None,
    service_action_name: str | None = None,
) -> None:
    """PascalCase ASL parameters -> boto's member names, by the operation's input shape.

    moto's copy of LocalStack's interpreter left this a no-op, so camelCase APIs (states:
    startExecution, aws-sdk:sfn:*, ecs) received names boto does not know and failed."""
    operation = _operation_model(
        self._get_boto_service_name(boto_service_name), self._get_boto_service_action(service_action_name)
    )
    if operation is not None and operation.input_shape is not None:
        self._to_boto_request(parameters, operation.input_shape)


def _normalise_response(
    self: StateTaskService,
    response: Any,
    boto_service_name: str | None = None,
    service_action_name: str | None = None,
) -> None:
    """boto's response -> what Step Functions returns: PascalCase member names, JSON timestamps."""
    operation = _operation_model(
        self._get_boto_service_name(boto_service_name), self._get_boto_service_action(service_action_name)
    )
    if operation is not None and operation.output_shape is not None:
        self._from_boto_response(response, operation.output_shape)
    jsonable_timestamps(response, _timestamp_style(self))


# --- Patch: .sync integrations without a task token ---------------------------------------------


def _eval_integration_pattern(
    self: StateTaskServiceCallback,
    env: Any,
    resource_runtime_part: Any,
    normalised_parameters: dict[str, Any],
    state_credentials: Any,
) -> None:
    """Run .sync / .waitForTaskToken; JSON timestamps in what a .sync job returns.

    moto's method ends with `callback_endpoint.interrupt_all()`, but integrations that support no
    task token (Glue, SageMaker) have no endpoint: every .sync task of theirs failed with an
    AttributeError on None. Those take the path below, which is moto's without the endpoint."""
    if ResourceCondition.WaitForTaskToken in self._supported_integration_patterns:
        ORIGINALS["eval_integration_pattern"](
            self, env, resource_runtime_part, normalised_parameters, state_credentials
        )
    else:
        task_output = env.stack.pop()
        self.timeout.eval(env=env)
        timeout_seconds = env.stack.pop()
        env.stack.append(task_output)
        build = (
            self._build_sync_resolver
            if self.resource.condition == ResourceCondition.Sync
            else self._build_sync2_resolver
        )
        resolver = build(
            env=env,
            resource_runtime_part=resource_runtime_part,
            normalised_parameters=normalised_parameters,
            state_credentials=state_credentials,
        )
        outcome = self._eval_sync(
            env=env,
            sync_resolver=resolver,
            timeout_seconds=timeout_seconds,
            callback_endpoint=None,
            heartbeat_endpoint=None,
        )
        env.stack.append(outcome)
    env.stack[-1] = jsonable_timestamps(env.stack[-1], _timestamp_style(self))  # Glue's GetJobRun holds datetimes


# --- SageMaker: the optimised integration -------------------------------------------------------


@dataclass(frozen=True)
class _SageMakerJob:
    describe: str  # boto method polled until the job ends
    name_parameter: str
    status_key: str


# The .sync integrations AWS offers for SageMaker that the local cloud runs: jobs that end
# Completed/Failed/Stopped (createHyperParameterTuningJob and createLabelingJob .sync are not emulated).
_SAGEMAKER_JOBS: Final[dict[str, _SageMakerJob]] = {
    "createtrainingjob": _SageMakerJob("describe_training_job", "TrainingJobName", "TrainingJobStatus"),
    "createprocessingjob": _SageMakerJob("describe_processing_job", "ProcessingJobName", "ProcessingJobStatus"),
    "createtransformjob": _SageMakerJob("describe_transform_job", "TransformJobName", "TransformJobStatus"),
}
# The optimised integration's API actions (connect-sagemaker.html); any other sagemaker:<action>
# is refused when the state machine is created, as on AWS (aws-sdk:sagemaker:<action> reaches any).
SAGEMAKER_OPTIMISED_ACTIONS: Final[frozenset[str]] = frozenset(
    {
        "createendpoint",
        "createendpointconfig",
        "createhyperparametertuningjob",
        "createlabelingjob",
        "createmodel",
        "createprocessingjob",
        "createtrainingjob",
        "createtransformjob",
        "updateendpoint",
    }
)
_SAGEMAKER_TERMINAL: Final[set[str]] = {"Completed", "Failed", "Stopped"}
# Errors the AWS Java SDK models for SageMaker keep their name; any other one is AmazonSageMakerException.
_SAGEMAKER_MODELED_ERRORS: Final[set[str]] = {"ResourceLimitExceeded", "ResourceInUse", "ResourceNotFound", "Conflict"}


class StateTaskServiceSageMaker(StateTaskServiceCallback):
    """arn:aws:states:::sagemaker:<action>[.sync], as the optimised AWS integration behaves.

    moto treats SageMaker as unsupported: request-response only, `.sync` rejected. Here any action
    is forwarded to SageMaker, and createTrainingJob/createProcessingJob/createTransformJob `.sync`
    poll the job until it ends. The output is the job's description; a Failed or Stopped job
    raises States.TaskFailed whose cause is that description (JSON), which is what Retry and Catch
    written for AWS match. API errors become SageMaker.<Name>Exception / AmazonSageMakerException.
    """

    def __init__(self) -> None:
        super().__init__(supported_integration_patterns=cast(set[ResourceCondition], {ResourceCondition.Sync}))

    def _get_supported_parameters(self) -> set[str] | None:
        return set()  # every parameter of the API is passed on

    def _validate_service_integration_is_supported(self) -> None:
        # At state machine creation, so that an unsupported action or pattern fails the deploy.
        action = self.resource.api_action.lower()
        if action not in SAGEMAKER_OPTIMISED_ACTIONS:
            raise ValueError(
                f"The resource provided {self.resource.resource_arn} is not recognized: the optimised SageMaker "
                "integration offers createEndpoint, createEndpointConfig, createHyperParameterTuningJob, "
                "createLabelingJob, createModel, createProcessingJob, createTrainingJob, createTransformJob and "
                "updateEndpoint (other actions: arn:aws:states:::aws-sdk:sagemaker:<action>)."
            )
        condition = self.resource.condition
        if condition is not None and (condition != ResourceCondition.Sync or action not in _SAGEMAKER_JOBS):
            raise ValueError(
                f"The resource provided {self.resource.resource_arn} is not supported: SageMaker offers "
                "request-response for every action and .sync for its jobs; the local cloud runs .sync for "
                "createTrainingJob, createProcessingJob and createTransformJob."
            )

    def _client(self, resource_runtime_part: Any, state_credentials: Any) -> Any:
        return boto_client_for(
            service="sagemaker", region=resource_runtime_part.region, state_credentials=state_credentials
        )

    def _eval_service_task(
        self,
        env: Any,
        resource_runtime_part: Any,
        normalised_parameters: dict[str, Any],
        state_credentials: Any,
    ) -> None:
        client = self._client(resource_runtime_part, state_credentials)
        response = getattr(client, self._get_boto_service_action())(**normalised_parameters)
        response.pop("ResponseMetadata", None)
        env.stack.append(response)

    def _build_sync_resolver(
        self,
        env: Any,
        resource_runtime_part: Any,
        normalised_parameters: dict[str, Any],
        state_credentials: Any,
    ) -> Callable[[], Any]:
        job = _SAGEMAKER_JOBS[self.resource.api_action.lower()]
        env.stack.pop()  # the Create*Job response: the job is found by the name in the request
        name = normalised_parameters[job.name_parameter]
        client = self._client(resource_runtime_part, state_credentials)

        def resolve() -> dict[str, Any] | None:
            description: dict[str, Any] = getattr(client, job.describe)(**{job.name_parameter: name})
            description.pop("ResponseMetadata", None)
            if description[job.status_key] not in _SAGEMAKER_TERMINAL:
                return None
            self._normalise_response(description, service_action_name=job.describe)
            if description[job.status_key] == "Completed":
                return description
            raise FailureEventException(
                self._task_failed(
                    env,
                    StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
                    StatesErrorNameType.StatesTaskFailed.to_name(),
                    to_json_str(description),
                )
            )

        return resolve

    def _from_error(self, env: Any, ex: Exception) -> Any:
        if not isinstance(ex, ClientError):
            return super()._from_error(env=env, ex=ex)
        code = str(ex.response["Error"]["Code"])
        base = code.removesuffix("Exception")
        error = (
            f"SageMaker.{base}Exception" if base in _SAGEMAKER_MODELED_ERRORS else "SageMaker.AmazonSageMakerException"
        )
        meta = ex.response["ResponseMetadata"]
        cause = (
            f"{ex.response['Error']['Message']} (Service: AmazonSageMaker; Status Code: {meta['HTTPStatusCode']}; "
            f"Error Code: {code}; Request ID: {meta.get('RequestId', '')}; Proxy: null)"
        )
        return self._task_failed(env, CustomErrorName(error), error, cause)

    def _task_failed(self, env: Any, error_name: Any, error: str, cause: str) -> FailureEvent:
        details = TaskFailedEventDetails(
            error=error, cause=cause, resource=self._get_sfn_resource(), resourceType=self._get_sfn_resource_type()
        )
        return FailureEvent(
            env=env,
            error_name=error_name,
            event_type=HistoryEventType.TaskFailed,
            event_details=cast(EventDetails, {"taskFailedEventDetails": details}),
        )


# --- Patch: JSONPath through array indexes ------------------------------------------------------

# Paths that can select several nodes: wildcards, filters, slices, unions, recursive descent.
_INDEFINITE_PATH: Final = re.compile(r"\*|\[\s*\?|\[[^\]]*[:,][^\]]*\]|\.\.")


def _extract_json(path: str, data: Any) -> Any:
    """The value a reference path selects. A definite path ($.a[0].b) selects one value, as on AWS;
    moto returned [value] when an array index preceded the last step. Other paths stay moto's."""
    if not _INDEFINITE_PATH.search(path):
        matches = jsonpath_parse(path).find(data)  # moto's parser (jsonpath_ng.ext)
        if len(matches) == 1:
            return matches[0].value
    return ORIGINALS["extract_json"](path, data)


def _install_extract_json() -> None:
    """Rebind extract_json wherever the interpreter imported it (they hold the function itself)."""
    json_path.extract_json = _extract_json
    for name, module in list(sys.modules.items()):
        if (
            name.startswith("moto.stepfunctions.parser")
            and getattr(module, "extract_json", None) is ORIGINALS["extract_json"]
        ):
            module.extract_json = _extract_json  # type: ignore[attr-defined]


# aws-sdk service names in error names, PascalCase as AWS spells them (moto knows dynamodb and sfn).
AWS_SDK_ERROR_SERVICE_NAMES: Final[dict[str, str]] = {
    "sagemaker": "SageMaker",
    "s3": "S3",
    "lambda": "Lambda",
    "glue": "Glue",
}


def _aws_sdk_exception_name(norm_service_name: str, ex: Exception) -> str:
    """The Error of a failed aws-sdk task: the service's error code, with the Exception suffix that
    AWS adds when the code lacks it (S3 BucketAlreadyExists -> S3.BucketAlreadyExistsException)."""
    code = str(ex.response.get("Error", {}).get("Code") or "") if isinstance(ex, ClientError) else ""
    if not code:
        return str(ORIGINALS["normalise_exception_name"](norm_service_name, ex))
    name = f"{norm_service_name}.{code}"
    return name if name.endswith("Exception") else f"{name}Exception"


def _state_task_service_for(service_name: str) -> Any:
    if service_name == "sagemaker":
        return StateTaskServiceSageMaker()
    return ORIGINALS["state_task_service_for"](service_name)


# --- Patch: server mode and SendTaskFailure -----------------------------------------------------

_last_server_port: str | None = None


def _moto_server_port() -> str:
    """Port of the moto server that the interpreter's AWS calls go to (server mode only).

    ThreadedMotoServer does not set MOTO_PORT, so moto would call localhost:5000; LocalCloud sets
    AWS_ENDPOINT_URL to its server. The last port seen is kept, because a function's invocation
    briefly rebuilds os.environ while the interpreter may be reading it from another thread."""
    global _last_server_port  # noqa: PLW0603 - one moto server per process
    explicit = os.environ.get("MOTO_PORT")
    if explicit:
        return explicit
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if endpoint and urlsplit(endpoint).hostname in {"localhost", "127.0.0.1"} and urlsplit(endpoint).port:
        _last_server_port = str(urlsplit(endpoint).port)
    return _last_server_port or "5000"


def _send_task_failure(self: StepFunctionResponse) -> ActionResult:
    """moto's response handler dropped the cause: a Catch saw the error only, AWS gives both."""
    backend = self.stepfunction_backend
    token, error = self._get_param("taskToken"), self._get_param("error")
    if isinstance(backend, StepFunctionsParserBackend):
        backend.send_task_failure(token, error=error, cause=self._get_param("cause"))
    else:
        backend.send_task_failure(token, error=error)
    return EmptyResult()


_EVAL_LOG = logging.getLogger("moto.stepfunctions.parser.asl.component.eval_component")


def _absent_path_in_choice(record: logging.LogRecord) -> bool:
    """moto logs an ERROR for every Choice rule whose `IsPresent` path is absent (the VPC choices:
    TrainingNetwork, ModelNetwork), although that is the rule's answer, not a failure. A missing
    path anywhere else fails the execution, where it is seen."""
    message = record.getMessage()
    return not ("Exception=NoSuchJsonPathError" in message and "StringJsonPath" in message)


def install() -> None:
    """Patch moto's Step Functions interpreter and register the provisioner (idempotent, process-wide)."""
    StepFunctionsParserBackend.start_execution = _start_execution  # type: ignore[method-assign]
    StateTaskService._normalise_parameters = _normalise_parameters  # type: ignore[method-assign]
    StateTaskService._normalise_response = _normalise_response  # type: ignore[method-assign]
    StateTaskServiceCallback._eval_integration_pattern = _eval_integration_pattern  # type: ignore[method-assign]
    state_task_factory.state_task_service_for = _state_task_service_for  # type: ignore[attr-defined]
    boto_client.moto_server_port = _moto_server_port  # type: ignore[attr-defined]
    StepFunctionResponse.send_task_failure = _send_task_failure  # type: ignore[method-assign]
    StateTaskServiceAwsSdk._normalise_exception_name = staticmethod(_aws_sdk_exception_name)  # type: ignore[method-assign]
    for service, name in AWS_SDK_ERROR_SERVICE_NAMES.items():
        state_task_service_aws_sdk._SERVICE_ERROR_NAMES.setdefault(service, name)
    _install_extract_json()
    _EVAL_LOG.addFilter(_absent_path_in_choice)
    register_provisioner("AWS::StepFunctions::StateMachine", state_machine)
    # moto warns on every IsTimestamp comparison that the operator is "not fully supported"; it
    # evaluates ISO 8601 timestamps as AWS does (tests/glue/test_data_processing_end_to_end.py
    # takes the Wait branch through it), so the warning is noise on the demo's console.
    logging.getLogger(_IS_OPERATOR_LOGGER).setLevel(logging.ERROR)


_IS_OPERATOR_LOGGER = (
    "moto.stepfunctions.parser.asl.component.state.choice.comparison.operator.implementations.is_operator"
)


# --- For tests and the demo ---------------------------------------------------------------------


def client_for(target: LocalCloud | SFNClient) -> SFNClient:
    """A Step Functions client of the local cloud (its moto server in server mode)."""
    if not isinstance(target, LocalCloud):
        return target
    client: SFNClient = boto3.client("stepfunctions", region_name=REGION, endpoint_url=target.endpoint)
    return client


def _state_machine_arn(target: LocalCloud | SFNClient, state_machine: str) -> str:
    if state_machine.startswith("arn:") or not isinstance(target, LocalCloud):
        return state_machine
    return target.physical_id(state_machine)  # a logical id of the template


def start_execution(
    target: LocalCloud | SFNClient, state_machine: str, execution_input: Any = None, *, name: str | None = None
) -> str:
    """Start an execution; its ARN. state_machine is an ARN, or a logical id when target is the cloud."""
    args: dict[str, Any] = {
        "stateMachineArn": _state_machine_arn(target, state_machine),
        "input": json.dumps({} if execution_input is None else execution_input),
    }
    if name is not None:
        args["name"] = name
    return client_for(target).start_execution(**args)["executionArn"]


def wait_for_execution(target: LocalCloud | SFNClient, execution_arn: str, *, timeout: float = 30.0) -> dict[str, Any]:
    """Wait until an execution ends: its final DescribeExecution (input and output still JSON text)."""
    client = client_for(target)
    deadline = time.monotonic() + timeout
    while True:
        description: dict[str, Any] = dict(client.describe_execution(executionArn=execution_arn))
        if description["status"] != "RUNNING":
            description.pop("ResponseMetadata", None)
            return description
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{execution_arn} still RUNNING after {timeout} s, states: {execution_history(client, execution_arn)}"
            )
        time.sleep(0.05)


def run_execution(
    target: LocalCloud | SFNClient,
    state_machine: str,
    execution_input: Any = None,
    *,
    name: str | None = None,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Start an execution and wait for its end: the final DescribeExecution."""
    execution_arn = start_execution(target, state_machine, execution_input, name=name)
    return wait_for_execution(target, execution_arn, timeout=timeout)


def execution_events(target: LocalCloud | SFNClient, execution_arn: str) -> list[dict[str, Any]]:
    client = client_for(target)
    events: list[dict[str, Any]] = []
    args: dict[str, Any] = {"executionArn": execution_arn}
    while True:
        page = client.get_execution_history(**args)
        events.extend(dict(e) for e in page["events"])
        if not page.get("nextToken"):
            return events
        args["nextToken"] = page["nextToken"]


_ATTEMPT_EVENTS: Final[set[str]] = {"TaskScheduled", "LambdaFunctionScheduled", "ActivityScheduled"}


def execution_history(target: LocalCloud | SFNClient, execution_arn: str) -> list[str]:
    """The names of the states entered, in order; a retried task's name repeats once per retry.

    On AWS (and here) a Retry does not re-enter the state: it schedules the task again. Counting
    those attempts makes a Retry visible: ["Train", "Train", "TrainingFailed"] is one retry."""
    names: list[str] = []
    current, attempts = "", 0
    for event in execution_events(target, execution_arn):
        kind = event["type"]
        if kind.endswith("StateEntered"):
            current, attempts = event["stateEnteredEventDetails"]["name"], 0
            names.append(current)
        elif kind in _ATTEMPT_EVENTS:
            attempts += 1
            if attempts > 1:
                names.append(current)
    return names


def shutdown(timeout: float = 10.0) -> None:
    """Stop executions still running when the local cloud stops. Their threads would otherwise go
    on into the next local cloud of this process (same deterministic names) and run its handlers."""
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends  # noqa: PLC0415

    running = []
    for backend in _all_backends(stepfunctions_parser_backends):
        for machine in list(backend.state_machines):
            for execution in list(machine.executions):
                if execution.status == "RUNNING":
                    try:
                        backend.stop_execution(execution.execution_arn)
                        running.append(execution)
                    except Exception:  # stopping is best effort: the next start resets moto anyway
                        LOG.debug("could not stop %s", execution.execution_arn)
    if not running:
        return
    from moto.stepfunctions.parser.utils import TMP_THREADS  # noqa: PLC0415

    deadline = time.monotonic() + timeout  # a stopped execution ends at its next state transition
    for thread in list(TMP_THREADS):
        if thread.is_alive() and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))


def _all_backends(backend_dict: Any) -> list[Any]:
    return [backend for regions in list(backend_dict.values()) for backend in list(regions.values())]


def main(paths: list[str]) -> int:
    """`python -m localcloud.stepfunctions FILE...`: lint definitions as the local deploy does (make lint)."""
    failed = 0
    for path in paths:
        try:
            lint(Path(path).read_text(encoding="utf-8"))
        except InvalidStateMachineDefinition as exc:
            print(f"{path}: {exc}", file=sys.stderr)
            failed += 1
        else:
            print(f"{path}: ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
