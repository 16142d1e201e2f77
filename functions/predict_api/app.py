"""Prediction API (API Gateway REST, IAM auth): POST /predict, POST /fhir/predict (a FHIR R4 Bundle in,
FHIR RiskAssessments out, for EHRs), POST /diagnoses (late labels).

Thin handler: read the HTTP request, call the domain function, map domain errors to HTTP
responses. Records are pseudonymised and reduced to what the model reads before they reach the
SageMaker endpoint; the domain lives in the shared layer (dxops.domain.prediction). No model code
runs here: the function only calls the endpoint.
"""

from __future__ import annotations

import datetime as dt
import json
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from dxops.adapters.monitoring_store import S3MonitoringStore
from dxops.adapters.sagemaker_runtime import SageMakerEndpoint
from dxops.adapters.secrets import SecretsManagerKeyProvider
from dxops.api.openapi import FHIR_BUNDLE_SCHEMA, attach_request_body, attach_request_schema
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
from dxops.domain.prediction import (
    EndpointUnavailable,
    InvalidRequest,
    ModelRefused,
    PredictLimits,
    PredictOutcome,
    ServedStatistics,
    parse_diagnoses_body,
    parse_fhir_predict_body,
    parse_predict_body,
    predict,
    record_diagnoses,
    safe_request_id,
)
from dxops.observability import logger, metrics, tracer
from dxops.schemas.clinical import ClinicalRecord
from dxops.schemas.prediction import DiagnosesAccepted, DiagnosesRequest, PredictRequest, PredictResponse
from dxops.settings import PredictApiSettings, load_settings

FHIR_JSON = "application/fhir+json"
settings = load_settings(PredictApiSettings)
endpoint = SageMakerEndpoint(settings.endpoint_name, settings.endpoint_read_timeout_seconds)
store = S3MonitoringStore(settings.monitoring_bucket)
keys = SecretsManagerKeyProvider(settings.pseudonym_secret_id, settings.pseudonym_key_max_age_seconds)
limits = PredictLimits(max_records=settings.max_predict_records)
app = APIGatewayRestResolver(enable_validation=True)


def _request_id() -> str:
    """API Gateway's request id (Lambda's for a direct invoke): it names the predictions and their object."""
    if "request_id" not in app.context:
        candidate = request_id(app)
        if not candidate and app.lambda_context is not None:
            candidate = app.lambda_context.aws_request_id
        app.context["request_id"] = safe_request_id(candidate)  # cleared after each request
    return str(app.context["request_id"])


install_error_handlers(app, metrics, retry_after_seconds=settings.retry_after_seconds, current_request_id=_request_id)
app.use(middlewares=[refuse_unknown_query_parameters])


def _errors(*statuses: int) -> dict[int, Any]:
    described = {
        400: "Malformed JSON or body shape",
        401: "Unsigned request",
        413: "Too many records",
        422: "The body does not match its schema (fields name the errors), or the model refused a record",
        503: "The model or a dependency is unavailable (no model deployed yet, throttled, timed out); "
        "retry after Retry-After seconds",
    }
    # Their body is an ErrorBody (document_standard_responses).
    return {status: {"description": described[status]} for status in statuses}


@app.post(
    "/predict",
    summary="Predict the diagnoses of one clinical record or a batch",
    description=(
        f"The body is one ClinicalRecord, or {{records: [...] (at most {settings.max_predict_records}), top_k, "
        "explain}. Records are pseudonymised and reduced to what the model reads before they reach it; "
        "each prediction is answered with a prediction_id (<request_id>:<index>) that POST /diagnoses can "
        "later confirm or refute."
    ),
    enable_validation=False,  # parsed in the domain: one record or a batch, field errors without values
    responses={
        200: {
            "description": "One prediction per record, in request order",
            "content": {"application/json": {"model": PredictResponse}},
        },
        **_errors(400, 401, 413, 422, 503),
    },
    tags=["prediction"],
)
def post_predict() -> Response[Any]:
    caller(app)
    prediction_request_id = _request_id()
    request = parse_predict_body(body_bytes(app), limits)
    outcome = _serve(request, prediction_request_id)
    return json_response(HTTPStatus.OK, outcome.response.model_dump(mode="json"))


