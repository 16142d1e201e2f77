"""GDPR erasure of one patient, by pseudonym, from the raw zone and the curated datasets.

The erasure state machine (statemachines/erasure.asl.json) runs:
1. begin_erasure: audit record "requested" (audit bucket, Object Lock), the request for the Glue
   job, and the patient's device bindings removed (no more readings attributed to them);
2. erase_raw_objects, over every object of the raw bucket (raw/ and quarantine/; a Distributed Map
   in batches): lines holding the pseudonym are removed, the object is rewritten, and its older
   S3 versions are purged so that nothing of the patient stays recoverable;
3. the Glue erasure job (glue/erasure_job.py): every Parquet dataset of the curated bucket (each
   version's table, the quarantine's failing rows) rewritten without the patient's rows;
4. complete_erasure: each changed version's manifest amended (rows, content hash, an `erasures`
   entry), older S3 versions of the rewritten data purged, the catalog's figures updated, the
   audit record "completed" written, the Glue request removed.

A line is the patient's when it contains the pseudonym (64 hex characters of a keyed HMAC): this
covers every field that carries it (patient_pseudonym, quarantined raw text) without parsing.
The audit log never holds the pseudonym, only its SHA-256.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from dxops.adapters.ports import (
    DatasetCatalog,
    DatasetFiles,
    DeviceBindingStore,
    ErasureAuditLog,
    ErasureRuns,
    KeyProvider,
    RewritableObjects,
)
from dxops.domain.dataset_versions import PUBLISHED_KEY, pointer_to, published_version
from dxops.domain.errors import DomainError
from dxops.domain.pseudonymisation import pseudonymise
from dxops.schemas.datasets import DatasetManifest, ErasureNote
from dxops.schemas.erasure import (
    CompleteErasureRequest,
    CuratedErasure,
    ErasureAccepted,
    ErasureAudit,
    ErasureInput,
    ErasureRequestBody,
    ErasureStatus,
    RawErasureBatch,
    RawErasureResult,
)

ERASURE_REQUESTS_PREFIX = "erasure-requests/"
ERASABLE_SUFFIXES = (".ndjson", ".json")


def pseudonym_digest(pseudonym: str) -> str:
    return hashlib.sha256(pseudonym.encode()).hexdigest()


def request_key(request_id: str) -> str:
    """The Glue erasure job's request (the pseudonym) in the curated bucket; removed at completion."""
    return f"{ERASURE_REQUESTS_PREFIX}{request_id}/request.json"


def result_key(request_id: str) -> str:
    return f"{ERASURE_REQUESTS_PREFIX}{request_id}/result.json"


def raw_result_key(request_id: str, batch: int) -> str:
    return f"{ERASURE_REQUESTS_PREFIX}{request_id}/raw-results/{batch:06d}.json"


class ErasureIncomplete(DomainError):
    """A batch of raw objects has no result: the raw zone was not wholly scanned."""


def raw_batches_key(request_id: str) -> str:
    """The raw objects to scan, in batches: the Distributed Map's item list (ItemReader, JSON)."""
    return f"{ERASURE_REQUESTS_PREFIX}{request_id}/raw-batches.json"


RAW_BATCH_SIZE = 500  # objects per erase_raw_objects invocation (~20 ms each: well within a minute)


@dataclass(frozen=True)
class ErasureBegun:
    device_bindings_removed: int
    raw_objects: int
    raw_batches_key: str


def new_request_id() -> str:
    """er-<32 hex>: also the erasure execution's name."""
    return f"er-{uuid.uuid4().hex}"


def _requested(erasure: ErasureInput) -> ErasureAudit:
    return ErasureAudit(
        request_id=erasure.request_id,
        status="requested",
        pseudonym_sha256=pseudonym_digest(erasure.patient_pseudonym),
        requested_at=erasure.requested_at,
    )


def request_erasure(
    body: ErasureRequestBody,
    *,
    keys: KeyProvider,
    starter: ErasureRuns,
    audit: ErasureAuditLog,
    now: dt.datetime,
    request_id: Callable[[], str] = new_request_id,
) -> ErasureAccepted:
    """The API's part: name the patient by pseudonym, record the request, start the erasure."""
    if body.patient_pseudonym is not None:
        pseudonym = body.patient_pseudonym
    else:
        assert body.source is not None and body.patient_id is not None  # the schema guarantees one way
        pseudonym = pseudonymise(keys.current_key(), body.source, body.patient_id)
    erasure = ErasureInput(request_id=request_id(), patient_pseudonym=pseudonym, requested_at=now)
    # Started first: a request is recorded only once it runs (the erasure records it too, if this
    # write is lost), so that no "requested" record waits for an erasure that never started.
    starter.start(erasure)
    audit.write(_requested(erasure))
    return ErasureAccepted(request_id=erasure.request_id, requested_at=now)


