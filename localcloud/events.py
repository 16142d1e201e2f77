"""EventBridge on the local cloud: rules and schedules deliver events to their targets as on AWS.

moto 5.2.5 stores rules and routes PutEvents to SQS, but raises NotImplementedError for Lambda and
Step Functions targets, also delivers to disabled rules and to schedule-only rules (an empty pattern
matches everything there), ignores Input and InputPath, applies no InputTransformer to S3 events,
emits a spurious "Object Tags Added" event on every PutObject, and never fires a schedule. Here:

- `Rule.send_to_targets` is replaced: enabled rules with a matching pattern deliver to Lambda, Step
  Functions, SQS and SNS targets with Input / InputPath / InputTransformer applied; other target
  kinds (log groups, archives, event buses, API destinations) keep moto's own delivery.
- S3 -> EventBridge (`moto.s3.notifications._send_event_bridge_message`) produces AWS's event shape on
  the default bus only, and "Object Tags Added" only for the PutObjectTagging API (see
  `_tagging_api`): a rule on `{"source": ["aws.s3"]}` otherwise fires twice per upload.
- Lambda, Step Functions and SNS deliveries are asynchronous, as on AWS: a worker thread makes them,
  so a handler that puts an event (or an object into an EventBridge-enabled bucket) never waits for
  the handlers it triggers (that would deadlock the local runtime in server mode). `flush()` waits.
- Failures: a target that cannot be reached is retried per the target's RetryPolicy (retryable
  errors only, as on AWS; capped locally) and then sent to its DeadLetterConfig queue with AWS's
  message attributes. A Lambda handler error is not a delivery failure on AWS: Lambda retries the
  asynchronous invocation (the function's MaximumRetryAttempts, default 2) and then uses the
  function's on-failure destination or dead-letter queue. Every outcome is in `deliveries()`.
- Scheduled rules and EventBridge Scheduler schedules fire on demand (`fire_scheduled_rule`,
  `fire_schedule`) or on a clock (`start_scheduler`).

Event bodies may carry clinical data: they are never logged. tests/localcloud/events/test_moto_pins.py
pins every moto internal used here.
"""

from __future__ import annotations

import calendar
import contextlib
import copy
import datetime as dt
import json
import logging
import os
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from moto.events.models import Rule, events_backends
from moto.s3 import notifications as s3_notifications
from moto.s3.responses import S3Response

from localcloud.background import Periodic
from localcloud.provision import ACCOUNT_ID, Context, register_provisioner
from localcloud.template import Physical

if TYPE_CHECKING:
    from localcloud.cloud import LocalCloud

logger = logging.getLogger(__name__)

# AWS retries a failed delivery up to 185 times over 24 hours; locally a few quick retries show the
# behaviour without stalling tests. Explicit RetryPolicy values below the cap are honoured.
LOCAL_RETRY_CAP = 3
RETRY_DELAY_SECONDS = 0.02  # doubled per attempt
LAMBDA_ASYNC_RETRIES = 2  # Lambda's default MaximumRetryAttempts for asynchronous invocations
FLUSH_TIMEOUT_SECONDS = 30.0
DISCOVERY_SECONDS = 1.0  # how often the schedule clock looks for new or changed schedules
_RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "ServiceException",
        "InternalFailure",
        "InternalServerError",
        "InternalError",
    }
)


# --------------------------------------------------------------------------------------------------
# Connections: clients are built from an explicit snapshot, never from os.environ on a worker
# thread (the local runtime swaps os.environ while a handler runs).


@dataclass(frozen=True)
class Connection:
    region: str
    endpoint: str | None = None
    access_key: str = "testing"
    secret_key: str = "testing"  # noqa: S105 - moto's fixed local credentials
    token: str | None = None

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> Connection:
        return cls(
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "eu-west-1",
            endpoint=env.get("AWS_ENDPOINT_URL") or None,
            access_key=env.get("AWS_ACCESS_KEY_ID", "testing"),
            secret_key=env.get("AWS_SECRET_ACCESS_KEY", "testing"),
            token=env.get("AWS_SESSION_TOKEN") or None,
        )


_CLIENT_CONFIG = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=960)
_CLIENTS: dict[tuple[Connection, str], Any] = {}
_CLIENTS_LOCK = threading.Lock()
_SESSION: boto3.session.Session | None = None
_ATTACHED: Connection | None = None


class _ThreadState(threading.local):
    connection: Connection | None = None
    tagging_api = False  # inside moto's PutObjectTagging API handler


_STATE = _ThreadState()


def _connection() -> Connection:
    return _STATE.connection or _ATTACHED or Connection.from_mapping(os.environ)


def current_connection() -> Connection:
    """What deliveries from this thread use: its override, the attached cloud, or the environment."""
    return _connection()


@contextlib.contextmanager
def using(connection: Connection) -> Iterator[None]:
    """Make this thread's deliveries use `connection` (background threads of the local cloud)."""
    saved, _STATE.connection = _STATE.connection, connection
    try:
        yield
    finally:
        _STATE.connection = saved


def client(service: str, connection: Connection | None = None) -> Any:
    """A cached boto3 client for the local cloud. Clients are created under a lock from one private
    session (sessions are not thread-safe; one session parses each service model once)."""
    global _SESSION  # noqa: PLW0603 - created on first use
    conn = connection or _connection()
    with _CLIENTS_LOCK:
        key = (conn, service)
        if key not in _CLIENTS:
            _SESSION = _SESSION or boto3.session.Session()
            _CLIENTS[key] = _SESSION.client(  # type: ignore[call-overload]
                service,
                region_name=conn.region,
                endpoint_url=conn.endpoint,
                aws_access_key_id=conn.access_key,
                aws_secret_access_key=conn.secret_key,
                aws_session_token=conn.token,
                config=_CLIENT_CONFIG,
            )
        return _CLIENTS[key]


