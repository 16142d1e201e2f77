"""Ingestion of clinical records from the REST API: parse, validate per item, pseudonymise, store.

Valid records of a batch are stored even when others are not; every rejected record goes to the
quarantine with its field errors. accepted + rejected always equals the number of items sent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from dxops import SCHEMA_VERSION
from dxops.adapters.ports import KeyProvider, ObjectStore
from dxops.domain.errors import MalformedPayload, PayloadTooLarge
from dxops.domain.pseudonymisation import pseudonymise
from dxops.domain.quarantine import RejectedItem, reject, write_quarantine
from dxops.domain.raw_zone import batch_id_for, write_accepted
from dxops.schemas.clinical import ClinicalRecord, PseudonymisedRecord

_record_adapter: TypeAdapter[ClinicalRecord] = TypeAdapter(ClinicalRecord)
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{8,128}$")


class IngestRequest(BaseModel):
    """A parsed POST /records body. idempotency_key selects the Powertools idempotency record."""

    idempotency_key: str
    payload_sha256: str
    items: list[Any]

    @property
    def key_kind(self) -> str:
        """client, record or body: where the idempotency key came from (safe to log)."""
        return self.idempotency_key.partition("|")[2].partition(":")[0]


class IngestResult(BaseModel):
    batch_id: str
    received: int
    accepted: int
    rejected: int
    stored_record_ids: list[str] = Field(description="record_id of every stored record")
    errors: list[RejectedItem] = Field(description="one entry per rejected item, by index in the request")
    raw_objects: list[str]
    quarantine_object: str | None


@dataclass(frozen=True)
class IngestLimits:
    max_items: int
    max_body_bytes: int


def parse_ingest_body(
    body: bytes, idempotency_key: str | None, limits: IngestLimits, caller: str = "anonymous"
) -> IngestRequest:
    """Turn an HTTP body into a request, or raise PayloadTooLarge / MalformedPayload.

    Idempotency keys are scoped to the caller, so two clients can never collide on a key.
    """
    if len(body) > limits.max_body_bytes:
        raise PayloadTooLarge(f"body of {len(body)} bytes exceeds the limit of {limits.max_body_bytes} bytes")
    try:
        document = json.loads(body)
    except json.JSONDecodeError as exc:
        raise MalformedPayload(f"body is not valid JSON at line {exc.lineno} column {exc.colno}") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        # not UTF-8, an integer beyond Python's digit limit, nesting too deep to parse
        raise MalformedPayload("body is not valid JSON (encoding, number size or nesting depth)") from None
    if _depth_exceeds(document, MAX_JSON_DEPTH):
        raise MalformedPayload(f"body nests deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(document, dict):
        items = [document]
    elif isinstance(document, list) and document:
        items = document
    else:
        raise MalformedPayload("body must be a record object or a non-empty array of records")
    if len(items) > limits.max_items:
        raise PayloadTooLarge(f"batch of {len(items)} records exceeds the limit of {limits.max_items} records")
    if idempotency_key is not None and not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
        raise MalformedPayload("Idempotency-Key must be 8 to 128 printable ASCII characters")
    # The same content serialised differently (spacing, key order) is the same request.
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    payload_sha256 = hashlib.sha256(canonical.encode()).hexdigest()
    return IngestRequest(
        idempotency_key=f"{caller}|{_idempotency_key(idempotency_key, items, payload_sha256)}",
        payload_sha256=payload_sha256,
        items=items,
    )


MAX_JSON_DEPTH = 32  # a record nests 4 levels; deeper input only costs memory and recursion


def _depth_exceeds(document: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > limit:
                return True
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
    return False


def _idempotency_key(header: str | None, items: list[Any], payload_sha256: str) -> str:
    """The client's Idempotency-Key; else, for one record, its site and record id (a record id
    names one record for good, so resending it with other content is refused); else the body."""
    if header:
        return f"client:{header}"
    if len(items) == 1 and isinstance(items[0], dict):
        source, record_id = items[0].get("source"), items[0].get("record_id")
        if isinstance(source, str) and isinstance(record_id, str) and source and record_id:
            return f"record:{source}:{record_id}"
    return f"body:{payload_sha256}"


def ingest_clinical_records(
    request: IngestRequest, *, store: ObjectStore, keys: KeyProvider, now: dt.datetime | None = None
) -> IngestResult:
    now = now or dt.datetime.now(dt.UTC)
    key = keys.current_key()
    batch_id = batch_id_for("clinical", request.idempotency_key)
    accepted: list[PseudonymisedRecord] = []
    rejected: list[tuple[RejectedItem, Any]] = []
    for index, item in enumerate(request.items):
        try:
            record = _record_adapter.validate_python(item)
        except ValidationError as exc:
            rejected.append((reject(index, item.get("record_id") if isinstance(item, dict) else None, exc, item), item))
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
        received=len(request.items),
        accepted=len(accepted),
        rejected=len(rejected),
        stored_record_ids=[r.record_id for r in accepted],
        errors=[reason for reason, _ in rejected],
        raw_objects=raw_objects,
        quarantine_object=quarantine_object,
    )
    if not accepted:
        # Raised, not returned: the idempotency layer keeps no record of a request that stored
        # nothing, so the client can fix its records and send them again under the same key.
        raise NothingAccepted(result)
    return result


class NothingAccepted(Exception):
    """No record of the request was valid; every one is quarantined (result says why)."""

    def __init__(self, result: IngestResult) -> None:
        super().__init__(f"none of {result.received} records was valid")
        self.result = result
