"""What every REST function of the API shares: the caller's identity, the raw body, JSON responses,
the error handlers every route needs, and the OpenAPI document's frame (SigV4 security).

Each function builds its own Powertools resolver (`app`) and calls install_error_handlers(app, ...)
once; the domain errors it maps itself stay in its own module.
"""

from __future__ import annotations

import base64
import binascii
import json
import traceback
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import BadRequestError, NotFoundError, UnauthorizedError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn
from aws_lambda_powertools.metrics import Metrics, MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from dxops.api.responses import error_body
from dxops.domain.errors import MalformedPayload, PayloadTooLarge
from dxops.domain.quarantine import safe_field_errors
from dxops.observability import logger


def caller(app: APIGatewayRestResolver) -> str:
    """The signed caller's IAM ARN. API Gateway enforces IAM auth; this guards against a
    misconfigured route or a direct invoke."""
    identity = app.current_event.request_context.identity
    principal = identity.user_arn or identity.caller
    if not principal:
        raise UnauthorizedError("the request is not signed by an authorised AWS identity (SigV4)")
    return principal


def body_bytes(app: APIGatewayRestResolver) -> bytes:
    event = app.current_event
    body = event.body or ""
    if event.is_base64_encoded:
        try:
            return base64.b64decode(body, validate=True)
        except binascii.Error:
            raise MalformedPayload("the base64-encoded body is not valid base64") from None
    return body.encode()


def json_response(status: HTTPStatus, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=headers)


def request_id(app: APIGatewayRestResolver) -> str | None:
    return app.current_event.request_context.request_id


def openapi_frame(app: APIGatewayRestResolver, *, title: str, description: str) -> dict[str, Any]:
    """The resolver's OpenAPI document, with SigV4 (IAM) as the security of every operation."""
    document: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(
            title=title,
            version="1.0.0",
            description=f"{description} Requests are signed with AWS SigV4 (IAM authorisation).",
            security_schemes={
                "sigv4": APIKey(
                    name="Authorization",
                    in_=APIKeyIn.header,
                    description="AWS Signature Version 4",
                    openapi_extensions={"x-amazon-apigateway-authtype": "awsSigv4"},
                )
            },
            security=[{"sigv4": []}],
        )
    )
    return document


def install_error_handlers(
    app: APIGatewayRestResolver,
    metrics: Metrics,
    retry_after_seconds: int,
    current_request_id: Callable[[], str | None] | None = None,
) -> None:
    """Responses for the errors every route can meet; none echoes input values.

    current_request_id names the request in error bodies: API Gateway's request id unless the
    function names its requests otherwise.
    """
    request_id_of = current_request_id or (lambda: request_id(app))

    def reply(status: HTTPStatus, code: str, message: str, **extra: Any) -> Response[Any]:
        return json_response(status, error_body(code, message, request_id_of(), **extra))

    def _too_large(exc: PayloadTooLarge) -> Response[Any]:
        metrics.add_metric(name="RequestsTooLarge", unit=MetricUnit.Count, value=1)
        return reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "payload_too_large", str(exc))

    def _malformed(exc: MalformedPayload) -> Response[Any]:
        metrics.add_metric(name="RequestsMalformed", unit=MetricUnit.Count, value=1)
        return reply(HTTPStatus.BAD_REQUEST, "malformed_request", str(exc))

    def _dependency_failed(exc: Exception) -> Response[Any]:
        logger.error("dependency failed", extra={"error_type": type(exc).__name__})
        metrics.add_metric(name="DependencyErrors", unit=MetricUnit.Count, value=1)
        body = error_body("service_unavailable", "a dependency is unavailable; retry later", request_id_of())
        return json_response(HTTPStatus.SERVICE_UNAVAILABLE, body, {"Retry-After": str(retry_after_seconds)})

    def _invalid_request(exc: RequestValidationError) -> Response[Any]:
        # Powertools' own 422 body would echo the input values: rebuild it without them.
        fields = safe_field_errors(exc.errors(), drop_prefix="body")
        return reply(
            HTTPStatus.UNPROCESSABLE_ENTITY, "validation_failed", "the request does not match its schema", fields=fields
        )

    def _not_found(exc: NotFoundError) -> Response[Any]:
        return reply(HTTPStatus.NOT_FOUND, "not_found", str(exc.msg))

    def _bad_request(exc: BadRequestError) -> Response[Any]:
        return reply(HTTPStatus.BAD_REQUEST, "malformed_request", str(exc.msg))

    def _unauthorised(exc: UnauthorizedError) -> Response[Any]:
        return reply(HTTPStatus.UNAUTHORIZED, "unauthorized", str(exc.msg))

    def _unexpected(exc: Exception) -> Response[Any]:
        # The exception message could echo input: log the type and the stack frames only.
        logger.error(
            "unhandled error",
            extra={"error_type": type(exc).__name__, "stack": traceback.format_tb(exc.__traceback__)},
        )
        return reply(HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "internal error")

    # Registered by call: Powertools' decorator is untyped.
    app.exception_handler(PayloadTooLarge)(_too_large)
    app.exception_handler(MalformedPayload)(_malformed)
    app.exception_handler([ClientError, BotoCoreError])(_dependency_failed)
    app.exception_handler(RequestValidationError)(_invalid_request)
    app.exception_handler(NotFoundError)(_not_found)
    app.exception_handler(BadRequestError)(_bad_request)
    app.exception_handler(UnauthorizedError)(_unauthorised)
    app.exception_handler(Exception)(_unexpected)