# --------------------------------------------------------------------------------------------------
# The worker that makes asynchronous deliveries.


class _Dispatcher:
    def __init__(self) -> None:
        self._jobs: deque[Callable[[], None] | None] = deque()
        self._wakeup = threading.Condition()
        self._pending = 0
        self._thread: threading.Thread | None = None

    def submit(self, job: Callable[[], None]) -> None:
        with self._wakeup:
            self._pending += 1
            self._jobs.append(job)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="localcloud-eventbridge", daemon=True)
                self._thread.start()
            self._wakeup.notify_all()

    def _run(self) -> None:
        while True:
            with self._wakeup:
                self._wakeup.wait_for(lambda: bool(self._jobs))
                job = self._jobs.popleft()
            if job is None:
                return
            try:
                job()
            except Exception:
                logger.exception("an EventBridge delivery crashed")
            finally:
                with self._wakeup:
                    self._pending -= 1
                    self._wakeup.notify_all()

    def flush(self, timeout: float) -> bool:
        if threading.current_thread() is self._thread:
            return False  # a delivery cannot wait for itself
        with self._wakeup:
            return self._wakeup.wait_for(lambda: self._pending == 0, timeout)

    def stop(self, timeout: float) -> bool:
        drained = self.flush(timeout)
        with self._wakeup:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._jobs.append(None)
                self._wakeup.notify_all()
        if thread is not None:
            thread.join(timeout)
        return drained


_DISPATCHER = _Dispatcher()


def submit(job: Callable[[], None]) -> None:
    """Run `job` on the delivery worker (other local services send asynchronous work here too)."""
    _DISPATCHER.submit(job)


def flush(timeout: float = FLUSH_TIMEOUT_SECONDS) -> bool:
    """Wait until every asynchronous delivery (and what it triggered) is done; False on timeout."""
    return _DISPATCHER.flush(timeout)


# --------------------------------------------------------------------------------------------------
# What happened to each delivery: outcomes and error codes, never payloads.

Outcome = Literal["delivered", "dead-lettered", "failed", "function-error"]


@dataclass(frozen=True)
class Delivery:
    source_arn: str  # the rule, schedule or alarm
    target_id: str
    target_arn: str
    event_id: str
    outcome: Outcome
    attempts: int  # for a Lambda target: invocations of the function
    error: str | None = None  # an error code or type, never a message


_DELIVERIES: deque[Delivery] = deque(maxlen=2000)


def deliveries() -> list[Delivery]:
    return list(_DELIVERIES)


def _record(delivery: Delivery) -> None:
    _DELIVERIES.append(delivery)
    log = logger.info if delivery.outcome == "delivered" else logger.warning
    log(
        "event %s from %s to target %s: %s after %d attempt(s)%s",
        delivery.event_id,
        delivery.source_arn,
        delivery.target_id,
        delivery.outcome,
        delivery.attempts,
        f" ({delivery.error})" if delivery.error else "",
    )


# --------------------------------------------------------------------------------------------------
# Events in AWS's shape.


def iso_time(value: Any = None) -> str:
    """EventBridge's `time`: UTC, whole seconds, Z suffix."""
    if value is None:
        moment = dt.datetime.now(dt.UTC)
    elif isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    elif isinstance(value, (int, float)):
        moment = dt.datetime.fromtimestamp(float(value), dt.UTC)
    else:
        return str(value)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_event(
    *,
    source: str,
    detail_type: str,
    detail: Mapping[str, Any],
    resources: list[str] | None = None,
    account: str = ACCOUNT_ID,
    region: str | None = None,
    time: Any = None,
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": iso_time(time),
        "region": region or _connection().region,
        "resources": list(resources or []),
        "detail": dict(detail),
    }


def _aws_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """moto's internal event (float time, ingestion-time) -> what a target receives on AWS."""
    keys = ("version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail", "replay-name")
    shaped = {k: copy.deepcopy(event[k]) for k in keys if k in event}
    shaped["time"] = iso_time(event.get("time"))
    return shaped


def _moto_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """The reverse, for the target kinds whose delivery stays moto's (they expect a float time)."""
    shaped = dict(event)
    if isinstance(shaped.get("time"), str):
        try:
            parsed = dt.datetime.strptime(shaped["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
            shaped["time"] = parsed.timestamp()
        except ValueError:
            shaped["time"] = time.time()
    shaped.setdefault("ingestion-time", time.time())
    return shaped


# --------------------------------------------------------------------------------------------------
# Target input: Input, InputPath, InputTransformer.

_PATH_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")
_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.\-]+)>")
_MISSING = object()


def json_path(document: Any, path: str) -> Any:
    """The value at an EventBridge JSONPath ($, $.a.b, $.a[0], $['a-b']); _MISSING when absent."""
    if not path.startswith("$"):
        raise ValueError(f"unsupported JSONPath {path!r}")
    value, position = document, 1
    while position < len(path):
        step = _PATH_STEP.match(path, position)
        if step is None:
            raise ValueError(f"unsupported JSONPath {path!r}")
        name, index, quoted, double_quoted = step.groups()
        key = name if name is not None else quoted if quoted is not None else double_quoted
        if index is not None:
            if not isinstance(value, list) or int(index) >= len(value):
                return _MISSING
            value = value[int(index)]
        elif isinstance(value, dict) and key in value:
            value = value[key]
        else:
            return _MISSING
        position = step.end()
    return value


def _render_value(value: Any, in_string: bool, json_template: bool) -> str:
    if value is _MISSING or value is None:
        return "" if in_string or not json_template else "null"
    if in_string:
        text = value if isinstance(value, str) else json.dumps(value)
        return json.dumps(text)[1:-1]  # escaped for the string it is placed in
    if not json_template and isinstance(value, str):
        return value
    return json.dumps(value)