def begin_erasure(
    erasure: ErasureInput,
    *,
    audit: ErasureAuditLog,
    files: DatasetFiles,
    bindings: DeviceBindingStore,
    raw: RewritableObjects,
) -> ErasureBegun:
    """Records the request unless the API did (an erasure started directly on the state machine, by
    pseudonym), hands the pseudonym to the Glue job, lists the raw objects to scan in batches, and
    removes the patient's device bindings."""
    if "requested" not in audit.read(erasure.request_id):
        audit.write(_requested(erasure))
    files.overwrite_json(request_key(erasure.request_id), {"patient_pseudonym": erasure.patient_pseudonym})
    keys = [key for key in raw.list_keys() if key.endswith(ERASABLE_SUFFIXES)]
    batches = [{"keys": keys[i : i + RAW_BATCH_SIZE]} for i in range(0, len(keys), RAW_BATCH_SIZE)]
    files.overwrite_json(raw_batches_key(erasure.request_id), batches)
    removed = bindings.delete_for_patient(erasure.patient_pseudonym)
    return ErasureBegun(
        device_bindings_removed=removed, raw_objects=len(keys), raw_batches_key=raw_batches_key(erasure.request_id)
    )


def erase_lines(body: bytes, pseudonym: str) -> tuple[bytes, int]:
    """The body without the lines that hold the pseudonym, and how many were removed."""
    needle = pseudonym.encode()
    lines = body.splitlines(keepends=True)
    kept = [line for line in lines if needle not in line]
    return b"".join(kept), len(lines) - len(kept)


MAX_WRITE_ATTEMPTS = 5  # conditional rewrites lost to a concurrent writer (another erasure) are retried


class ConcurrentChange(Exception):
    """The object changed between its read and its conditional rewrite."""


def _erase_object(key: str, pseudonym: str, objects: RewritableObjects) -> tuple[int, int] | None:
    """(lines removed from the current version, versions purged); None if no version of the object
    ever held the patient. Every version is read: a rerun after a partial erasure, or an object
    whose current version is a delete marker (expired, removed), still has older versions to purge."""
    needle = pseudonym.encode()
    for _ in range(MAX_WRITE_ATTEMPTS):
        versions = objects.read_versions(key)
        if not any(v.body is not None and needle in v.body for v in versions):
            return None
        current = versions[0] if versions and versions[0].is_latest and versions[0].body is not None else None
        if current is None:  # only older versions and delete markers left: all of them go
            return 0, objects.remove(key)
        assert current.body is not None
        erased, count = erase_lines(current.body, pseudonym)
        if not erased.strip():  # only the patient's lines: the object goes, with every version of it
            return count, objects.remove(key)
        if count:
            try:
                objects.replace(key, erased, if_match=current.etag)
            except ConcurrentChange:
                continue  # another erasure rewrote it meanwhile: start again from what it wrote
        return count, objects.purge_older_versions(key)
    raise ConcurrentChange(f"{key} kept changing during the erasure; the state machine retries the batch")


def erase_raw_objects(keys: Iterable[str], pseudonym: str, objects: RewritableObjects) -> RawErasureResult:
    scanned = rewritten = removed = purged = 0
    for key in keys:
        if not key.endswith(ERASABLE_SUFFIXES):
            continue
        scanned += 1
        outcome = _erase_object(key, pseudonym, objects)
        if outcome is None:
            continue
        rewritten += 1
        removed += outcome[0]
        purged += outcome[1]
    return RawErasureResult(
        objects_scanned=scanned, objects_rewritten=rewritten, lines_removed=removed, versions_purged=purged
    )


def erase_raw_batch(batch: RawErasureBatch, *, objects: RewritableObjects, files: DatasetFiles) -> RawErasureResult:
    """One Distributed Map item: erase, then record the batch's result (a rerun overwrites it)."""
    result = erase_raw_objects(batch.keys, batch.erasure.patient_pseudonym, objects)
    files.overwrite_json(raw_result_key(batch.erasure.request_id, batch.batch), result.model_dump())
    return result


