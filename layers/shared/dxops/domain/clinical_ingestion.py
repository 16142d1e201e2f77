"""Ingestion of clinical records: parse, map, validate per item, pseudonymise, store.

Records come as dxops ClinicalRecords (POST /records), as GA4GH Phenopackets or as FHIR R4 Bundles
(dxops.interop maps both to ClinicalRecords, POST /phenopackets and POST /fhir/bundles, or files
dropped in the raw bucket's inbox/). Whatever the format, the records take the same path: the same
validation, pseudonymisation, raw zone (raw/clinical/) and quarantine.

Valid records of a batch are stored even when others are not; every rejected record goes to the
quarantine with its field errors, and a document that can't be mapped at all is one rejected item.
accepted + rejected always equals received: the records found in the documents, plus the documents
rejected whole. What a mapping left out is reported per record (mapping_notes), never dropped silently.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from dxops import SCHEMA_VERSION
from dxops.adapters.ports import KeyProvider, ObjectStore
from dxops.domain.errors import MalformedPayload, PayloadTooLarge
from dxops.domain.json_bodies import parse_json_document
from dxops.domain.pseudonymisation import pseudonymise
from dxops.domain.quarantine import FieldError, RejectedItem, reject, safe_item_id, write_quarantine
from dxops.domain.raw_zone import batch_id_for, write_accepted
from dxops.interop import DocumentRejected, MappedRecord, MappingNote
from dxops.schemas.clinical import ClinicalRecord, PseudonymisedRecord

DocumentFormat = Literal["clinical-record", "phenopacket", "fhir-bundle"]

_record_adapter: TypeAdapter[ClinicalRecord] = TypeAdapter(ClinicalRecord)
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{8,128}$")


class IngestRequest(BaseModel):
    """A parsed POST /records body. idempotency_key selects the Powertools idempotency record."""

    idempotency_key: str
    payload_sha256: str
    items: list[Any]
    document_format: DocumentFormat = "clinical-record"
    # The site the documents come from (Phenopackets and FHIR Bundles don't say; ClinicalRecords do).
    source: str | None = None
    # Items that could not even be read (a line of a bulk NDJSON file that is not JSON): index -> reason.
    unreadable: dict[int, str] = Field(default_factory=dict)

    @property
    def key_kind(self) -> str:
        """client, record or body: where the idempotency key came from (safe to log)."""
        return self.idempotency_key.partition("|")[2].partition(":")[0]


class MappingReport(BaseModel):
    """What the mapping of one record's document left out (paths in the document, and why)."""

    index: int = Field(description="the record's index among the items of the result")
    item_id: str | None = None
    notes: list[MappingNote]


class IngestResult(BaseModel):
    batch_id: str
    received: int = Field(description="records found in the documents, plus documents rejected whole")
    accepted: int
    rejected: int
    stored_record_ids: list[str] = Field(description="record_id of every stored record")
    errors: list[RejectedItem] = Field(description="one entry per rejected item, by index in the request")
    raw_objects: list[str]
    quarantine_object: str | None
    documents: int | None = Field(default=None, description="Phenopackets or FHIR Bundles received")
    mapping_notes: list[MappingReport] = Field(
        default_factory=list, description="parts of the documents that were not mapped, and why"
    )


@dataclass(frozen=True)
class IngestLimits:
    max_items: int
    max_body_bytes: int