def render_template(template: str, values: Mapping[str, Any]) -> str:
    """An InputTemplate with its <placeholders> replaced as EventBridge does.

    In a JSON template a placeholder inside a string gets the value's text (escaped), outside a
    string its JSON; in a plain-text template strings are inserted as they are.
    """
    json_template = template.lstrip()[:1] in ("{", "[", '"')
    out: list[str] = []
    in_string = False
    position = 0
    while position < len(template):
        char = template[position]
        if json_template and char == "\\" and in_string:
            out.append(template[position : position + 2])
            position += 2
            continue
        if json_template and char == '"':
            in_string = not in_string
        elif char == "<":
            placeholder = _PLACEHOLDER.match(template, position)
            if placeholder and placeholder.group(1) in values:
                out.append(_render_value(values[placeholder.group(1)], in_string, json_template))
                position = placeholder.end()
                continue
        out.append(char)
        position += 1
    return "".join(out)


def target_input(target: Mapping[str, Any], event: Mapping[str, Any], rule_arn: str | None = None) -> str:
    """The text a rule target receives for `event` (AWS-shaped)."""
    if "Input" in target:
        return str(target["Input"])
    if "InputPath" in target:
        value = json_path(event, str(target["InputPath"]))
        return "null" if value is _MISSING else json.dumps(value)
    transformer = target.get("InputTransformer")
    if transformer:
        values: dict[str, Any] = {
            name: json_path(event, str(path)) for name, path in transformer.get("InputPathsMap", {}).items()
        }
        values["aws.events.event"] = event
        values["aws.events.event.json"] = event
        values["aws.events.event.ingestion-time"] = iso_time()
        if rule_arn:
            values["aws.events.rule-arn"] = rule_arn
            values["aws.events.rule-name"] = rule_arn.rsplit("/", 1)[-1]
        return render_template(str(transformer["InputTemplate"]), values)
    return json.dumps(event)


def _as_json(text: str) -> str:
    """Lambda and Step Functions take JSON: a plain-text input becomes a JSON string."""
    try:
        json.loads(text)
    except ValueError:
        return json.dumps(text)
    return text


# --------------------------------------------------------------------------------------------------
# Delivery to targets.


@dataclass
class Job:
    """One delivery of one event to one target (of a rule, a schedule or an alarm action)."""

    source_arn: str
    source_kind: Literal["rule", "schedule", "alarm"]
    target: Mapping[str, Any]
    event_id: str
    payload: str  # what the target receives
    dead_letter_body: str  # what its dead-letter queue receives
    connection: Connection
    subject: str | None = None  # SNS targets: the message subject (alarm actions)
    started: float = field(default_factory=time.monotonic)

    @property
    def arn(self) -> str:
        return str(self.target["Arn"])

    @property
    def service(self) -> str:
        return self.arn.split(":")[2]

    @property
    def target_id(self) -> str:
        return str(self.target.get("Id", self.arn))

    def client(self, service: str) -> Any:
        return client(service, self.connection)

    def record(self, outcome: Outcome, attempts: int, error: str | None = None) -> None:
        _record(Delivery(self.source_arn, self.target_id, self.arn, self.event_id, outcome, attempts, error))


def _arn_parts(arn: str) -> tuple[str, str, str]:
    """(region, account, resource) of an ARN."""
    parts = arn.split(":", 5)
    return parts[3], parts[4], parts[5]


def _queue_url(sqs: Any, queue_arn: str) -> str:
    _region, account, name = _arn_parts(queue_arn)
    return str(sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])


def send_to_queue(
    queue_arn: str,
    body: str,
    *,
    attributes: Mapping[str, str | int] | None = None,
    group_id: str | None = None,
    connection: Connection | None = None,
) -> None:
    sqs = client("sqs", connection)
    args: dict[str, Any] = {"QueueUrl": _queue_url(sqs, queue_arn), "MessageBody": body}
    if attributes:
        args["MessageAttributes"] = {
            name: {"DataType": "Number" if isinstance(value, int) else "String", "StringValue": str(value)}
            for name, value in attributes.items()
        }
    if group_id:
        args["MessageGroupId"] = group_id
    sqs.send_message(**args)


def _error_code(exc: BaseException) -> tuple[str, bool]:
    """(code, retryable) of a delivery error; AWS retries throttling and server errors only."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "ClientError"))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400))
        return code, code in _RETRYABLE_CODES or status >= 500
    if isinstance(exc, BotoCoreError):
        return type(exc).__name__, True
    return type(exc).__name__, False


class _FunctionFailed(Exception):
    """The function ran and failed on every attempt Lambda makes for an asynchronous invocation."""

    def __init__(self, error_type: str, invocations: int) -> None:
        super().__init__(error_type)
        self.error_type = error_type
        self.invocations = invocations


def _invocation_record(
    job: Job, condition: str, invocations: int, response: Mapping[str, Any], payload: Any
) -> dict[str, Any]:
    """Lambda's asynchronous invocation record, as sent to on-success/on-failure destinations."""
    return {
        "version": "1.0",
        "timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": f"{job.arn}:$LATEST" if job.arn.count(":") == 6 else job.arn,
            "condition": condition,
            "approximateInvokeCount": invocations,
        },
        "requestPayload": json.loads(_as_json(job.payload)),
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            **({"functionError": response["FunctionError"]} if "FunctionError" in response else {}),
        },
        "responsePayload": payload,
    }


def _send_to_destination(job: Job, destination: str, record: Mapping[str, Any], success: bool) -> None:
    """Lambda's on-success / on-failure destination; its failure is logged (the invocation is done)."""
    try:
        _destination(job, destination, json.dumps(record), success)
    except Exception as exc:
        logger.error("destination %s of %s unreachable: %s", destination, job.arn, _error_code(exc)[0])


