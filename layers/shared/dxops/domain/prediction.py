"""Predictions from the deployed model, and the late diagnoses that later judge them.

POST /predict: records are validated (ClinicalRecord), pseudonymised (PseudonymisedRecord, as
ingestion does) and reduced to what the model reads (EndpointRecord) before they leave the
function; the endpoint's answer is checked against its contract (EndpointAnswer) and served. Each
served prediction is stored for performance monitoring, one NDJSON object per request:

    predictions/date=YYYY-MM-DD/hour=HH/<request_id>.ndjson     one StoredPrediction per record

Each line is the data capture of one prediction: what the endpoint read of the record
(EndpointRecord: no identity) and what it answered, partitioned by the hour it was served, which
is what the drift and quality monitor (ml/monitor.py) reads.

prediction_id is "<request_id>:<index>": stable (the same request id and position always name the
same prediction) and unique (API Gateway request ids are). Storing is best effort: a prediction
the client has been served is not withheld because monitoring storage failed; the outcome says
so, and the handler logs and counts it.

POST /diagnoses: confirmed diagnoses, joined later to predictions by prediction_id or record_id:

    diagnoses/date=YYYY-MM-DD/<batch_id>.ndjson         one StoredDiagnosis per diagnosis

The batch id is the digest of the pseudonymised lines, so the same body (however serialised)
gets the same batch id, and the object is written once (conditional write): a retry within the
same UTC day stores nothing twice. A retry on another day (or after a key rotation) writes a
second object with the same lines; the monitoring join deduplicates on its keys.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from dxops import SCHEMA_VERSION
from dxops.adapters.ports import KeyProvider, ObjectStore, PredictionEndpoint, WriteOnceStore
from dxops.domain.errors import DomainError, MalformedPayload, PayloadTooLarge
from dxops.domain.json_bodies import parse_json_document
from dxops.domain.pseudonymisation import PseudonymKey, pseudonymise
from dxops.domain.quarantine import FieldError, field_errors
from dxops.domain.raw_zone import NDJSON, batch_id_for, to_ndjson
from dxops.schemas.clinical import ClinicalRecord, PseudonymisedRecord
from dxops.schemas.prediction import (
    DiagnosesAccepted,
    DiagnosesRequest,
    EndpointAnswer,
    EndpointRecord,
    Prediction,
    PredictRequest,
    PredictResponse,
    StoredDiagnosis,
    StoredPrediction,
)

JSON = "application/json"
ENDPOINT_MAX_BODY_BYTES = 6_000_000  # InvokeEndpoint's request limit (6 MB)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$")
ModelT = TypeVar("ModelT", bound=BaseModel)


class InvalidRequest(DomainError):
    """The body does not match its schema; fields name the errors (paths, never values)."""

    def __init__(self, fields: list[FieldError]) -> None:
        super().__init__("the request does not match its schema")
        self.fields = fields


class ModelRefused(DomainError):
    """The model refused the request (its 4xx); the message is the model's, which never quotes values."""


class EndpointUnavailable(DomainError):
    """The endpoint could not answer (not deployed, throttled, failing, timed out); a retry may
    succeed. kind names the failure for metrics and logs."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class PredictLimits:
    max_records: int


@dataclass(frozen=True)
class ServedStatistics:
    """One request's figures for the live metrics: per record, never a value that identifies it."""

    top_probabilities: list[float]  # the confidence of each top diagnosis
    by_diagnosis: dict[str, int]  # top diagnosis code -> records
    phenotypes: list[int]  # terms per record
    labs: list[int]  # lab results per record
    vitals: list[int]  # vital signs per record
    without_age: int  # records without an age

    @classmethod
    def of(cls, records: list[PseudonymisedRecord], response: PredictResponse) -> ServedStatistics:
        tops = [p.diagnoses[0] for p in response.predictions if p.diagnoses]
        by_diagnosis: dict[str, int] = {}
        for top in tops:
            by_diagnosis[top.code] = by_diagnosis.get(top.code, 0) + 1
        return cls(
            top_probabilities=[top.probability for top in tops],
            by_diagnosis=by_diagnosis,
            phenotypes=[len(r.phenotypes) for r in records],
            labs=[len(r.labs) for r in records],
            vitals=[len(r.vitals) for r in records],
            without_age=sum(1 for r in records if r.age_years is None),
        )


@dataclass(frozen=True)
class PredictOutcome:
    response: PredictResponse
    endpoint_ms: float  # the endpoint call, retries included
    stored_key: str | None  # the monitoring object, None if storing failed
    store_error: str | None  # the storage failure's type (never its message)
    statistics: ServedStatistics


# --- parsing -------------------------------------------------------------------------------------


def _validated(model: type[ModelT], document: Any) -> ModelT:
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise InvalidRequest(field_errors(exc)) from None


