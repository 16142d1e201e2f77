"""Bulk drops: files of Phenopackets or FHIR Bundles put in the raw bucket's inbox/.

    inbox/phenopackets/<site>/<name>.json    one Phenopacket, a JSON array of them, or a GA4GH Cohort
    inbox/phenopackets/<site>/<name>.ndjson  one Phenopacket per line (.jsonl too)
    inbox/fhir/<site>/<name>.json            one Bundle or a JSON array of Bundles
    inbox/fhir/<site>/<name>.ndjson          one Bundle per line (not FHIR Bulk Data's one resource per line)

Each file is ingested as the API ingests a request (the same mapping, validation, pseudonymisation,
raw zone and quarantine), in chunks of the API's batch limit, each chunk idempotent on the file's
site, format, content and position: a redelivered event, or the same file uploaded again, stores
nothing twice. A line that is not JSON is one
rejected item; a file that can't be read at all (unknown folder, too large, not JSON) is quarantined
whole with its reason. A report per file (counts, per-chunk results, mapping notes; no clinical
values, not the file's name: a name may be a patient's) goes to reports/inbox/, and the file is then
deleted: the inbox holds patient identifiers in clear, so nothing stays there once it is
pseudonymised.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from dxops.adapters.ports import InboxFiles, KeyProvider, ObjectStore
from dxops.domain.clinical_ingestion import (
    DocumentFormat,
    IngestLimits,
    IngestRequest,
    IngestResult,
    NothingAccepted,
    documents_in,
)
from dxops.domain.errors import MalformedPayload, PayloadTooLarge
from dxops.domain.json_bodies import parse_json_document
from dxops.domain.quarantine import FieldError, RejectedItem, write_quarantine
from dxops.domain.raw_zone import batch_id_for
from dxops.schemas.clinical import ClinicalRecord

INBOX_PREFIX = "inbox/"
INBOX_FOLDERS: dict[str, DocumentFormat] = {"phenopackets": "phenopacket", "fhir": "fhir-bundle"}
_INBOX_KEY = re.compile(r"^inbox/(?P<folder>[a-z]+)/(?P<source>[a-z0-9][a-z0-9\-]{0,63})/[^/]+$")
_LINE_SUFFIXES = (".ndjson", ".jsonl")


@dataclass(frozen=True)
class InboxObject:
    key: str
    version: str  # the S3 version id (the inbox bucket is versioned), else the ETag
    size: int
    version_id: str | None = None  # the S3 version id to read and delete (None: unversioned)


class InboxReport(BaseModel):
    """What became of one inbox file. Safe to keep: paths, codes and counts; not the file's name."""

    report_id: str = Field(description="digest of key and version: names the file in logs (its name may be PHI)")
    content_sha256: str | None = Field(default=None, description="of the file's bytes, when it was read")
    document_format: DocumentFormat | None
    source: str | None
    documents: int
    received: int
    accepted: int
    rejected: int
    refused: str | None = Field(default=None, description="why the whole file was quarantined, if it was")
    quarantine_object: str | None = None
    chunks: list[IngestResult] = Field(default_factory=list)


@dataclass(frozen=True)
class InboxTarget:
    document_format: DocumentFormat
    source: str


def inbox_target(key: str) -> InboxTarget:
    """The format and site of an inbox key, or MalformedPayload."""
    match = _INBOX_KEY.fullmatch(key)
    if match is None or match["folder"] not in INBOX_FOLDERS:
        folders = ", ".join(f"inbox/{name}/<site>/" for name in INBOX_FOLDERS)
        raise MalformedPayload(f"inbox files go in {folders} (site: a-z 0-9 -)")
    return InboxTarget(INBOX_FOLDERS[match["folder"]], match["source"])


def report_id(obj: InboxObject) -> str:
    return hashlib.sha256(f"{obj.key}\x1f{obj.version}".encode()).hexdigest()[:32]