def _destination(job: Job, destination: str, body: str, success: bool) -> None:
    service = destination.split(":")[2]
    if service == "sqs":
        send_to_queue(destination, body, connection=job.connection)
    elif service == "sns":
        job.client("sns").publish(TopicArn=destination, Message=body)
    elif service == "lambda":
        job.client("lambda").invoke(FunctionName=destination, InvocationType="Event", Payload=body.encode())
    elif service == "events":
        outcome = "Success" if success else "Failure"
        job.client("events").put_events(
            Entries=[
                {
                    "Source": "lambda",
                    "DetailType": f"Lambda Function Invocation Result - {outcome}",
                    "Detail": body,
                    "EventBusName": destination,
                    "Resources": [job.arn],
                }
            ]
        )
    else:
        logger.warning("destination %s of %s is not supported locally", destination, job.arn)


def _lambda_async_config(lam: Any, function_arn: str) -> tuple[int, dict[str, Any], str | None]:
    """(retries, destination config, dead-letter target) of a function's asynchronous invocations."""
    retries, destinations = LAMBDA_ASYNC_RETRIES, {}
    with contextlib.suppress(ClientError):
        config = lam.get_function_event_invoke_config(FunctionName=function_arn)
        retries = int(config.get("MaximumRetryAttempts", LAMBDA_ASYNC_RETRIES))
        destinations = config.get("DestinationConfig", {})
    dead_letter = lam.get_function_configuration(FunctionName=function_arn).get("DeadLetterConfig", {}).get("TargetArn")
    return min(retries, LOCAL_RETRY_CAP), destinations, dead_letter


def _send_lambda(job: Job) -> int:
    """Invoke the function; a handler error follows Lambda's asynchronous retry rules."""
    lam = job.client("lambda")
    payload = _as_json(job.payload).encode()
    response = lam.invoke(FunctionName=job.arn, InvocationType="RequestResponse", Payload=payload)
    invocations = 1
    if "FunctionError" in response:
        retries, destinations, dead_letter = _lambda_async_config(lam, job.arn)
        while "FunctionError" in response and invocations <= retries:
            time.sleep(RETRY_DELAY_SECONDS * 2 ** (invocations - 1))
            response = lam.invoke(FunctionName=job.arn, InvocationType="RequestResponse", Payload=payload)
            invocations += 1
    else:
        destinations, dead_letter = {}, None
    body = response["Payload"].read()
    result = json.loads(body) if body else None
    if "FunctionError" not in response:
        on_success = destinations.get("OnSuccess", {}).get("Destination")
        if on_success:
            _send_to_destination(
                job, on_success, _invocation_record(job, "Success", invocations, response, result), True
            )
        return invocations
    error_type = str(result.get("errorType", "Unhandled")) if isinstance(result, dict) else "Unhandled"
    on_failure = destinations.get("OnFailure", {}).get("Destination")
    if on_failure:
        record = _invocation_record(job, "RetriesExhausted", invocations, response, result)
        _send_to_destination(job, on_failure, record, False)
    elif dead_letter:
        _function_dead_letter(job, dead_letter, result)
    raise _FunctionFailed(error_type, invocations)


def _function_dead_letter(job: Job, dead_letter: str, result: Any) -> None:
    """The function's own DeadLetterConfig: the event, with Lambda's attributes."""
    message = str(result.get("errorMessage", "")) if isinstance(result, dict) else ""
    attributes = {"RequestID": str(uuid.uuid4()), "ErrorCode": "200", "ErrorMessage": message[:1000]}
    try:
        if dead_letter.split(":")[2] == "sqs":
            send_to_queue(dead_letter, job.payload, attributes=attributes, connection=job.connection)
        else:
            job.client("sns").publish(TopicArn=dead_letter, Message=job.payload)
    except Exception as exc:
        logger.error("dead-letter target %s of %s unreachable: %s", dead_letter, job.arn, _error_code(exc)[0])


def _send_state_machine(job: Job) -> int:
    # moto names unnamed executions "None", so two of them collide: always name them.
    job.client("stepfunctions").start_execution(
        stateMachineArn=job.arn, name=str(uuid.uuid4()), input=_as_json(job.payload)
    )
    return 1


def _send_queue(job: Job) -> int:
    group_id = job.target.get("SqsParameters", {}).get("MessageGroupId")
    send_to_queue(job.arn, job.payload, group_id=group_id, connection=job.connection)
    return 1


def _send_topic(job: Job) -> int:
    job.client("sns").publish(
        TopicArn=job.arn, Message=job.payload, **({"Subject": job.subject} if job.subject else {})
    )
    return 1


def _send_event_bus(job: Job) -> int:
    parameters = job.target.get("EventBridgeParameters", {})
    job.client("events").put_events(
        Entries=[
            {
                "Source": parameters.get("Source", "aws.scheduler"),
                "DetailType": parameters.get("DetailType", "Scheduled Event"),
                "Detail": job.payload,
                "EventBusName": job.arn,
                "Resources": [job.source_arn],
            }
        ]
    )
    return 1


_SENDERS: dict[str, Callable[[Job], int]] = {
    "lambda": _send_lambda,
    "states": _send_state_machine,
    "sqs": _send_queue,
    "sns": _send_topic,
    "events": _send_event_bus,
}
_SYNCHRONOUS = frozenset({"sqs"})  # as moto does; they run no handler code


