"""Ingestion API (API Gateway REST, IAM auth): POST /records, POST /phenopackets (GA4GH Phenopacket
v2), POST /fhir/bundles (FHIR R4), device bindings, erasure requests (GDPR), GET /openapi.json.

Thin handler: read the HTTP request, call the domain function (made idempotent with Powertools and
DynamoDB), map domain errors to HTTP responses. The domain lives in the shared layer (dxops).
"""

from __future__ import annotations

import datetime as dt
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from dxops.adapters.clients import API_REQUEST, api_client
from dxops.adapters.dynamodb import DynamoDbDeviceBindings
from dxops.adapters.idempotent_ingestion import idempotent_ingestion, ingestion_idempotency
from dxops.adapters.s3 import S3ErasureAuditLog, S3ObjectStore
from dxops.adapters.secrets import SecretsManagerKeyProvider
from dxops.adapters.stepfunctions import StepFunctionsErasureRuns
from dxops.api.openapi import (
    FHIR_BUNDLE_BODY,
    PHENOPACKET_BODY,
    attach_request_body,
    attach_request_schema,
    published_document,
)
from dxops.api.responses import error_body
from dxops.api.rest import (
    SourceQuery,
    body_bytes,
    caller,
    install_error_handlers,
    json_response,
    openapi_frame,
    refuse_unknown_query_parameters,
    request_id,
)
from dxops.domain.clinical_ingestion import (
    DocumentFormat,
    IngestLimits,
    IngestResult,
    NothingAccepted,
    parse_ingest_body,
)
from dxops.domain.device_binding import bind_device, unbind_device
from dxops.domain.erasure import erasure_status, request_erasure
from dxops.observability import logger, metrics, tracer
from dxops.schemas.clinical import ClinicalRecord
from dxops.schemas.device import DEVICE_ID_MAX_LENGTH, DEVICE_ID_PATTERN, DeviceBinding, DeviceBindingRequest
from dxops.schemas.erasure import REQUEST_ID_PATTERN, ErasureRequestBody, ErasureStatus
from dxops.settings import IngestApiSettings, load_settings

settings = load_settings(IngestApiSettings)
store = S3ObjectStore(settings.raw_bucket, api_client("s3"))
keys = SecretsManagerKeyProvider(settings.pseudonym_secret_id, settings.pseudonym_key_max_age_seconds)
device_bindings = DynamoDbDeviceBindings(settings.device_bindings_table, api_client("dynamodb"))
erasures = StepFunctionsErasureRuns(settings.erasure_state_machine_arn)
erasure_audit = S3ErasureAuditLog(settings.audit_bucket)
limits = IngestLimits(max_items=settings.max_batch_items, max_body_bytes=settings.max_body_bytes)
idempotency_config = ingestion_idempotency(settings.idempotency_expiry_seconds)
persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto_config=API_REQUEST)
ingest = idempotent_ingestion(persistence, idempotency_config, store=store, keys=keys)
RETRY_AFTER_SECONDS = 5
app = APIGatewayRestResolver(enable_validation=True)
install_error_handlers(app, metrics, retry_after_seconds=RETRY_AFTER_SECONDS)
app.use(middlewares=[refuse_unknown_query_parameters])
# Path parameters, validated (422) and documented by Powertools.
DeviceIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=DEVICE_ID_MAX_LENGTH,
        pattern=DEVICE_ID_PATTERN,
        description="the device's IoT thing name: A-Z a-z 0-9 : _ -",
    ),
]
ErasureRequestIdPath = Annotated[str, Path(pattern=REQUEST_ID_PATTERN, description="er- and 32 hexadecimal digits")]
INGEST_RESPONSES: dict[int, OpenAPIResponse] = {
    202: {"description": "Accepted (some records may be rejected: see errors)"},
    400: {"description": "Malformed JSON or body shape"},
    401: {"description": "Unsigned request"},
    409: {"description": "The same request is being processed"},
    413: {"description": "Body or batch too large"},
    422: {"description": "No record was valid, or an Idempotency-Key was reused with another body"},
    503: {"description": "A dependency is unavailable; retry after Retry-After seconds"},
}