def _serve(request: PredictRequest, prediction_request_id: str) -> PredictOutcome:
    """Ask the endpoint for the records' predictions, with the metrics and the log line of a request."""
    logger.debug("request parsed", extra={"records": len(request.records), "top_k": request.top_k})
    metrics.add_metric(name="RecordsPerRequest", unit=MetricUnit.Count, value=len(request.records))
    outcome = predict(request, request_id=prediction_request_id, endpoint=endpoint, store=store, keys=keys)
    metrics.add_metric(name="PredictionLatency", unit=MetricUnit.Milliseconds, value=outcome.endpoint_ms)
    metrics.add_metric(name="PredictionsServed", unit=MetricUnit.Count, value=len(outcome.response.predictions))
    _served_metrics(outcome.statistics)
    if outcome.store_error is not None:
        metrics.add_metric(name="PredictionStoreFailures", unit=MetricUnit.Count, value=1)
        logger.warning(
            "predictions served but not stored for monitoring",
            extra={
                "request_id": prediction_request_id,
                "predictions": len(outcome.response.predictions),
                "error_type": outcome.store_error,
            },
        )
    logger.info(
        "predictions served",
        extra={
            "request_id": prediction_request_id,
            "predictions": len(outcome.response.predictions),
            "model_version": outcome.response.model_version,
            "endpoint_ms": round(outcome.endpoint_ms, 1),
        },
    )
    return outcome


@app.post(
    "/fhir/predict",
    summary="Predict from a FHIR R4 Bundle; answer a FHIR Bundle of RiskAssessments (one per Encounter)",
    description=(
        "The body is a FHIR R4 Bundle as POST /fhir/bundles takes it (Patient, Encounter, Condition, Observation; "
        "docs/interop-fhir.md): each Encounter is one record, validated, pseudonymised and reduced to what the "
        "model reads, as POST /predict does. The answer is a Bundle (collection) of RiskAssessments: subject is the "
        "Bundle's own reference to the patient, encounter its Encounter, each prediction an outcome coded in ICD-10, "
        "Orphanet or OMIM "
        "with its calibrated probability. Nothing of the Bundle is stored but what POST /predict stores."
    ),
    responses={
        200: {
            "description": "One RiskAssessment per Encounter (application/fhir+json)",
            "content": {FHIR_JSON: {"schema": FHIR_BUNDLE_SCHEMA}},
        },
        **_errors(400, 401, 413, 422, 503),
    },
    tags=["prediction"],
)
def post_fhir_predict(source: SourceQuery) -> Response[Any]:
    caller(app)
    prediction_request_id = _request_id()
    parsed = parse_fhir_predict_body(body_bytes(app), limits, source)
    metrics.add_metric(name="FhirBundlePartsNotMapped", unit=MetricUnit.Count, value=parsed.notes)
    outcome = _serve(parsed.request, prediction_request_id)
    from dxops.interop.fhir import risk_assessment_bundle  # noqa: PLC0415 (the FHIR models: this route only)

    bundle = risk_assessment_bundle(
        outcome.response, parsed.subjects, occurrence=dt.datetime.now(dt.UTC), encounters=parsed.encounters
    )
    return Response(status_code=HTTPStatus.OK, content_type=FHIR_JSON, body=json.dumps(bundle))