def _dead_letter(job: Job, code: str, message: str, retries: int, exhausted: str | None) -> bool:
    queue = job.target.get("DeadLetterConfig", {}).get("Arn")
    if not queue:
        return False
    attributes: dict[str, str | int] = {
        "ERROR_CODE": code,
        "ERROR_MESSAGE": message[:1000],
        "RETRY_ATTEMPTS": retries,
        "TARGET_ARN": job.arn,
    }
    if job.source_kind == "schedule":
        attributes["SCHEDULE_ARN"] = job.source_arn
        if exhausted:
            attributes["EXHAUSTED_RETRY_CONDITION"] = exhausted
    else:
        attributes["RULE_ARN"] = job.source_arn
    try:
        send_to_queue(str(queue), job.dead_letter_body, attributes=attributes, connection=job.connection)
    except Exception as exc:
        logger.error("dead-letter queue %s of target %s unreachable: %s", queue, job.target_id, _error_code(exc)[0])
        return False
    return True


def _run_delivery(job: Job) -> None:
    """Deliver with the target's RetryPolicy; then its dead-letter queue. Never raises."""
    policy = job.target.get("RetryPolicy", {})
    max_retries = min(int(policy.get("MaximumRetryAttempts", LOCAL_RETRY_CAP)), LOCAL_RETRY_CAP)
    max_age = float(policy.get("MaximumEventAgeInSeconds", 86400))
    sender = _SENDERS.get(job.service)
    attempts = 0
    while True:
        attempts += 1
        try:
            if sender is None:
                raise NotImplementedError(f"{job.service} targets are not supported locally")
            invocations = sender(job)
        except _FunctionFailed as failed:
            job.record("function-error", failed.invocations, failed.error_type)
            return
        except Exception as exc:
            code, retryable = _error_code(exc)
            too_old = time.monotonic() - job.started >= max_age
            if retryable and attempts <= max_retries and not too_old:
                time.sleep(RETRY_DELAY_SECONDS * 2 ** (attempts - 1))
                continue
            exhausted = ("MaximumEventAgeInSeconds" if too_old else "MaximumRetryAttempts") if retryable else None
            message = str(exc) if isinstance(exc, (ClientError, BotoCoreError, NotImplementedError)) else code
            dead = _dead_letter(job, code, message, attempts - 1, exhausted)
            job.record("dead-lettered" if dead else "failed", attempts, code)
            return
        job.record("delivered", invocations)
        return


def _run_delivery_using(job: Job) -> None:
    with using(job.connection):
        _run_delivery(job)


def deliver(job: Job) -> None:
    """Deliver to a target: SQS in the caller's thread (as moto does), the others asynchronously."""
    if job.service in _SYNCHRONOUS:
        _run_delivery(job)
    else:
        _DISPATCHER.submit(lambda: _run_delivery_using(job))


# --------------------------------------------------------------------------------------------------
# moto patches: rules, S3 notifications.

_MOTO_SEND_TO_TARGETS = Rule.send_to_targets
_MOTO_S3_TO_EVENTBRIDGE = s3_notifications._send_event_bridge_message
_MOTO_PUT_OBJECT_TAGGING_API = S3Response.put_object_tagging
_OURS = frozenset({"lambda", "states", "sqs", "sns"})  # other target kinds keep moto's delivery


def _is_enabled(state: str | None) -> bool:
    return (state or "ENABLED").startswith("ENABLED")


def route_to_targets(rule: Any, event: Mapping[str, Any], transform_input: bool = True) -> None:
    """Replaces moto's Rule.send_to_targets (same signature): deliver a matching event to every target."""
    if not _is_enabled(rule.state) or not rule.event_pattern.get_pattern():
        return  # disabled, or a schedule-only rule: those never match events on AWS
    shaped = _aws_event(event)
    if not rule.event_pattern.matches_event(shaped):
        return
    connection = _connection()
    for target in list(rule.targets):
        service = str(target["Arn"]).split(":")[2]
        if service not in _OURS:
            view = copy.copy(rule)
            view.targets = [target]
            try:
                _MOTO_SEND_TO_TARGETS(view, _moto_event(event), transform_input)  # type: ignore[arg-type]
            except Exception as exc:
                _record(Delivery(rule.arn, target["Id"], target["Arn"], shaped["id"], "failed", 1, type(exc).__name__))
            continue
        try:
            payload = target_input(target, shaped, rule.arn)
        except ValueError:
            _record(Delivery(rule.arn, target["Id"], target["Arn"], shaped["id"], "failed", 0, "InvalidInput"))
            continue
        deliver(Job(rule.arn, "rule", dict(target), shaped["id"], payload, json.dumps(shaped), connection))


def put_event(event: Mapping[str, Any], *, bus: str = "default", account: str | None = None) -> None:
    """Route an AWS service's event (aws.s3, aws.cloudwatch, ...) to the rules of a bus.

    AWS services send to the default bus directly; PutEvents would refuse their `aws.*` sources."""
    backend = events_backends[account or str(event.get("account") or ACCOUNT_ID)][str(event["region"])]
    event_bus = backend.event_buses.get(bus)
    if event_bus is None:
        return
    for rule in list(event_bus.rules.values()):
        route_to_targets(rule, event)


def _tagging_api(self: Any) -> Any:
    """Wraps moto's PutObjectTagging API handler: only this API adds tags on AWS ("Object Tags
    Added"); moto's PutObject, CopyObject and CompleteMultipartUpload tag through the same backend
    method and would announce tags nobody added."""
    _STATE.tagging_api = True
    try:
        return _MOTO_PUT_OBJECT_TAGGING_API(self)
    finally:
        _STATE.tagging_api = False


_S3_REASONS = {
    "s3:ObjectCreated:Put": "PutObject",
    "s3:ObjectCreated:Post": "POST Object",
    "s3:ObjectCreated:Copy": "CopyObject",
    "s3:ObjectCreated:CompleteMultipartUpload": "CompleteMultipartUpload",
    "s3:ObjectRemoved:Delete": "DeleteObject",
    "s3:ObjectRemoved:DeleteMarkerCreated": "DeleteObject",
    "s3:LifecycleExpiration:Delete": "Lifecycle Expiration",
    "s3:LifecycleExpiration:DeleteMarkerCreated": "Lifecycle Expiration",
}