def parse_predict_body(body: bytes, limits: PredictLimits) -> PredictRequest:
    """One ClinicalRecord, or {"records": [...], "top_k", "explain"}; raises MalformedPayload,
    PayloadTooLarge or InvalidRequest (paths relative to the body: phenotypes[0].hpo_id for a
    single record, records[2].phenotypes[0].hpo_id in a batch)."""
    document = parse_json_document(body)
    if not isinstance(document, dict):
        raise MalformedPayload('body must be a clinical record object or {"records": [...]}')
    if "records" not in document:
        return PredictRequest(records=[_validated(ClinicalRecord, document)])
    records = document["records"]
    if isinstance(records, list) and len(records) > limits.max_records:
        raise PayloadTooLarge(f"{len(records)} records exceed the limit of {limits.max_records} per request")
    return _validated(PredictRequest, document)


@dataclass(frozen=True)
class FhirPredictRequest:
    """POST /fhir/predict: the records of a FHIR Bundle, and the Bundle's own references to answer in."""

    request: PredictRequest
    subjects: dict[str, dict[str, Any]]  # record_id -> the Encounter's subject reference
    encounters: dict[str, dict[str, Any]]  # record_id -> the Encounter's reference
    notes: int  # parts of the Bundle not mapped (reported by POST /fhir/bundles; counted here)


def parse_fhir_predict_body(body: bytes, limits: PredictLimits, source: str) -> FhirPredictRequest:
    """A FHIR R4 Bundle, one record per Encounter (dxops.interop.fhir); raises MalformedPayload,
    PayloadTooLarge or InvalidRequest (paths in the Bundle, or in the record of an Encounter)."""
    from dxops.interop import DocumentRejected  # noqa: PLC0415 (the FHIR models: only this route needs them)
    from dxops.interop.fhir import map_bundle  # noqa: PLC0415

    document = parse_json_document(body)
    if not isinstance(document, dict):
        raise MalformedPayload("body must be a FHIR Bundle object")
    try:
        mapped = map_bundle(document, source=source)
    except DocumentRejected as refused:
        raise InvalidRequest(refused.errors) from None
    if len(mapped) > limits.max_records:
        raise PayloadTooLarge(f"{len(mapped)} encounters exceed the limit of {limits.max_records} per request")
    records, errors = [], []
    for record in mapped:
        try:
            records.append(ClinicalRecord.model_validate(record.record))
        except ValidationError as exc:
            errors += [e.model_copy(update={"path": f"{record.origin}: {e.path}"}) for e in field_errors(exc)]
    if errors:
        raise InvalidRequest(errors)
    missing = [r.origin for r in mapped if r.subject is None]
    if missing:
        message = "the Encounter has no subject reference to answer for"
        raise InvalidRequest(
            [FieldError(path=f"{origin}.subject", message=message, type="missing") for origin in missing]
        )
    return FhirPredictRequest(
        request=PredictRequest(records=records),
        subjects={r.record["record_id"]: r.subject for r in mapped if r.subject is not None},
        encounters={r.record["record_id"]: r.encounter for r in mapped if r.encounter is not None},
        notes=sum(len(r.notes) for r in mapped),
    )


def parse_diagnoses_body(body: bytes) -> DiagnosesRequest:
    document = parse_json_document(body)
    if not isinstance(document, dict):
        raise MalformedPayload('body must be an object {"diagnoses": [...]}')
    return _validated(DiagnosesRequest, document)


def safe_request_id(candidate: str | None) -> str:
    """The request id to name predictions and objects by: API Gateway's (or Lambda's) when it has
    the shape of an id, else a fresh one."""
    return candidate if candidate and _REQUEST_ID.fullmatch(candidate) else str(uuid.uuid4())


# --- POST /predict -------------------------------------------------------------------------------


def _pseudonymised(request: PredictRequest, key: PseudonymKey, now: dt.datetime) -> list[PseudonymisedRecord]:
    return [
        PseudonymisedRecord.from_record(
            record,
            pseudonym=pseudonymise(key, record.source, record.patient_id),
            key_id=key.key_id,
            ingested_at=now,
            schema_version=SCHEMA_VERSION,
        )
        for record in request.records
    ]


def endpoint_body(request: PredictRequest, records: list[PseudonymisedRecord]) -> bytes:
    """What the endpoint receives: the model's fields of each record, no identity (EndpointRecord)."""
    payload = {
        "records": [EndpointRecord.from_pseudonymised(r).model_dump(mode="json") for r in records],
        "top_k": request.top_k,
        "explain": request.explain,
    }
    body = json.dumps(payload, separators=(",", ":")).encode()
    if len(body) > ENDPOINT_MAX_BODY_BYTES:
        raise PayloadTooLarge(
            f"the records make a model request of {len(body)} bytes, over the endpoint's limit of "
            f"{ENDPOINT_MAX_BODY_BYTES}: send fewer records per request"
        )
    return body


