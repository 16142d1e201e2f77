"""GDPR erasure (right to be forgotten): the API's request and response, the erasure state
machine's documents, and the audit record. No document here holds a patient identifier; the
pseudonym travels only inside the state machine and is never written to the audit log (its
SHA-256 digest is, so that "was this subject erased?" can be answered)."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dxops.schemas.common import PatientIdentifier, Pseudonym, SiteId, StrictModel

# er-<32 hex>, also the name of the erasure's execution (domain.erasure.new_request_id).
REQUEST_ID_PATTERN = r"^er-[0-9a-f]{32}$"
RequestId = str


class ErasureRequestBody(StrictModel):
    """Body of POST /erasure-requests: the patient, by site identifier (pseudonymised here with the
    key in force) or by pseudonym (as it appears in the data)."""

    refuses_direct_identifiers: ClassVar[bool] = True
    source: SiteId | None = None
    patient_id: PatientIdentifier | None = None
    patient_pseudonym: Pseudonym | None = None

    @model_validator(mode="after")
    def _one_way_to_name_the_patient(self) -> ErasureRequestBody:
        by_identifier = self.source is not None and self.patient_id is not None
        by_pseudonym = self.patient_pseudonym is not None
        if by_identifier == by_pseudonym or (not by_identifier and (self.source or self.patient_id)):
            raise ValueError("give either source and patient_id, or patient_pseudonym")
        return self


class ErasureAccepted(BaseModel):
    """202 response: the erasure runs asynchronously; GET /erasure-requests/{request_id} tells its state."""

    request_id: RequestId
    status: Literal["accepted"] = "accepted"
    requested_at: dt.datetime


class ErasureDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErasureInput(ErasureDocument):
    """The erasure state machine's input (the execution is named after request_id)."""

    request_id: RequestId
    patient_pseudonym: Pseudonym
    requested_at: dt.datetime


class RawErasureResult(ErasureDocument):
    objects_scanned: int = Field(default=0, ge=0)
    objects_rewritten: int = Field(default=0, ge=0)
    lines_removed: int = Field(default=0, ge=0)
    versions_purged: int = Field(default=0, ge=0)


class CuratedErasure(ErasureDocument):
    """One Parquet dataset the Glue erasure job rewrote (a version's table or a quarantine folder)."""

    path: str  # s3://<curated>/datasets/<version>/table/ ...
    dataset_version: str
    kind: Literal["table", "quarantine"]
    rows_removed: int = Field(ge=0)
    rows_after: int = Field(ge=0)
    content_hash: str | None = None  # tables only: the new content hash


class ErasureAudit(ErasureDocument):
    """audit/erasure/<request_id>/{requested,completed}.json in the audit bucket (Object Lock)."""

    request_id: RequestId
    status: Literal["requested", "completed"]
    pseudonym_sha256: str
    requested_at: dt.datetime
    completed_at: dt.datetime | None = None
    raw: RawErasureResult | None = None
    curated: list[CuratedErasure] = Field(default_factory=list)
    versions_amended: list[str] = Field(default_factory=list)
    device_bindings_removed: int = Field(default=0, ge=0)


class ErasureStatus(BaseModel):
    """GET /erasure-requests/{request_id}."""

    request_id: RequestId
    status: Literal["in-progress", "completed", "failed"]
    requested_at: dt.datetime
    completed_at: dt.datetime | None = None
    raw_lines_removed: int | None = None
    curated_rows_removed: int | None = None
    versions_amended: list[str] = Field(default_factory=list)


# --- What the state machine passes to each step's function ---------------------------------------


class RawErasureBatch(ErasureDocument):
    """A Distributed Map item: a batch of raw-bucket keys (listed by BeginErasure), its index, and the
    request. Its result goes to S3, not into the state (whose 256 KiB would cap the batches)."""

    batch: int = Field(ge=0)
    keys: list[str]
    erasure: ErasureInput


class CompleteErasureRequest(ErasureDocument):
    erasure: ErasureInput
    device_bindings_removed: int = Field(ge=0)