def _s3_detail(account_id: str, bucket: Any, event_name: str, key: Any, detail_type: str) -> dict[str, Any]:
    obj: dict[str, Any] = {"key": key.name}
    if detail_type in ("Object Created", "Object Tags Added", "Object Tags Deleted", "Object ACL Updated"):
        obj["etag"] = str(key.etag).replace('"', "")
    if detail_type == "Object Created":
        obj["size"] = key.size
    if bucket.is_versioned:
        obj["version-id"] = key.version_id
    if detail_type in ("Object Created", "Object Deleted"):
        obj["sequencer"] = f"{time.time_ns():018X}"
    detail: dict[str, Any] = {
        "version": "0",
        "bucket": {"name": bucket.name},
        "object": obj,
        "request-id": uuid.uuid4().hex[:16].upper(),
        "requester": account_id,
        "source-ip-address": "127.0.0.1",
    }
    if event_name in _S3_REASONS:
        detail["reason"] = _S3_REASONS[event_name]
    if detail_type == "Object Deleted":
        marker = event_name.endswith("DeleteMarkerCreated")
        detail["deletion-type"] = "Delete Marker Created" if marker else "Permanently Deleted"
    return detail


def _s3_to_eventbridge(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
    """Replaces moto.s3.notifications._send_event_bridge_message (same signature)."""
    try:
        if event_name == s3_notifications.S3NotificationEvent.OBJECT_TAGGING_PUT_EVENT and not _STATE.tagging_api:
            return
        detail_type = s3_notifications._detail_type(event_name)
        event = make_event(
            source="aws.s3",
            detail_type=detail_type,
            detail=_s3_detail(account_id, bucket, event_name, key, detail_type),
            resources=[bucket.arn],
            account=account_id,
            region=bucket.region_name,
        )
        put_event(event, account=account_id)
    except Exception:
        # Asynchronous on AWS: a notification problem never fails the S3 request.
        logger.exception("S3 -> EventBridge notification for bucket %s failed", getattr(bucket, "name", "?"))


# --------------------------------------------------------------------------------------------------
# Provisioners.


def _rule_targets(props: Mapping[str, Any]) -> list[dict[str, Any]]:
    targets = []
    for target in props.get("Targets", []):
        shaped = dict(target)
        if "RetryPolicy" in shaped:
            shaped["RetryPolicy"] = {k: int(v) for k, v in shaped["RetryPolicy"].items()}
        if "InputTransformer" in shaped and isinstance(shaped["InputTransformer"].get("InputTemplate"), dict):
            shaped["InputTransformer"] = {
                **shaped["InputTransformer"],
                "InputTemplate": json.dumps(shaped["InputTransformer"]["InputTemplate"]),
            }
        targets.append(shaped)
    return targets


def events_rule(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    events = ctx.client("events")
    name = props.get("Name") or ctx.name(logical_id, max_length=64)
    bus = props.get("EventBusName")
    args: dict[str, Any] = {"Name": name, "State": props.get("State", "ENABLED")}
    pattern = props.get("EventPattern")
    if pattern is not None:
        args["EventPattern"] = pattern if isinstance(pattern, str) else json.dumps(pattern)
    for key in ("ScheduleExpression", "Description", "RoleArn"):
        if key in props:
            args[key] = props[key]
    if bus:
        args["EventBusName"] = bus
    arn = events.put_rule(**args)["RuleArn"]
    targets = _rule_targets(props)
    if targets:
        events.put_targets(Rule=name, Targets=targets, **({"EventBusName": bus} if bus else {}))
    bus_name = str(bus).rsplit("/", 1)[-1] if bus else "default"
    return Physical(name if bus_name == "default" else f"{bus_name}|{name}", {"Arn": arn})


def events_bus(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    name = props["Name"]
    arn = ctx.client("events").create_event_bus(Name=name)["EventBusArn"]
    return Physical(name, {"Arn": arn, "Name": name})


def scheduler_group(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    name = props.get("Name") or ctx.name(logical_id, max_length=64)
    arn = ctx.client("scheduler").create_schedule_group(Name=name)["ScheduleGroupArn"]
    return Physical(name, {"Arn": arn})


def scheduler_schedule(ctx: Context, logical_id: str, props: dict[str, Any]) -> Physical:
    name = props.get("Name") or ctx.name(logical_id, max_length=64)
    target = dict(props["Target"])
    target.setdefault("RoleArn", f"arn:aws:iam::{ACCOUNT_ID}:role/local-scheduler")
    if "RetryPolicy" in target:
        target["RetryPolicy"] = {k: int(v) for k, v in target["RetryPolicy"].items()}
    args: dict[str, Any] = {
        "Name": name,
        "ScheduleExpression": props["ScheduleExpression"],
        "FlexibleTimeWindow": props.get("FlexibleTimeWindow", {"Mode": "OFF"}),
        "Target": target,
    }
    for key in ("GroupName", "Description", "ScheduleExpressionTimezone", "State", "StartDate", "EndDate"):
        if key in props:
            args[key] = props[key]
    arn = ctx.client("scheduler").create_schedule(**args)["ScheduleArn"]
    return Physical(name, {"Arn": arn})


# --------------------------------------------------------------------------------------------------
# Schedules: expressions, on-demand firing, the clock.

_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.+)\)$")
_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
_MONTHS = {m.upper(): i for i, m in enumerate(calendar.month_abbr) if m}
_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}


def _cron_field(text: str, low: int, high: int, names: Mapping[str, int] | None = None) -> frozenset[int] | None:
    """The values of one cron field; None for * and ? (no constraint)."""
    if text in ("*", "?"):
        return None
    values: set[int] = set()
    for part in text.split(","):
        spec, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1

        def number(token: str) -> int:
            return names[token.upper()] if names and token.upper() in names else int(token)

        if spec == "*":
            start, end = low, high
        elif "-" in spec:
            first, last = spec.split("-", 1)
            start, end = number(first), number(last)
        else:
            start = number(spec)
            end = high if step_text else start
        if not (low <= start <= high and low <= end <= high):
            raise ValueError(f"cron field {text!r} is out of range")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class ScheduleExpression:
    """rate(...), cron(...) (minutes hours day-of-month month day-of-week year) or at(...)."""

    text: str
    timezone: str = "UTC"

    def next_after(self, moment: dt.datetime) -> dt.datetime | None:
        rate = _RATE.match(self.text)
        if rate:
            unit = rate.group(2).rstrip("s")
            seconds = int(rate.group(1)) * {"minute": 60, "hour": 3600, "day": 86400}[unit]
            return moment + dt.timedelta(seconds=seconds)
        at = _AT.match(self.text)
        if at:
            when = dt.datetime.fromisoformat(at.group(1)).replace(tzinfo=ZoneInfo(self.timezone))
            return when.astimezone(dt.UTC) if when > moment else None
        cron = _CRON.match(self.text)
        if cron:
            return self._next_cron(cron.group(1).split(), moment)
        raise ValueError(f"unsupported schedule expression {self.text!r}")

    def _next_cron(self, fields: list[str], moment: dt.datetime) -> dt.datetime | None:
        if len(fields) != 6:
            raise ValueError(f"cron needs 6 fields: {self.text!r}")
        if "L" in fields[2] or "W" in fields[2] or "#" in fields[4] or "L" in fields[4]:
            raise ValueError(f"L, W and # are not supported locally: {self.text!r}")
        minutes = sorted(_cron_field(fields[0], 0, 59) or range(60))
        hours = sorted(_cron_field(fields[1], 0, 23) or range(24))
        days = _cron_field(fields[2], 1, 31)
        months = _cron_field(fields[3], 1, 12, _MONTHS)
        weekdays = _cron_field(fields[4], 1, 7, _DAYS)
        years = _cron_field(fields[5], 1970, 2199)
        zone = ZoneInfo(self.timezone)
        start = (moment.astimezone(zone) + dt.timedelta(minutes=1)).replace(second=0, microsecond=0)
        day = start.date()
        for _ in range(366 * 5):
            aws_weekday = (day.weekday() + 1) % 7 + 1  # AWS: 1 = Sunday ... 7 = Saturday
            if (
                (years is None or day.year in years)
                and (months is None or day.month in months)
                and (days is None or day.day in days)
                and (weekdays is None or aws_weekday in weekdays)
            ):
                for hour in hours:
                    for minute in minutes:
                        candidate = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
                        if candidate >= start:
                            return candidate.astimezone(dt.UTC)
            day += dt.timedelta(days=1)
        return None


def _scheduled_event(rule_arn: str, moment: dt.datetime | None = None) -> dict[str, Any]:
    region, account, _ = _arn_parts(rule_arn)
    return make_event(
        source="aws.events",
        detail_type="Scheduled Event",
        detail={},
        resources=[rule_arn],
        account=account,
        region=region,
        time=moment,
    )


def fire_scheduled_rule(
    name_or_arn: str, *, at: dt.datetime | None = None, connection: Connection | None = None
) -> dict[str, Any] | None:
    """Fire a scheduled rule now: its targets get the Scheduled Event AWS sends. Returns the event,
    or None when the rule is disabled (a disabled rule does not fire on AWS either)."""
    connection = connection or _connection()
    events = client("events", connection)
    name = name_or_arn.rsplit("/", 1)[-1]
    rule = events.describe_rule(Name=name)
    if "ScheduleExpression" not in rule:
        raise ValueError(f"rule {name} has no ScheduleExpression")
    if not _is_enabled(rule.get("State")):
        logger.info("rule %s is disabled: not fired", name)
        return None
    event = _scheduled_event(rule["Arn"], at)
    for target in events.list_targets_by_rule(Rule=name)["Targets"]:
        try:
            payload = target_input(target, event, rule["Arn"])
        except ValueError:
            _record(Delivery(rule["Arn"], target["Id"], target["Arn"], event["id"], "failed", 0, "InvalidInput"))
            continue
        deliver(Job(rule["Arn"], "rule", target, event["id"], payload, json.dumps(event), connection))
    return event


def fire_schedule(name: str, *, group: str | None = None, connection: Connection | None = None) -> str | None:
    """Fire an EventBridge Scheduler schedule now (its Target with its Input; `{}` without one).
    Returns an id for the invocation, or None when the schedule is disabled."""
    connection = connection or _connection()
    schedule = client("scheduler", connection).get_schedule(Name=name, **({"GroupName": group} if group else {}))
    if not _is_enabled(schedule.get("State")):
        logger.info("schedule %s is disabled: not fired", name)
        return None
    target = dict(schedule["Target"])
    payload = str(target.get("Input", "{}"))
    invocation = str(uuid.uuid4())
    deliver(Job(schedule["Arn"], "schedule", target, invocation, payload, payload, connection))
    return invocation


@dataclass
class _Scheduled:
    kind: Literal["rule", "schedule"]
    name: str
    group: str | None
    expression: ScheduleExpression
    next_fire: dt.datetime | None


class ScheduleClock(Periodic):
    """Fires scheduled rules and schedules on a clock that runs `speedup` times faster than real
    time (rate(5 minutes) at speedup 60 fires every 5 s). Missed fires are skipped, not replayed."""

    name = "localcloud-schedules"

    def __init__(self, connection: Connection, speedup: float = 1.0, tick_seconds: float = 0.2) -> None:
        super().__init__(tick_seconds)
        self.connection = connection
        self.speedup = speedup
        self.tick_seconds = tick_seconds
        self.real_start = time.monotonic()
        self.start_time = dt.datetime.now(dt.UTC)
        self.fired: list[tuple[str, dt.datetime]] = []
        self._entries: dict[tuple[str, str | None, str, str], _Scheduled] = {}  # kind, group, name, expression
        self._discovered: list[tuple[Literal["rule", "schedule"], str, str | None, ScheduleExpression]] = []
        self._discovered_at = -1.0

    def now(self) -> dt.datetime:
        return self.start_time + dt.timedelta(seconds=(time.monotonic() - self.real_start) * self.speedup)

    def _discover(self) -> Iterator[tuple[Literal["rule", "schedule"], str, str | None, ScheduleExpression]]:
        events = client("events", self.connection)
        for page in events.get_paginator("list_rules").paginate():
            for rule in page["Rules"]:
                if "ScheduleExpression" in rule and _is_enabled(rule.get("State")):
                    yield "rule", rule["Name"], None, ScheduleExpression(rule["ScheduleExpression"])
        scheduler = client("scheduler", self.connection)
        for page in scheduler.get_paginator("list_schedules").paginate():
            for summary in page["Schedules"]:
                if not _is_enabled(summary.get("State")):
                    continue
                schedule = scheduler.get_schedule(Name=summary["Name"], GroupName=summary["GroupName"])
                expression = ScheduleExpression(
                    schedule["ScheduleExpression"], schedule.get("ScheduleExpressionTimezone") or "UTC"
                )
                yield "schedule", schedule["Name"], schedule["GroupName"], expression

    def tick(self) -> None:
        with using(self.connection):  # on the clock's thread, which must not read os.environ
            self._fire_due()

    def _fire_due(self) -> None:
        now = self.now()
        if time.monotonic() - self._discovered_at >= DISCOVERY_SECONDS:  # new schedules appear within a second
            self._discovered = list(self._discover())
            self._discovered_at = time.monotonic()
        seen = set()
        for kind, name, group, expression in self._discovered:
            key: tuple[str, str | None, str, str] = (kind, group, name, expression.text)
            seen.add(key)
            entry = self._entries.get(key)
            if entry is None:
                try:
                    first = expression.next_after(self.start_time)
                except ValueError as exc:
                    logger.warning("%s %s is not scheduled on the local clock: %s", kind, name, exc)
                    first = None
                entry = self._entries[key] = _Scheduled(kind, name, group, expression, first)
            if entry.next_fire is None or entry.next_fire > now:
                continue
            fire_at = entry.next_fire
            entry.next_fire = expression.next_after(max(fire_at, now))
            self._fire(entry, fire_at)
        for key in set(self._entries) - seen:
            del self._entries[key]

    def _fire(self, entry: _Scheduled, moment: dt.datetime) -> None:
        try:
            if entry.kind == "rule":
                fire_scheduled_rule(entry.name, at=moment, connection=self.connection)
            else:
                fire_schedule(entry.name, group=entry.group, connection=self.connection)
            self.fired.append((entry.name, moment))
        except Exception as exc:
            logger.warning("%s %s could not fire: %s", entry.kind, entry.name, _error_code(exc)[0])


_CLOCK: ScheduleClock | None = None


def start_scheduler(
    cloud: LocalCloud | None = None, *, speedup: float = 1.0, tick_seconds: float = 0.2
) -> ScheduleClock:
    """Start (or restart) the clock that fires the account's schedules; `shutdown()` stops it."""
    global _CLOCK  # noqa: PLW0603 - one clock per process, like the local cloud
    if _CLOCK is not None:
        _CLOCK.stop()
    connection = Connection.from_mapping(cloud.environment) if cloud is not None else _connection()
    _CLOCK = ScheduleClock(connection, speedup=speedup, tick_seconds=tick_seconds).start()
    return _CLOCK


# --------------------------------------------------------------------------------------------------
# Life cycle.

_INSTALLED = False


def install() -> None:
    """Patch moto's EventBridge and S3 -> EventBridge paths once; register the provisioners."""
    global _INSTALLED  # noqa: PLW0603 - process-wide patches, applied once
    if not _INSTALLED:
        Rule.send_to_targets = route_to_targets  # type: ignore[method-assign,assignment]
        s3_notifications._send_event_bridge_message = _s3_to_eventbridge
        S3Response.put_object_tagging = _tagging_api  # type: ignore[method-assign]
        _INSTALLED = True
    register_provisioner("AWS::Events::Rule", events_rule)
    register_provisioner("AWS::Events::EventBus", events_bus)
    register_provisioner("AWS::Scheduler::Schedule", scheduler_schedule)
    register_provisioner("AWS::Scheduler::ScheduleGroup", scheduler_group)


def attach(cloud: LocalCloud) -> None:
    """Bind deliveries to a running local cloud: its endpoint, region and credentials."""
    global _ATTACHED  # noqa: PLW0603 - the running cloud, one per process
    install()
    _ATTACHED = Connection.from_mapping(cloud.environment)
    _DELIVERIES.clear()


def shutdown(timeout: float = FLUSH_TIMEOUT_SECONDS) -> bool:
    """Stop the schedule clock, finish pending deliveries and stop the worker. Call it before the
    moto context closes, or late deliveries would reach nothing. False if deliveries were pending."""
    global _CLOCK, _ATTACHED  # noqa: PLW0603 - see start_scheduler and attach
    if _CLOCK is not None:
        _CLOCK.stop()
        _CLOCK = None
    drained = _DISPATCHER.stop(timeout)
    if not drained:
        logger.warning("EventBridge deliveries were still pending at shutdown")
    _ATTACHED = None
    with _CLIENTS_LOCK:  # close their connections: a moto server waits for open ones when it stops
        for cached in _CLIENTS.values():
            cached.close()
        _CLIENTS.clear()
    return drained
