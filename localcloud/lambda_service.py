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

from moto.awslambda.models import LambdaFunction

from localcloud.runtime import FunctionError, registered_function

_moto_invoke_lambda = LambdaFunction._invoke_lambda


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


def install() -> None:
    """Route moto's Lambda invocations to the local runtime (idempotent, process-wide)."""
    LambdaFunction._invoke_lambda = _invoke_local  # type: ignore[method-assign]