def parse_ingest_body(
    body: bytes,
    idempotency_key: str | None,
    limits: IngestLimits,
    caller: str = "anonymous",
    *,
    document_format: DocumentFormat = "clinical-record",
    source: str | None = None,
) -> IngestRequest:
    """Turn an HTTP body into a request, or raise PayloadTooLarge / MalformedPayload.

    Idempotency keys are scoped to the caller, so two clients can never collide on a key, and to
    the format. The site is part of the payload: without an Idempotency-Key the same body sent for
    another site is another request; with one, the key names one request (another site: 422).
    """
    if len(body) > limits.max_body_bytes:
        raise PayloadTooLarge(f"body of {len(body)} bytes exceeds the limit of {limits.max_body_bytes} bytes")
    document = parse_json_document(body)
    items = documents_in(document, document_format)
    if len(items) > limits.max_items:
        raise PayloadTooLarge(
            f"batch of {len(items)} {_NOUNS[document_format]} exceeds the limit of {limits.max_items}"
        )
    if idempotency_key is not None and not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
        raise MalformedPayload("Idempotency-Key must be 8 to 128 printable ASCII characters")
    # The same content serialised differently (spacing, key order) is the same request.
    canonical = json.dumps(
        [document_format, source, document] if document_format != "clinical-record" else document,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    payload_sha256 = hashlib.sha256(canonical.encode()).hexdigest()
    key = _idempotency_key(idempotency_key, items, payload_sha256, document_format)
    return IngestRequest(
        idempotency_key=f"{caller}|{key}",
        payload_sha256=payload_sha256,
        items=items,
        document_format=document_format,
        source=source,
    )


_NOUNS: dict[DocumentFormat, str] = {
    "clinical-record": "records",
    "phenopacket": "phenopackets",
    "fhir-bundle": "FHIR Bundles",
}
_SINGULAR: dict[DocumentFormat, str] = {
    "clinical-record": "a record object",
    "phenopacket": "a Phenopacket or Cohort object",
    "fhir-bundle": "a Bundle object",
}


def documents_in(document: Any, document_format: DocumentFormat, what: str = "body") -> list[Any]:
    """The items of a body (or of `what`: a line of a file): one object or a non-empty array of them (a
    Phenopacket body may also be a GA4GH Cohort or Family, whose members are the phenopackets).
    Raises MalformedPayload."""
    if document_format == "phenopacket":
        from dxops.interop.phenopackets import phenopackets_in  # noqa: PLC0415 (see _candidates)

        items = phenopackets_in(document) if isinstance(document, (dict, list)) else []
    elif isinstance(document, dict):
        items = [document]
    else:
        items = document if isinstance(document, list) else []
    if not items:
        raise MalformedPayload(
            f"{what} must be {_SINGULAR[document_format]} or a non-empty array of {_NOUNS[document_format]}"
        )
    return items


def _idempotency_key(header: str | None, items: list[Any], payload_sha256: str, document_format: DocumentFormat) -> str:
    """The client's Idempotency-Key; else, for one record, its site and record id (a record id
    names one record for good, so resending it with other content is refused); else the body."""
    if header:
        return f"client:{header}" if document_format == "clinical-record" else f"client:{document_format}:{header}"
    if document_format == "clinical-record" and len(items) == 1 and isinstance(items[0], dict):
        source, record_id = items[0].get("source"), items[0].get("record_id")
        if isinstance(source, str) and isinstance(record_id, str) and source and record_id:
            return f"record:{source}:{record_id}"
    return f"body:{payload_sha256}"


def ingest_clinical_records(
    request: IngestRequest, *, store: ObjectStore, keys: KeyProvider, now: dt.datetime | None = None
) -> IngestResult:
    now = now or dt.datetime.now(dt.UTC)
    key = keys.current_key()
    batch_id = batch_id_for("clinical", request.idempotency_key)  # the format is in the key
    accepted: list[PseudonymisedRecord] = []
    rejected: list[tuple[RejectedItem, Any]] = []
    reports: list[MappingReport] = []
    for index, candidate in enumerate(_candidates(request)):
        item = candidate.item
        item_id = candidate.item_id if candidate.item_id is not None else _record_id(item)
        if candidate.notes:
            reports.append(MappingReport(index=index, item_id=safe_item_id(item_id), notes=candidate.notes))
        if candidate.refused is not None:
            # Nothing of a document that can't be mapped is kept, not even fields named as a
            # ClinicalRecord's (a record sent to the wrong route would keep its text): its reasons only.
            rejected.append((RejectedItem(index=index, item_id=safe_item_id(item_id), errors=candidate.refused), {}))
            continue
        try:
            record = _record_adapter.validate_python(item)
        except ValidationError as exc:
            rejected.append((reject(index, item_id, exc, item), item))
            continue
        pseudonym = pseudonymise(key, record.source, record.patient_id)
        accepted.append(
            PseudonymisedRecord.from_record(
                record, pseudonym=pseudonym, key_id=key.key_id, ingested_at=now, schema_version=SCHEMA_VERSION
            )
        )
    raw_objects = write_accepted(store, "clinical", accepted, day=now.date(), batch_id=batch_id)
    quarantine_object = write_quarantine(
        store, "clinical", ClinicalRecord, rejected, key=key, day=now.date(), batch_id=batch_id, received_at=now
    )
    result = IngestResult(
        batch_id=batch_id,
        received=len(accepted) + len(rejected),
        accepted=len(accepted),
        rejected=len(rejected),
        stored_record_ids=[r.record_id for r in accepted],
        errors=[reason for reason, _ in rejected],
        raw_objects=raw_objects,
        quarantine_object=quarantine_object,
        documents=None if request.document_format == "clinical-record" else len(request.items),
        mapping_notes=reports,
    )
    if not accepted:
        # Raised, not returned: the idempotency layer keeps no record of a request that stored
        # nothing, so the client can fix its records and send them again under the same key.
        raise NothingAccepted(result)
    return result


@dataclass
class _Candidate:
    """One item to validate as a ClinicalRecord, or a document refused before that."""

    item: Any
    item_id: str | None = None
    notes: list[MappingNote] = field(default_factory=list)
    refused: list[FieldError] | None = None


def _record_id(item: Any) -> Any:
    return item.get("record_id") if isinstance(item, dict) else None


def _candidates(request: IngestRequest) -> Iterator[_Candidate]:
    if request.document_format == "clinical-record":
        yield from (_Candidate(item) for item in request.items)
        return
    # Imported here: the FHIR models and the protobuf schema cost a cold start (~0.5 s) that
    # POST /records, the device bindings and erasure requests of the same function need not pay.
    from dxops.interop.fhir import map_bundle  # noqa: PLC0415
    from dxops.interop.phenopackets import map_phenopacket  # noqa: PLC0415

    source = request.source or ""
    for position, document in enumerate(request.items):
        if position in request.unreadable:
            reason = FieldError(path="(root)", message=request.unreadable[position], type="json_invalid")
            yield _Candidate(None, refused=[reason])
            continue
        try:
            mapped: list[MappedRecord] = (
                [map_phenopacket(document, source=source)]
                if request.document_format == "phenopacket"
                else map_bundle(document, source=source)
            )
        except DocumentRejected as refused:
            document_id = document.get("id") if isinstance(document, dict) else None
            yield _Candidate(document, item_id=safe_item_id(document_id), refused=refused.errors)
            continue
        for record in mapped:
            yield _Candidate(record.record, item_id=_record_id(record.record), notes=record.notes)


class NothingAccepted(Exception):
    """No record of the request was valid; every one is quarantined (result says why)."""

    def __init__(self, result: IngestResult) -> None:
        super().__init__(f"none of {result.received} records was valid")
        self.result = result