@app.post(
    "/records",
    summary="Ingest one clinical record or a batch",
    description=(
        f"Up to {settings.max_batch_items} records and {settings.max_body_bytes} bytes. Valid records are "
        "pseudonymised and stored; invalid ones are reported by index and quarantined. A retry with the "
        "same Idempotency-Key header (without one: the same record_id for a single record, the same body "
        "for a batch) stores nothing twice."
    ),
    enable_validation=False,  # per-record validation in the domain: one bad record must not sink a batch
    responses=INGEST_RESPONSES,
    tags=["ingestion"],
)
def post_records() -> Response[Any]:
    return _ingest_body("clinical-record", source=None)


@app.post(
    "/phenopackets",
    summary="Ingest GA4GH Phenopacket v2 documents: one, an array, or a Cohort",
    description=(
        f"Up to {settings.max_batch_items} phenopackets and {settings.max_body_bytes} bytes. Each is mapped to a "
        "ClinicalRecord (docs/interop-phenopackets.md), then validated, pseudonymised and stored as POST /records "
        "does; mapping_notes report every part that was not mapped and why. A document that is not a valid "
        "Phenopacket v2 is rejected with its reasons and quarantined. Idempotent as POST /records (Idempotency-Key)."
    ),
    responses=INGEST_RESPONSES,
    tags=["ingestion"],
)
def post_phenopackets(source: SourceQuery) -> Response[Any]:
    return _ingest_body("phenopacket", source=source)


@app.post(
    "/fhir/bundles",
    summary="Ingest FHIR R4 Bundles (Patient, Encounter, Condition, Observation): one record per Encounter",
    description=(
        f"Up to {settings.max_batch_items} Bundles and {settings.max_body_bytes} bytes (application/fhir+json). "
        "Each Encounter becomes a ClinicalRecord (docs/interop-fhir.md), validated, pseudonymised and stored as "
        "POST /records does; mapping_notes report every resource or element that was not mapped and why. An "
        "invalid Bundle is rejected with its reasons and quarantined. Idempotent as POST /records."
    ),
    responses=INGEST_RESPONSES,
    tags=["ingestion"],
)
def post_fhir_bundles(source: SourceQuery) -> Response[Any]:
    return _ingest_body("fhir-bundle", source=source)


def _ingest_body(document_format: DocumentFormat, source: str | None) -> Response[Any]:
    principal = caller(app)
    body = body_bytes(app)
    metrics.add_metric(name="RequestBytes", unit=MetricUnit.Bytes, value=len(body))
    request = parse_ingest_body(
        body,
        app.current_event.headers.get("idempotency-key"),
        limits,
        caller=principal,
        document_format=document_format,
        source=source,
    )
    logger.debug(
        "request parsed",
        extra={"items": len(request.items), "key_kind": request.key_kind, "format": document_format},
    )
    try:
        result = ingest(request)
    except NothingAccepted as refused:
        _record(refused.result)
        body_out = {"error": "validation_failed", "message": "no record was valid", **refused.result.model_dump()}
        return json_response(HTTPStatus.UNPROCESSABLE_ENTITY, body_out)
    _record(result)
    return json_response(HTTPStatus.ACCEPTED, result.model_dump())


def _record(result: IngestResult) -> None:
    metrics.add_metric(name="RecordsReceived", unit=MetricUnit.Count, value=result.received)
    metrics.add_metric(name="RecordsAccepted", unit=MetricUnit.Count, value=result.accepted)
    metrics.add_metric(name="RecordsRejected", unit=MetricUnit.Count, value=result.rejected)
    unmapped = sum(len(report.notes) for report in result.mapping_notes)
    if result.documents is not None:
        metrics.add_metric(name="DocumentsReceived", unit=MetricUnit.Count, value=result.documents)
        metrics.add_metric(name="DocumentPartsNotMapped", unit=MetricUnit.Count, value=unmapped)
    logger.info(
        "records ingested",
        extra={
            "batch_id": result.batch_id,
            "accepted": result.accepted,
            "rejected": result.rejected,
            "documents": result.documents,
            "parts_not_mapped": unmapped,
        },
    )