def _answer(raw: bytes, records: list[PseudonymisedRecord]) -> EndpointAnswer:
    try:
        answer = EndpointAnswer.model_validate_json(raw)
    except ValidationError:
        raise EndpointUnavailable("invalid_response", "the model answered in an unexpected format") from None
    echoed = [p.record_id for p in answer.predictions]
    if echoed != [r.record_id for r in records]:
        raise EndpointUnavailable("invalid_response", "the model's predictions do not match the records sent")
    return answer


def predict(
    request: PredictRequest,
    *,
    request_id: str,
    endpoint: PredictionEndpoint,
    store: ObjectStore,
    keys: KeyProvider,
    now: dt.datetime | None = None,
) -> PredictOutcome:
    """Pseudonymise, ask the endpoint, serve; store what was served (best effort)."""
    now = now or dt.datetime.now(dt.UTC)
    key = keys.current_key()
    records = _pseudonymised(request, key, now)
    body = endpoint_body(request, records)
    started = time.perf_counter()
    raw = endpoint.invoke(body, JSON)
    endpoint_ms = (time.perf_counter() - started) * 1000
    answer = _answer(raw, records)
    response = PredictResponse(
        request_id=request_id,
        model_version=answer.model_version,
        predictions=[
            Prediction(
                prediction_id=f"{request_id}:{index}",
                record_id=record.record_id,
                diagnoses=p.diagnoses,
                rare_candidates=p.rare_candidates,
                contributions=p.contributions,
            )
            for index, (record, p) in enumerate(zip(records, answer.predictions, strict=True))
        ],
    )
    stored_key, store_error = _store_predictions(store, response, records, now)
    return PredictOutcome(
        response=response,
        endpoint_ms=endpoint_ms,
        stored_key=stored_key,
        store_error=store_error,
        statistics=ServedStatistics.of(records, response),
    )


PREDICTIONS_PREFIX = "predictions/"


def predictions_key(served_at: dt.datetime, request_id: str) -> str:
    return f"{PREDICTIONS_PREFIX}{hour_partition(served_at)}{request_id}.ndjson"


def hour_partition(moment: dt.datetime) -> str:
    """date=YYYY-MM-DD/hour=HH/ of a UTC moment: the capture's time partition."""
    utc = moment.astimezone(dt.UTC)
    return f"date={utc.date().isoformat()}/hour={utc.hour:02d}/"


def _store_predictions(
    store: ObjectStore, response: PredictResponse, records: list[PseudonymisedRecord], now: dt.datetime
) -> tuple[str | None, str | None]:
    lines = [
        StoredPrediction(
            prediction_id=p.prediction_id,
            request_id=response.request_id,
            record_id=record.record_id,
            source=record.source,
            patient_pseudonym=record.patient_pseudonym,
            pseudonym_key_id=record.pseudonym_key_id,
            model_version=response.model_version,
            predicted=p.diagnoses,
            rare_candidates=p.rare_candidates,
            served_at=now,
            inputs=EndpointRecord.from_pseudonymised(record),
        )
        for record, p in zip(records, response.predictions, strict=True)
    ]
    key = predictions_key(now, response.request_id)
    try:
        store.put_object(key, to_ndjson(lines), NDJSON)
    except Exception as exc:  # the client is served regardless; the handler logs and counts it
        return None, type(exc).__name__
    return key, None


# --- POST /diagnoses -----------------------------------------------------------------------------


def diagnoses_key(day: dt.date, batch_id: str) -> str:
    return f"diagnoses/date={day.isoformat()}/{batch_id}.ndjson"


def record_diagnoses(
    request: DiagnosesRequest, *, store: WriteOnceStore, keys: KeyProvider, now: dt.datetime | None = None
) -> DiagnosesAccepted:
    """Pseudonymise and store the diagnoses once (the batch id is the digest of what is stored)."""
    now = now or dt.datetime.now(dt.UTC)
    key = keys.current_key()
    content: list[dict[str, Any]] = []
    for item in request.diagnoses:
        pseudonym = pseudonymise(key, item.source, item.patient_id) if item.patient_id is not None else None
        content.append(
            {
                "prediction_id": item.prediction_id,
                "record_id": item.record_id,
                "source": item.source,
                "patient_pseudonym": pseudonym,
                "pseudonym_key_id": key.key_id if pseudonym is not None else None,
                "code": item.diagnosis.code,
                "confirmed_at": item.confirmed_at,
            }
        )
    batch_id = batch_id_for("diagnoses", json.dumps(content, sort_keys=True, default=str))
    lines = [StoredDiagnosis(batch_id=batch_id, received_at=now, **line) for line in content]
    written = store.put_object_once(diagnoses_key(now.date(), batch_id), to_ndjson(lines), NDJSON)
    return DiagnosesAccepted(batch_id=batch_id, received=len(lines), stored=len(lines), replayed=not written)