def _raw_results(files: DatasetFiles, request_id: str) -> RawErasureResult:
    batches = files.read_json(raw_batches_key(request_id)) or []
    results = [files.read_json(raw_result_key(request_id, index)) for index in range(len(batches))]
    missing = [index for index, result in enumerate(results) if result is None]
    if missing:
        raise ErasureIncomplete(f"{len(missing)} of {len(batches)} raw-object batches have no result")
    totals = [RawErasureResult.model_validate(r) for r in results]
    return RawErasureResult(
        objects_scanned=sum(r.objects_scanned for r in totals),
        objects_rewritten=sum(r.objects_rewritten for r in totals),
        lines_removed=sum(r.lines_removed for r in totals),
        versions_purged=sum(r.versions_purged for r in totals),
    )


def _amend_manifest(
    files: DatasetFiles, change: CuratedErasure, request_id: str, now: dt.datetime
) -> DatasetManifest | None:
    key = f"datasets/{change.dataset_version}/manifest.json"
    document = files.read_json(key)
    if document is None:  # an unpublished run's table: nothing to amend
        return None
    manifest = DatasetManifest.model_validate(document)
    rows = {**manifest.rows, "curated": change.rows_after}
    note = ErasureNote(request_id=request_id, erased_at=now, rows_removed=change.rows_removed)
    amended = manifest.model_copy(
        update={
            "rows": rows,
            "content_hash": change.content_hash or manifest.content_hash,
            "erasures": [*manifest.erasures, note],
        }
    )
    files.overwrite_json(key, amended.model_dump(mode="json"))
    return amended


def complete_erasure(
    request: CompleteErasureRequest,
    *,
    now: dt.datetime,
    audit: ErasureAuditLog,
    files: DatasetFiles,
    catalog: DatasetCatalog,
) -> ErasureAudit:
    erasure = request.erasure
    raw = _raw_results(files, erasure.request_id)
    changes = [CuratedErasure.model_validate(c) for c in files.read_json(result_key(erasure.request_id)) or []]
    amended: list[str] = []
    for change in changes:
        files.purge_noncurrent(_key_of(change.path, files.bucket))
        if change.kind == "table":
            manifest = _amend_manifest(files, change, erasure.request_id, now)
            if manifest is not None:
                amended.append(manifest.dataset_version)
                published = published_version(files)
                if published is not None and published.dataset_version == manifest.dataset_version:
                    files.overwrite_json(
                        PUBLISHED_KEY, pointer_to(manifest, published.manifest_uri).model_dump(mode="json")
                    )
                catalog.amend(manifest)
    files.delete_prefix(f"{ERASURE_REQUESTS_PREFIX}{erasure.request_id}/")
    record = ErasureAudit(
        request_id=erasure.request_id,
        status="completed",
        pseudonym_sha256=pseudonym_digest(erasure.patient_pseudonym),
        requested_at=erasure.requested_at,
        completed_at=now,
        raw=raw,
        curated=changes,
        versions_amended=amended,
        device_bindings_removed=request.device_bindings_removed,
    )
    audit.write(record)
    return record


def _key_of(uri: str, bucket: str) -> str:
    prefix = f"s3://{bucket}/"
    if not uri.startswith(prefix):
        raise ValueError(f"{uri} is not in the curated bucket")
    return uri[len(prefix) :].rstrip("/") + "/"


FAILED_RUN_STATUSES = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})


def erasure_status(request_id: str, audit: ErasureAuditLog, runs: ErasureRuns) -> ErasureStatus | None:
    records = audit.read(request_id)
    if not records:
        return None
    completed = records.get("completed")
    first: Any = records.get("requested") or completed
    if completed is None:
        # A failed erasure alerted (SNS) and can be requested again; its request stays recorded.
        state = "failed" if runs.status(request_id) in FAILED_RUN_STATUSES else "in-progress"
        return ErasureStatus(request_id=request_id, status=state, requested_at=first.requested_at)
    return ErasureStatus(
        request_id=request_id,
        status="completed",
        requested_at=completed.requested_at,
        completed_at=completed.completed_at,
        raw_lines_removed=completed.raw.lines_removed if completed.raw else 0,
        curated_rows_removed=sum(c.rows_removed for c in completed.curated if c.kind == "table"),
        versions_amended=completed.versions_amended,
    )