@app.put(
    "/devices/<device_id>/binding",
    summary="Bind a device to the patient it measures",
    description="The patient identifier is pseudonymised at once; readings of the device are attributed to "
    "the pseudonym. Devices never send patient identity themselves.",
    tags=["devices"],
)
def put_device_binding(device_id: DeviceIdPath, binding: Annotated[DeviceBindingRequest, Body()]) -> DeviceBinding:
    caller(app)
    result = bind_device(device_id, binding, store=device_bindings, keys=keys)
    metrics.add_metric(name="DevicesBound", unit=MetricUnit.Count, value=1)
    logger.info("device bound", extra={"device_id": result.device_id, "source": result.source})
    return result


@app.delete(
    "/devices/<device_id>/binding",
    summary="Unbind a device: its later readings are quarantined until it is bound again",
    tags=["devices"],
    responses={204: {"description": "Unbound"}, 404: {"description": "The device was not bound"}},
)
def delete_device_binding(device_id: DeviceIdPath) -> Response[Any]:
    caller(app)
    if not unbind_device(device_id, store=device_bindings):
        raise NotFoundError("this device is not bound")
    metrics.add_metric(name="DevicesUnbound", unit=MetricUnit.Count, value=1)
    logger.info("device unbound", extra={"device_id": device_id})
    return Response(status_code=HTTPStatus.NO_CONTENT)


@app.post(
    "/erasure-requests",
    summary="Erase one patient from the raw zone and every curated dataset (GDPR art. 17)",
    description="Name the patient by site and identifier (pseudonymised at once, with the key in force) or by "
    "pseudonym. The erasure runs asynchronously (its state machine); the request and its completion are "
    "recorded in the audit log, which keeps a digest of the pseudonym only.",
    tags=["privacy"],
    responses={202: {"description": "Accepted: poll GET /erasure-requests/{request_id}"}},
)
def post_erasure_request(request: Annotated[ErasureRequestBody, Body()]) -> Response[Any]:
    caller(app)
    accepted = request_erasure(request, keys=keys, starter=erasures, audit=erasure_audit, now=dt.datetime.now(dt.UTC))
    metrics.add_metric(name="ErasuresRequested", unit=MetricUnit.Count, value=1)
    logger.info("erasure requested", extra={"request_id": accepted.request_id})
    return json_response(HTTPStatus.ACCEPTED, accepted.model_dump(mode="json"))


@app.get(
    "/erasure-requests/<request_id>",
    summary="State of an erasure request, from the audit log",
    tags=["privacy"],
    responses={404: {"description": "No such request"}},
)
def get_erasure_request(request_id: ErasureRequestIdPath) -> ErasureStatus:
    caller(app)
    status = erasure_status(request_id, erasure_audit, erasures)
    metrics.add_metric(name="ErasureStatusReads", unit=MetricUnit.Count, value=1)
    if status is None:
        raise NotFoundError("no such erasure request")
    return status


@app.get("/openapi.json", summary="The OpenAPI document of the whole API", tags=["meta"])
def get_openapi() -> dict[str, Any]:
    return published_document()


def openapi_document() -> dict[str, Any]:
    """This function's routes (make openapi merges them with the other API functions')."""
    document = openapi_frame(
        app,
        title="dxops ingestion API",
        description="Ingest clinical records, bind devices to patients, erase patients (GDPR).",
        retry_after=("409", "503"),  # 409: the same request is in progress
    )
    attach_request_body(document, "/records", "post", ClinicalRecord | list[ClinicalRecord])
    attach_request_schema(document, "/phenopackets", "post", PHENOPACKET_BODY)
    attach_request_schema(document, "/fhir/bundles", "post", FHIR_BUNDLE_BODY, media_types=("application/fhir+json",))
    return document


@app.exception_handler(IdempotencyValidationError)
def _key_reused(_: IdempotencyValidationError) -> Response[Any]:
    message = "this Idempotency-Key (or, for a single record, this record_id) was already used with a different body"
    body = error_body("idempotency_key_reused", message, request_id(app))
    return json_response(HTTPStatus.UNPROCESSABLE_ENTITY, body)


@app.exception_handler(IdempotencyAlreadyInProgressError)
def _in_progress(_: IdempotencyAlreadyInProgressError) -> Response[Any]:
    body = error_body("request_in_progress", "the same request is being processed", request_id(app))
    return json_response(HTTPStatus.CONFLICT, body, {"Retry-After": str(RETRY_AFTER_SECONDS)})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    idempotency_config.register_lambda_context(context)
    return app.resolve(event, context)
