"""The diagnosis model's SageMaker endpoint (InvokeEndpoint), behind the PredictionEndpoint port.

Timeouts: 2 s to connect, the read timeout from the settings (below the Lambda's timeout and API
Gateway's 29 s); standard retries with two attempts in all, which botocore makes on throttling,
5xx answers of the service and connection errors (a model's own error, ModelError, is not retried).
Worst case: 2 x (connect + read) + one backoff of at most 1 s, which the template keeps under the
function's timeout.

Errors become domain errors: ModelError with a 4xx OriginalStatusCode (the model refused the
request) is ModelRefused with the model's message (first line, bounded); everything a retry may
cure is EndpointUnavailable with its kind: model_error (the model's 5xx), not_deployed,
not_ready, throttled, service_unavailable, timeout, connection, other. Request bodies and the
model's messages are never logged.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from dxops.domain.prediction import EndpointUnavailable, ModelRefused

CONNECT_TIMEOUT_SECONDS = 2
MAX_ATTEMPTS = 2  # the first call and one retry
_MESSAGE_LIMIT = 300
_THROTTLED = {"ThrottlingException", "Throttling", "TooManyRequestsException", "ModelNotReadyException"}
_SERVICE_FAILED = {"ServiceUnavailable", "InternalFailure", "InternalDependencyException", "InternalServerError"}


def endpoint_config(read_timeout_seconds: float) -> Config:
    return Config(
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=read_timeout_seconds,
        retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},  # max_attempts would count retries
    )


def _model_message(error: ClientError) -> str:
    original = str(error.response.get("OriginalMessage") or "").strip()
    first_line = original.splitlines()[0] if original else ""
    return first_line[:_MESSAGE_LIMIT] or "the model refused the request"


def _kind(code: str, message: str) -> str:
    if code == "ModelError":
        return "model_error"
    if code == "ValidationError" and "not found" in message.lower():
        return "not_deployed"  # no endpoint of that name (yet)
    if code == "ValidationError" and "status" in message.lower():
        return "not_ready"  # Creating, Updating, Failed...
    if code in _THROTTLED:
        return "throttled"
    if code in _SERVICE_FAILED:
        return "service_unavailable"
    return "other"


_MESSAGES = {
    "model_error": "the model failed to answer",
    "not_deployed": "no model is deployed at the endpoint yet",
    "not_ready": "the model endpoint is not in service yet",
    "throttled": "the model endpoint is busy",
    "service_unavailable": "the model endpoint is unavailable",
}


def _original_status(error: ClientError) -> int:
    status = str(error.response.get("OriginalStatusCode") or "")
    return int(status) if status.isdigit() else 500


def _from_client_error(error: ClientError) -> Exception:
    code = str(error.response.get("Error", {}).get("Code", ""))
    if code == "ModelError" and 400 <= _original_status(error) < 500:
        return ModelRefused(_model_message(error))
    kind = _kind(code, str(error.response.get("Error", {}).get("Message", "")))
    message = _MESSAGES.get(kind, f"the model endpoint could not be called ({code or 'unknown error'})")
    return EndpointUnavailable(kind, message)


def _from_botocore_error(error: BotoCoreError) -> EndpointUnavailable:
    if isinstance(error, ReadTimeoutError):
        return EndpointUnavailable("timeout", "the model did not answer in time")
    if isinstance(error, (ConnectTimeoutError, EndpointConnectionError, ConnectionClosedError)):
        return EndpointUnavailable("connection", "the model endpoint could not be reached")
    return EndpointUnavailable("other", f"the model endpoint could not be called ({type(error).__name__})")


class SageMakerEndpoint:
    def __init__(self, endpoint_name: str, read_timeout_seconds: float = 20, client: Any | None = None) -> None:
        self.endpoint_name = endpoint_name
        self._client = client or boto3.client("sagemaker-runtime", config=endpoint_config(read_timeout_seconds))

    def invoke(self, body: bytes, content_type: str) -> bytes:
        try:
            response = self._client.invoke_endpoint(
                EndpointName=self.endpoint_name, Body=body, ContentType=content_type, Accept="application/json"
            )
            return bytes(response["Body"].read())
        except ClientError as error:
            raise _from_client_error(error) from None
        except BotoCoreError as error:
            raise _from_botocore_error(error) from None
