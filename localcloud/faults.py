"""Fault injection on the local cloud: AWS answers with throttling or server errors on demand.

    with inject(Fault("s3", "PutObject", "SlowDown", 503, times=2)) as log:
        ...   # the next two PutObject requests of any client in this process get 503 SlowDown
    log.injected["s3.PutObject"]  ->  2

A botocore `before-send` handler registered first for every client (like moto's own stubber,
which it pre-empts): while a plan is active, a matching request never reaches moto and gets
the error AWS would send, in the service's protocol (an S3 XML error, a JSON `__type`), so
botocore's retry logic, the adapters and the state machines react to it as to the real thing.
A fault can fail a number of requests and then let them pass (a transient throttle), or every
request (an outage), and can be narrowed to some requests (a bucket, a table, a key prefix).

Faults fail HTTP attempts, not API calls: the SDK retries an error it deems retryable (a
throttle, a 5xx), so a fault of fewer requests than the client's attempts is absorbed by its
retries and never reaches the caller. `every` and `calls` select whole calls instead (a call:
one operation call of a client, its retries included): every Nth matching call fails all of
its attempts, a throttle that outlasts the SDK's retries and surfaces to the caller, after
the SDK's whole backoff (botocore's legacy mode, its default: 5 attempts for most services,
10 for DynamoDB, whose backoff alone adds up to 25.6 s).

Only clients of this process see the faults (the handlers, the state machines' integrations,
the local cloud's own engines); a job subprocess talking to a moto server does not.
"""

from __future__ import annotations

import functools
import json
import math
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

import boto3
import botocore.session
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.compat import HTTPHeaders
from botocore.handlers import BUILTIN_HANDLERS, REGISTER_FIRST
from moto.core.botocore_stubber import BotocoreStubber, MockRawResponse

QUERY_PROTOCOL_SERVICES = frozenset({"sns", "cloudformation", "iam", "sts", "ec2"})


class FunctionCrash(BaseException):
    """The execution environment died in the middle of an invocation (out of memory, a timeout, a
    segfault): no handler's `except Exception` sees it, and the local runtime reports the invocation
    as failed (Lambda's Runtime.ExitError) and loads the handler again for the next one. Unlike a
    real crash, `finally` blocks and context managers on the way out still run (a flush of metrics,
    say), and the layer's modules stay imported."""


@dataclass
class Fault:
    """Fail matching requests of service.operation with this error: `times` of them in all
    (math.inf: all of them), or only the requests of every `every`-th call, `calls` calls at most."""

    service: str  # as boto3.client() names it: s3, dynamodb, sagemaker, sagemaker-runtime, stepfunctions, ...
    operation: str | None  # PutObject, PutItem, CreateTrainingJob, InvokeEndpoint; None: every operation
    code: str  # SlowDown, ThrottlingException, ProvisionedThroughputExceededException, InternalFailure, ...
    status: int = 503
    times: float = 1  # error responses in all, attempts of every call counted
    when: Callable[[AWSPreparedRequest], bool] | None = None  # narrows the fault, e.g. to one bucket
    message: str = "injected by the local cloud's fault plan"
    every: int = 1  # only every Nth matching call fails: each of its attempts, retries included
    calls: float = math.inf  # at most this many calls fail
    crash: bool = False  # the caller's process dies at this request instead (FunctionCrash), sending nothing
    injected: int = 0  # error responses sent (or crashes)
    failed_calls: int = 0  # calls that got at least one
    _seen_calls: int = field(default=0, init=False, repr=False, compare=False)
    _failing: set[str] = field(default_factory=set, init=False, repr=False, compare=False)  # their invocation ids

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"every must be 1 or more, not {self.every}")
        # Events name a service by its hyphenised id (stepfunctions -> sfn, events -> eventbridge).
        self.event_service = _event_service(self.service)

    def matches(self, service: str, operation: str, request: AWSPreparedRequest) -> bool:
        if service != self.event_service:
            return False
        if self.operation is not None and operation != self.operation:
            return False
        return self.when is None or self.when(request)

    def strikes(self, service: str, operation: str, request: AWSPreparedRequest) -> bool:
        """Whether this request gets the error; counts it if so (under the plan's lock)."""
        if self.injected >= self.times or not self.matches(service, operation, request):
            return False
        # botocore numbers the attempts of a call and gives the call an id its retries keep.
        context: dict[str, Any] = getattr(request, "context", None) or {}  # botocore-stubs omit the attribute
        retries = context.get("retries", {})
        call, attempt = retries.get("invocation-id"), retries.get("attempt", 1)
        if attempt > 1 and call is not None:  # a retry: it fails if its call does
            fails = call in self._failing
        else:  # a new call
            self._seen_calls += 1
            fails = self._seen_calls % self.every == 0 and self.failed_calls < self.calls
            if fails:
                self.failed_calls += 1
                if call is not None:
                    self._failing.add(call)
        if fails:
            self.injected += 1
        return fails


