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
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import BadRequestError, NotFoundError, UnauthorizedError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.metrics import Metrics, MetricUnit
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyInconsistentStateError,
    IdempotencyPersistenceLayerError,
)
from botocore.exceptions import BotoCoreError, ClientError

from dxops.api.openapi import document_standard_responses
from dxops.api.responses import error_body
from dxops.domain.errors import MalformedPayload, PayloadTooLarge
from dxops.domain.quarantine import FieldError, safe_field_errors
from dxops.observability import logger
from dxops.schemas.common import SITE_ID_PATTERN

# Phenopackets and FHIR Bundles don't name the site that sends them; their records take it from here.
SourceQuery = Annotated[
    str,
    Query(
        min_length=1,
        max_length=64,
        pattern=SITE_ID_PATTERN,
        description="the site the documents come from (the records' source): a-z 0-9 -",
    ),
]


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


def refuse_unknown_query_parameters(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
    """Powertools middleware: a query parameter the route does not declare is an error (422), as an
    unknown body field is (StrictModel): a misspelt `?day=7` must not be silently ignored. The
    names are not echoed (they are input)."""
    route = app.context.get("_route")
    declared = {field.alias for field in route.dependant.query_params} if route else set()
    unknown = sorted(set(app.current_event.query_string_parameters or {}) - declared)
    if unknown:  # extra_forbidden: reported as query.(unknown field), as for a body
        raise RequestValidationError(
            [{"loc": ("query", name), "msg": "unknown query parameter", "type": "extra_forbidden"} for name in unknown]
        )
    return next_middleware(app)


def json_response(status: HTTPStatus, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=headers)


def request_id(app: APIGatewayRestResolver) -> str | None:
    return app.current_event.request_context.request_id


def openapi_frame(
    app: APIGatewayRestResolver, *, title: str, description: str, retry_after: tuple[str, ...] = ("503",)
) -> dict[str, Any]:
    """The resolver's OpenAPI document, with SigV4 (IAM) as the security of every operation and the
    responses every operation shares (document_standard_responses)."""
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
    document_standard_responses(document, retry_after=retry_after)
    return document


def _field_errors(exc: RequestValidationError | UnicodeDecodeError) -> list[FieldError]:
    """Powertools' own 422 body would echo the input values: rebuilt without them. Powertools
    decodes a validated route's body as UTF-8 before parsing it as JSON: other bytes fail so."""
    if isinstance(exc, UnicodeDecodeError):
        return [FieldError(path="body", message="the body is not UTF-8 text", type="json_invalid")]
    return safe_field_errors(exc.errors(), drop_prefix="body")


# The error code of each Powertools HTTP error the handlers raise.
REFUSAL_CODES = {
    HTTPStatus.NOT_FOUND: "not_found",
    HTTPStatus.BAD_REQUEST: "malformed_request",
    HTTPStatus.UNAUTHORIZED: "unauthorized",
}


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

    def _idempotency_store_failed(exc: IdempotencyPersistenceLayerError) -> Response[Any]:
        # Powertools wraps the idempotency table's errors (a throttled or unavailable DynamoDB) in
        # its own exception: backpressure (503, Retry-After) like any dependency, not a 500.
        cause = exc.__cause__
        return _dependency_failed(cause) if isinstance(cause, (ClientError, BotoCoreError)) else _unexpected(exc)

    def _invalid_request(exc: RequestValidationError | UnicodeDecodeError) -> Response[Any]:
        return reply(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            "validation_failed",
            "the request does not match its schema",
            fields=_field_errors(exc),
        )

    def _refused(exc: NotFoundError | BadRequestError | UnauthorizedError) -> Response[Any]:
        return reply(HTTPStatus(exc.status_code), REFUSAL_CODES[HTTPStatus(exc.status_code)], str(exc.msg))

    def _undecodable(exc: UnicodeDecodeError) -> Response[Any]:
        # Bytes of the request's body that are not UTF-8 are the client's error (422); any other text
        # that fails to decode (an object, a secret) is ours.
        return _invalid_request(exc) if exc.object == body_bytes(app) else _unexpected(exc)

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
    app.exception_handler(IdempotencyPersistenceLayerError)(_idempotency_store_failed)
    # The idempotency record changed under Powertools' own retries (expiring, deleted): retry later.
    app.exception_handler(IdempotencyInconsistentStateError)(_dependency_failed)
    app.exception_handler(RequestValidationError)(_invalid_request)
    app.exception_handler(UnicodeDecodeError)(_undecodable)
    app.exception_handler([NotFoundError, BadRequestError, UnauthorizedError])(_refused)
    app.exception_handler(Exception)(_unexpected)