def ingest_inbox_file(
    obj: InboxObject,
    *,
    inbox: InboxFiles,
    ingest: Callable[[IngestRequest], IngestResult],
    store: ObjectStore,
    keys: KeyProvider,
    limits: IngestLimits,
    max_object_bytes: int,
    now: dt.datetime,
) -> InboxReport:
    """Ingest one inbox file, write its report, then delete it (only then: a failure leaves it for
    the retry). The inbox raises InboxFileGone for a file deleted already (a redelivered event)."""
    report = ingest_inbox_object(
        obj,
        lambda: inbox.read(obj.key, obj.version_id),
        ingest=ingest,
        store=store,
        keys=keys,
        limits=limits,
        max_object_bytes=max_object_bytes,
        now=now,
    )
    store.put_object(report_key(obj, now), report.model_dump_json().encode(), "application/json")
    inbox.delete(obj.key, obj.version_id)
    return report


def ingest_inbox_object(
    obj: InboxObject,
    read: Callable[[], bytes],
    *,
    ingest: Callable[[IngestRequest], IngestResult],
    store: ObjectStore,
    keys: KeyProvider,
    limits: IngestLimits,
    max_object_bytes: int,
    now: dt.datetime,
) -> InboxReport:
    """Ingest one inbox file (read lazily: a file refused by its key or size is not read)."""
    digest = report_id(obj)
    try:
        target = inbox_target(obj.key)
        if obj.size > max_object_bytes:
            raise PayloadTooLarge(f"file of {obj.size} bytes exceeds {max_object_bytes} bytes: split it")
        body = read()
        documents, unreadable = _read_documents(body, obj.key, target.document_format)
    except (MalformedPayload, PayloadTooLarge) as refused:
        quarantine = _quarantine_file(obj, str(refused), store=store, keys=keys, now=now)
        return InboxReport(
            report_id=digest,
            document_format=None,
            source=None,
            documents=0,
            received=1,
            accepted=0,
            rejected=1,
            refused=str(refused),
            quarantine_object=quarantine,
        )
    content = hashlib.sha256(body).hexdigest()
    chunks = []
    for start in range(0, len(documents), limits.max_items):
        chunk = documents[start : start + limits.max_items]
        request = IngestRequest(
            # One file's content is one request per chunk, whoever sends its event again or uploads it anew.
            idempotency_key=f"inbox|file:{target.document_format}:{target.source}:{content}:{start}:{len(chunk)}",
            payload_sha256=content,
            items=chunk,
            document_format=target.document_format,
            source=target.source,
            unreadable={i - start: unreadable[i] for i in unreadable if start <= i < start + len(chunk)},
        )
        try:
            chunks.append(ingest(request))
        except NothingAccepted as nothing:
            chunks.append(nothing.result)
    return InboxReport(
        report_id=digest,
        document_format=target.document_format,
        source=target.source,
        documents=len(documents),
        received=sum(c.received for c in chunks),
        accepted=sum(c.accepted for c in chunks),
        rejected=sum(c.rejected for c in chunks),
        content_sha256=content,
        chunks=chunks,
    )


def _read_documents(body: bytes, key: str, document_format: DocumentFormat) -> tuple[list[Any], dict[int, str]]:
    """The documents of a file, and the positions of lines that are not documents (with why)."""
    if not key.endswith(_LINE_SUFFIXES):
        return documents_in(parse_json_document(body, "the file"), document_format, "the file"), {}
    documents: list[Any] = []
    unreadable: dict[int, str] = {}
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedPayload("the file is not UTF-8 text") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        what = f"line {number}"
        try:
            documents.extend(documents_in(parse_json_document(line, what, one_line=True), document_format, what))
        except MalformedPayload as refused:
            unreadable[len(documents)] = str(refused)
            documents.append(None)
    if not documents:
        raise MalformedPayload("the file holds no documents")
    return documents, unreadable


def _quarantine_file(
    obj: InboxObject, reason: str, *, store: ObjectStore, keys: KeyProvider, now: dt.datetime
) -> str | None:
    # Nothing of the file's content is kept (it is unread or unreadable): its key and the reason.
    rejected = RejectedItem(index=0, item_id=None, errors=[FieldError(path="(root)", message=reason, type="file")])
    return write_quarantine(
        store,
        "clinical",
        ClinicalRecord,
        [(rejected, {})],
        key=keys.current_key(),
        day=now.date(),
        batch_id=batch_id_for("clinical", "inbox", report_id(obj)),
        received_at=now,
    )


def report_key(obj: InboxObject, now: dt.datetime) -> str:
    return f"reports/inbox/{now.date().isoformat()}/{report_id(obj)}.json"