@functools.cache
def _event_service(client_name: str) -> str:
    service_id: str = botocore.session.get_session().get_service_model(client_name).service_id.hyphenize()
    return service_id


def bucket(name: str) -> Callable[[AWSPreparedRequest], bool]:
    """Narrows a fault to one S3 bucket (virtual-hosted or path-style requests)."""

    def in_bucket(request: AWSPreparedRequest) -> bool:
        url = urlsplit(request.url)
        return url.netloc.startswith(f"{name}.") or url.path.split("/")[1:2] == [name]

    return in_bucket


def table(name: str) -> Callable[[AWSPreparedRequest], bool]:
    """Narrows a fault to one DynamoDB table."""

    def on_table(request: AWSPreparedRequest) -> bool:
        body = request.body or b""
        text = body.decode() if isinstance(body, bytes) else str(body)
        return f'"{name}"' in text  # TableName, or a key of RequestItems / TransactItems

    return on_table


@dataclass
class FaultLog:
    """What the plan injected, by service.operation: error responses, and the calls they hit."""

    injected: Counter[str] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)  # calls with at least one injected error

    @property
    def total(self) -> int:
        return sum(self.injected.values())


UNIQUE_ID = "localcloud-fault-injection"
_lock = threading.Lock()
_active: list[tuple[list[Fault], FaultLog]] = []


def _error_response(fault: Fault, request: AWSPreparedRequest) -> AWSResponse:
    headers = HTTPHeaders()
    headers["x-amzn-RequestId"], headers["x-amzn-ErrorType"] = "fault-injected", fault.code
    error = f"<Error><Code>{fault.code}</Code><Message>{fault.message}</Message></Error>"
    if fault.service == "s3":  # rest-xml
        body, content_type = error, "application/xml"
    elif fault.service in QUERY_PROTOCOL_SERVICES:
        body, content_type = f"<ErrorResponse>{error}</ErrorResponse>", "text/xml"
    else:  # the JSON protocols: DynamoDB, SageMaker, Step Functions, SQS, Lambda, ...
        body, content_type = json.dumps({"__type": fault.code, "message": fault.message}), "application/x-amz-json-1.1"
    headers["Content-Type"] = content_type
    return AWSResponse(request.url, fault.status, headers, MockRawResponse(body))


def _before_send(request: AWSPreparedRequest, event_name: str, **kwargs: Any) -> AWSResponse | None:
    if not _active:
        return None
    _, service, operation = event_name.split(".", 2)
    with _lock:
        for faults, log in _active:
            for fault in faults:  # the first fault that strikes answers; the later ones never see the request
                failed_calls = fault.failed_calls
                if fault.strikes(service, operation, request):
                    log.injected[f"{service}.{operation}"] += 1
                    log.calls[f"{service}.{operation}"] += fault.failed_calls - failed_calls
                    request.injected_fault = True  # type: ignore[attr-defined]  # read by the guarded stubber
                    if fault.crash:
                        raise FunctionCrash(f"{service}.{operation}")
                    return _error_response(fault, request)
    return None


def _guard_moto_stubber() -> None:
    """botocore calls every before-send handler and keeps the first response: moto's stubber would
    still carry out a request whose answer is an injected error (a training job created, an object
    stored). It skips the requests a fault answered, as AWS never saw them."""
    if getattr(BotocoreStubber.__call__, "skips_injected_faults", False):
        return
    original = BotocoreStubber.__call__

    def call(self: BotocoreStubber, event_name: str, request: AWSPreparedRequest, **kwargs: Any) -> Any:
        if getattr(request, "injected_fault", False):
            return None
        return original(self, event_name, request, **kwargs)

    call.skips_injected_faults = True  # type: ignore[attr-defined]
    BotocoreStubber.__call__ = call  # type: ignore[method-assign]


def install() -> None:
    """Register the handler first for every botocore session made from now on, and for boto3's
    default session if it exists already (sessions copy the built-in handlers when created)."""
    _guard_moto_stubber()
    entry = ("before-send", _before_send, REGISTER_FIRST)
    if entry not in BUILTIN_HANDLERS:
        BUILTIN_HANDLERS.insert(0, entry)
    if boto3.DEFAULT_SESSION is not None:
        events = boto3.DEFAULT_SESSION.events
        hook = cast("Callable[..., None]", _before_send)  # botocore's stubs type handlers as returning None
        events.unregister("before-send", hook)  # its copy of the built-in entry: never twice
        events.register_first("before-send", hook, unique_id=UNIQUE_ID)


@contextmanager
def inject(*faults: Fault) -> Iterator[FaultLog]:
    """Activate faults for the duration of the block; yields the log of what was injected."""
    plan, log = list(faults), FaultLog()
    with _lock:
        _active.append((plan, log))
    try:
        yield log
    finally:
        with _lock:
            _active.remove((plan, log))
