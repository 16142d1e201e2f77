"""The data-processing pipeline's documents: what its steps pass each other, the dataset manifest,
and the DatasetReady event. One model per document; the state machine carries their JSON."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

VersionId = Annotated[str, Field(pattern=r"^v\d{8}T\d{6}Z-[0-9a-f]{8}$")]
ContentHash = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]
MANIFEST_SCHEMA_VERSION: Literal["1.0"] = "1.0"
DATASET_EVENT_SOURCE = "dxops.datasets"
DATASET_READY = "DatasetReady"


class PipelineDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProcessingTrigger(PipelineDocument):
    """The data-processing state machine's input."""

    trigger: Literal["raw-objects", "schedule", "manual"] = "manual"
    window_start: dt.datetime | None = None  # raw-objects: the trigger window the run collects
    window_end: dt.datetime | None = None
    start_after: dt.datetime | None = None  # the Glue job starts after this (window closed + settle)


class PreviousVersion(PipelineDocument):
    dataset_version: VersionId
    content_hash: ContentHash
    row_count: int = Field(ge=0)
    manifest_uri: str


class DatasetRun(PipelineDocument):
    """One run of the state machine: where the Glue job reads and writes, and what came before."""

    dataset_version: VersionId
    execution: str  # the state machine execution's name
    started_at: dt.datetime
    trigger: ProcessingTrigger
    raw_uri: str
    version_uri: str  # s3://<curated>/datasets/<version>/
    quarantine_uri: str  # s3://<curated>/quarantine/<version>/
    previous: PreviousVersion | None = None
    glue_arguments: dict[str, str]


class RuleResult(PipelineDocument):
    id: str
    level: Literal["error", "warning"]
    status: Literal["pass", "fail", "skipped"]


class QualityVerdict(PipelineDocument):
    """What the data-quality gate decided, with the figures published as metrics."""

    dataset_version: VersionId
    status: Literal["pass", "fail"]
    unchanged: bool  # same content as the previous version: nothing new to publish
    content_hash: ContentHash
    failed_rules: list[str]
    rules: list[RuleResult]
    rows: dict[str, int]
    class_counts: dict[str, int]
    source_objects: int = Field(ge=0)


class ErasureNote(PipelineDocument):
    """A GDPR erasure that removed rows from a published version (its only permitted change)."""

    request_id: str
    erased_at: dt.datetime
    rows_removed: int = Field(ge=0)


class DatasetManifest(PipelineDocument):
    """datasets/<version>/manifest.json: written once (conditional write), the version's identity card.

    A version without a manifest is not a dataset (a run in progress, or one withdrawn). Only a GDPR
    erasure changes a published version: it rewrites the data and amends this manifest."""

    manifest_schema_version: Literal["1.0"] = MANIFEST_SCHEMA_VERSION
    dataset_version: VersionId
    created_at: dt.datetime
    content_hash: ContentHash
    schema_version: str  # the curated table's (glue/dxops_etl/curated_schema.py)
    table_uri: str
    table_format: Literal["parquet"] = "parquet"
    partition_keys: list[str]
    partitions: list[str]
    rows: dict[str, int]
    class_counts: dict[str, int]
    label_status_counts: dict[str, int]
    columns: dict[str, list[str]]
    sources_uri: str  # sources.json: every raw object read, with its line count (lineage)
    source_objects: int = Field(ge=0)
    dq_status: Literal["pass"]
    dq_ruleset: str
    dq_report_uri: str
    run_summary_uri: str
    previous_version: VersionId | None
    pipeline: dict[str, str]  # execution name, Glue job run id, trigger
    erasures: list[ErasureNote] = Field(default_factory=list)  # rows and content_hash are after them


class DatasetReadyDetail(PipelineDocument):
    """Detail of the DatasetReady event (source dxops.datasets) on the default event bus."""

    dataset_version: VersionId
    manifest_uri: str
    table_uri: str
    content_hash: ContentHash
    rows: int = Field(ge=0)
    labelled_rows: int = Field(ge=0)
    classes: int = Field(ge=0)
    previous_version: VersionId | None


class Withdrawal(PipelineDocument):
    """A run that publishes nothing: its reports kept (quality failure) and its table removed."""

    dataset_version: VersionId
    reason: Literal["quality-failed", "unchanged"]
    kept: list[str]  # URIs of what stays, in the quarantine
    objects_removed: int = Field(ge=0)
    failed_rules: list[str]


# --- What the state machine passes to each step's function ---------------------------------------


class PrepareRunRequest(PipelineDocument):
    trigger: ProcessingTrigger
    execution_name: str
    execution_started_at: dt.datetime


class EvaluateRunRequest(PipelineDocument):
    run: DatasetRun


class PublishVersionRequest(PipelineDocument):
    run: DatasetRun
    quality: QualityVerdict
    glue_job_run_id: str


class WithdrawRunRequest(PipelineDocument):
    run: DatasetRun
    quality: QualityVerdict