@app.post(
    "/diagnoses",
    summary="Confirmed diagnoses of records predicted earlier (late labels, for performance monitoring)",
    description=(
        "Each diagnosis names its prediction (prediction_id) or record (record_id), its site, and optionally "
        "the patient (pseudonymised at once). Only confirmed diagnoses are accepted. The same body sent again "
        "gets the same batch_id and stores nothing twice (within a UTC day)."
    ),
    enable_validation=False,
    responses={
        202: {"description": "Stored", "content": {"application/json": {"model": DiagnosesAccepted}}},
        **_errors(400, 401, 422, 503),
    },
    tags=["prediction"],
)
def post_diagnoses() -> Response[Any]:
    caller(app)
    request = parse_diagnoses_body(body_bytes(app))
    logger.debug("request parsed", extra={"diagnoses": len(request.diagnoses)})
    accepted = record_diagnoses(request, store=store, keys=keys)
    metrics.add_metric(name="DiagnosesReceived", unit=MetricUnit.Count, value=accepted.received)
    if not accepted.replayed:
        metrics.add_metric(name="DiagnosesStored", unit=MetricUnit.Count, value=accepted.stored)
    logger.info(
        "diagnoses recorded",
        extra={"batch_id": accepted.batch_id, "received": accepted.received, "replayed": accepted.replayed},
    )
    return json_response(HTTPStatus.ACCEPTED, accepted.model_dump(mode="json"))


def openapi_document() -> dict[str, Any]:
    """This function's routes (make openapi merges them with the other API functions')."""
    document = openapi_frame(
        app,
        title="dxops prediction API",
        description="Predict diseases from clinical records; report confirmed diagnoses.",
    )
    attach_request_body(document, "/predict", "post", ClinicalRecord | PredictRequest)
    attach_request_body(document, "/diagnoses", "post", DiagnosesRequest)
    attach_request_schema(document, "/fhir/predict", "post", FHIR_BUNDLE_SCHEMA, media_types=(FHIR_JSON,))
    return document


def _served_metrics(statistics: ServedStatistics) -> None:
    """Confidence and input statistics (one value per record: CloudWatch gives their percentiles),
    and predictions per top diagnosis (one metric per diagnosis code seen)."""
    for name, values in (
        ("TopProbability", statistics.top_probabilities),
        ("PhenotypesPerRecord", statistics.phenotypes),
        ("LabsPerRecord", statistics.labs),
        ("VitalsPerRecord", statistics.vitals),
    ):
        unit = MetricUnit.NoUnit if name == "TopProbability" else MetricUnit.Count
        for value in values:
            metrics.add_metric(name=name, unit=unit, value=value)
    metrics.add_metric(name="RecordsWithoutAge", unit=MetricUnit.Count, value=statistics.without_age)
    for code, count in sorted(statistics.by_diagnosis.items()):
        with single_metric(
            name="PredictionsByDiagnosis",
            unit=MetricUnit.Count,
            value=count,
            namespace=metrics.namespace,
            default_dimensions={"diagnosis": code},
        ):
            pass


def _endpoint_error(kind: str) -> None:
    with single_metric(
        name="EndpointErrors",
        unit=MetricUnit.Count,
        value=1,
        namespace=metrics.namespace,
        default_dimensions={"kind": kind},
    ):
        pass


@app.exception_handler(EndpointUnavailable)
def _endpoint_unavailable(exc: EndpointUnavailable) -> Response[Any]:
    _endpoint_error(exc.kind)
    logger.error("model endpoint unavailable", extra={"kind": exc.kind, "request_id": _request_id()})
    headers = {"Retry-After": str(settings.retry_after_seconds)}
    body = error_body("model_unavailable", f"{exc}; retry later", _request_id())
    return json_response(HTTPStatus.SERVICE_UNAVAILABLE, body, headers)


@app.exception_handler(ModelRefused)
def _model_refused(exc: ModelRefused) -> Response[Any]:
    _endpoint_error("model_refused")
    logger.warning("the model refused the request", extra={"request_id": _request_id()})  # never its message
    return json_response(HTTPStatus.UNPROCESSABLE_ENTITY, error_body("model_refused", str(exc), _request_id()))


@app.exception_handler(InvalidRequest)
def _invalid(exc: InvalidRequest) -> Response[Any]:
    metrics.add_metric(name="RequestsInvalid", unit=MetricUnit.Count, value=1)
    body = error_body("validation_failed", str(exc), _request_id(), fields=exc.fields)
    return json_response(HTTPStatus.UNPROCESSABLE_ENTITY, body)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
