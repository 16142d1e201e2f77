"""Lambda on the local cloud: moto keeps the functions, and invoking one runs the real handler.

moto would run function code only in Docker. Every path that invokes a function in moto (the
Invoke API, Step Functions tasks, S3 and SNS notifications, EventBridge targets) goes through
`LambdaFunction._invoke_lambda`; it is replaced here by a call of the registered LocalFunction.
A handler exception becomes a Lambda function error whose payload carries errorType and
errorMessage, which is what Step Functions' Retry and Catch match on.
tests/localcloud/test_moto_behaviour.py pins the moto method this relies on.
"""

from __future__ import annotations

import json
import traceback
from typing import Any

import moto.s3.notifications as s3_notifications
from moto.awslambda.models import LambdaBackend, LambdaFunction

from localcloud import events
from localcloud.runtime import FunctionError, registered_function

_moto_invoke_lambda = LambdaFunction._invoke_lambda
_moto_function_invoke = LambdaFunction.invoke
_moto_s3_invoke = s3_notifications._invoke_awslambda
_moto_sns_invoke = LambdaBackend.send_sns_message


def _invoke_local(self: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
    function = registered_function(self.function_arn) or registered_function(self.function_name)
    if function is None:
        return _moto_invoke_lambda(self, event)  # not ours: moto's own behaviour
    if isinstance(event, (str, bytes)):
        event = json.loads(event) if event else {}
    try:
        result = function.invoke(event if event is not None else {})
    except FunctionError as exc:
        payload = {
            "errorType": exc.error_type,
            "errorMessage": str(exc.error),
            "stackTrace": traceback.format_tb(exc.error.__traceback__),
        }
        return json.dumps(payload), True, ""
    return json.dumps(result), False, ""


def _function_invoke(self: LambdaFunction, body: str, request_headers: Any, response_headers: Any) -> str | bytes:
    # InvocationType=Event is asynchronous on AWS: queue it (moto ran it inside the request, which
    # deadlocks a handler that invokes another function asynchronously in server mode).
    headers = {str(k).lower(): v for k, v in dict(request_headers or {}).items()}
    if headers.get("x-amz-invocation-type") == "Event" and registered_function(self.function_arn) is not None:

        def run() -> None:
            _moto_function_invoke(self, body, {}, {})

        events.submit(run)
        return b""
    return _moto_function_invoke(self, body, request_headers, response_headers)


def _s3_notification(account_id: str, event_body: Any, fn_arn: str, region_name: str) -> None:
    # S3 invokes functions asynchronously: moto did it inside the PutObject request, which in
    # server mode deadlocks a handler whose own PutObject triggers another function.
    events.submit(lambda: _moto_s3_invoke(account_id, event_body, fn_arn, region_name))


def _sns_notification(self: LambdaBackend, *args: Any, **kwargs: Any) -> None:
    # SNS delivers to functions asynchronously too (same reason as S3).
    events.submit(lambda: _moto_sns_invoke(self, *args, **kwargs))


def install() -> None:
    """Route moto's Lambda invocations to the local runtime, asynchronous ones (Event invokes, S3
    and SNS notifications) through the delivery worker (idempotent, process-wide)."""
    LambdaFunction._invoke_lambda = _invoke_local  # type: ignore[method-assign]
    LambdaFunction.invoke = _function_invoke  # type: ignore[method-assign]
    s3_notifications._invoke_awslambda = _s3_notification
    LambdaBackend.send_sns_message = _sns_notification  # type: ignore[method-assign]
