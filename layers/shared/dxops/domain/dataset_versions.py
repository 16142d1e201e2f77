"""Dataset versions: the steps of the data-processing state machine around the Glue job.

prepare_run -> (Glue job writes datasets/<version>/ and quarantine/<version>/) -> evaluate_run ->
publish_version (quality passed, content changed) | withdraw_run (quality failed, or unchanged).

Layout of the curated bucket:
    datasets/<version>/table/source=<site>/part-*.parquet   the curated table (Glue)
    datasets/<version>/run_summary.json, dq_report.json, sources.json   (Glue)
    datasets/<version>/manifest.json   written once by publish_version: the version exists
    datasets/published.json   the published version (the pointer runs compare with)
    quarantine/<version>/...   quarantined lines, failing rows and (failed runs) the reports
A version is published when its manifest exists and the pointer names it; the Glue Data Catalog
table is a view of the pointer (for Athena and Spark), updated with it. Versions are never
rewritten (the manifest is a conditional write), except by a GDPR erasure (see docs/privacy.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from dxops.adapters.ports import DatasetCatalog, DatasetFiles
from dxops.domain.errors import DomainError
from dxops.schemas.datasets import (
    DatasetManifest,
    DatasetReadyDetail,
    DatasetRun,
    PreviousVersion,
    ProcessingTrigger,
    QualityVerdict,
    RuleResult,
    Withdrawal,
)

DATASETS_PREFIX = "datasets/"
PUBLISHED_KEY = "datasets/published.json"
QUARANTINE_PREFIX = "quarantine/"
PARTITION_KEYS = ["source"]


class RunOutputMissing(DomainError):
    """The Glue job's reports are not where the run says (the job failed to write them)."""


class VersionAlreadyPublished(DomainError):
    """A manifest exists for this version: versions are immutable."""


def version_id(started_at: dt.datetime, execution_name: str) -> str:
    """Sortable by time, unique per execution: v20261127T131500Z-1a2b3c4d."""
    stamp = started_at.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"v{stamp}-{hashlib.sha256(execution_name.encode()).hexdigest()[:8]}"


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def published_version(files: DatasetFiles) -> PreviousVersion | None:
    """The version published last (S3 is the source of truth: a stack update may reset the catalog)."""
    document = files.read_json(PUBLISHED_KEY)
    return None if document is None else PreviousVersion.model_validate(document)


def prepare_run(
    trigger: ProcessingTrigger,
    *,
    execution_name: str,
    started_at: dt.datetime,
    raw_bucket: str,
    files: DatasetFiles,
) -> DatasetRun:
    version = version_id(started_at, execution_name)
    previous = published_version(files)
    version_uri = s3_uri(files.bucket, f"{DATASETS_PREFIX}{version}/")
    quarantine_uri = s3_uri(files.bucket, f"{QUARANTINE_PREFIX}{version}/")
    arguments = {
        "--raw_path": s3_uri(raw_bucket, "raw/"),
        "--output_path": version_uri,
        "--quarantine_path": quarantine_uri,
        "--dataset_version": version,
        "--run_time": started_at.astimezone(dt.UTC).isoformat(),
    }
    if previous is not None:
        arguments["--previous_row_count"] = str(previous.row_count)
    return DatasetRun(
        dataset_version=version,
        execution=execution_name,
        started_at=started_at,
        trigger=trigger,
        raw_uri=arguments["--raw_path"],
        version_uri=version_uri,
        quarantine_uri=quarantine_uri,
        previous=previous,
        glue_arguments=arguments,
    )


def _version_key(run: DatasetRun, name: str) -> str:
    return f"{DATASETS_PREFIX}{run.dataset_version}/{name}"


def _read_report(files: DatasetFiles, key: str) -> Any:
    document = files.read_json(key)
    if document is None:
        raise RunOutputMissing(f"{key} is missing: the Glue job did not finish its outputs")
    return document


def evaluate_run(run: DatasetRun, files: DatasetFiles) -> QualityVerdict:
    summary = _read_report(files, _version_key(run, "run_summary.json"))
    report = _read_report(files, _version_key(run, "dq_report.json"))
    content_hash = str(summary["content_hash"])
    rules = _by_rule(report["rules"])
    # Read again, not taken from the run: another run may have published while this one waited.
    published = published_version(files)
    return QualityVerdict(
        dataset_version=run.dataset_version,
        status=report["status"],
        unchanged=published is not None and published.content_hash == content_hash,
        content_hash=content_hash,
        failed_rules=[r.id for r in rules if r.status == "fail" and r.level == "error"],
        rules=rules,
        rows={k: int(v) for k, v in summary["rows"].items()},
        class_counts={k: int(v) for k, v in summary["class_counts"].items()},
        source_objects=int(summary["source_objects"]),
    )


def _by_rule(checks: list[dict[str, Any]]) -> list[RuleResult]:
    """The report's checks (a rule may check several columns: one check each) folded per rule: it
    fails if any check fails, passes if any passes, is skipped if all are."""
    outcomes: dict[str, list[dict[str, Any]]] = {}
    for check in checks:
        outcomes.setdefault(str(check.get("rule", check["id"])), []).append(check)
    results = []
    for rule, its_checks in outcomes.items():
        statuses = {c["status"] for c in its_checks}
        status = "fail" if "fail" in statuses else "pass" if "pass" in statuses else "skipped"
        results.append(RuleResult(id=rule, level=its_checks[0]["level"], status=status))
    return results


def publish_version(
    run: DatasetRun,
    verdict: QualityVerdict,
    *,
    glue_job_run_id: str,
    now: dt.datetime,
    files: DatasetFiles,
    catalog: DatasetCatalog,
) -> DatasetReadyDetail:
    if verdict.status != "pass":
        raise DomainError(f"{run.dataset_version} failed its quality checks: not published")
    summary = _read_report(files, _version_key(run, "run_summary.json"))
    previous = published_version(files)
    table_prefix = _version_key(run, "table/")
    partitions = sorted(files.subfolders(table_prefix))
    manifest = DatasetManifest(
        dataset_version=run.dataset_version,
        created_at=now,
        content_hash=verdict.content_hash,
        schema_version=str(summary["schema_version"]),
        table_uri=s3_uri(files.bucket, table_prefix),
        partition_keys=PARTITION_KEYS,
        partitions=partitions,
        rows=verdict.rows,
        class_counts=verdict.class_counts,
        label_status_counts={k: int(v) for k, v in summary["label_status_counts"].items()},
        columns={k: list(v) for k, v in summary["columns"].items()},
        sources_uri=s3_uri(files.bucket, _version_key(run, "sources.json")),
        source_objects=verdict.source_objects,
        dq_status="pass",
        dq_ruleset=str(summary["parameters"]["ruleset"]),
        dq_report_uri=s3_uri(files.bucket, _version_key(run, "dq_report.json")),
        run_summary_uri=s3_uri(files.bucket, _version_key(run, "run_summary.json")),
        previous_version=previous.dataset_version
        if previous is not None and previous.dataset_version != run.dataset_version
        else None,
        pipeline={"execution": run.execution, "glue_job_run_id": glue_job_run_id, "trigger": run.trigger.trigger},
    )
    manifest_key = _version_key(run, "manifest.json")
    if not files.write_json_once(manifest_key, manifest.model_dump(mode="json")):
        existing = DatasetManifest.model_validate(files.read_json(manifest_key))
        if existing.pipeline.get("execution") != run.execution or existing.content_hash != manifest.content_hash:
            raise VersionAlreadyPublished(f"{run.dataset_version} already has another manifest")
        manifest = existing  # a retry of this step after the manifest was written: carry on
    manifest_uri = s3_uri(files.bucket, manifest_key)
    files.overwrite_json(PUBLISHED_KEY, pointer_to(manifest, manifest_uri).model_dump(mode="json"))
    catalog.point_to(manifest, manifest_uri, summary["table_schema"])
    return DatasetReadyDetail(
        dataset_version=run.dataset_version,
        manifest_uri=manifest_uri,
        table_uri=manifest.table_uri,
        content_hash=manifest.content_hash,
        rows=verdict.rows["curated"],
        labelled_rows=sum(verdict.class_counts.values()),
        classes=len(verdict.class_counts),
        previous_version=manifest.previous_version,
    )


def pointer_to(manifest: DatasetManifest, manifest_uri: str) -> PreviousVersion:
    return PreviousVersion(
        dataset_version=manifest.dataset_version,
        content_hash=manifest.content_hash,
        row_count=manifest.rows["curated"],
        manifest_uri=manifest_uri,
    )


def withdraw_run(run: DatasetRun, verdict: QualityVerdict, files: DatasetFiles) -> Withdrawal:
    """Nothing of the run stays where versions are published. A quality failure keeps its reports
    next to its failing rows in the quarantine; an unchanged run keeps nothing (the previous
    version holds the same content)."""
    version_prefix = f"{DATASETS_PREFIX}{run.dataset_version}/"
    quarantine_prefix = f"{QUARANTINE_PREFIX}{run.dataset_version}/"
    kept: list[str] = []
    if verdict.status == "fail":
        reason = "quality-failed"
        for name in ("dq_report.json", "run_summary.json"):
            files.copy(version_prefix + name, quarantine_prefix + name)
            kept.append(s3_uri(files.bucket, quarantine_prefix + name))
        removed = files.delete_prefix(version_prefix)
    else:
        reason = "unchanged"
        removed = files.delete_prefix(version_prefix) + files.delete_prefix(quarantine_prefix)
    return Withdrawal(
        dataset_version=run.dataset_version,
        reason=reason,
        kept=kept,
        objects_removed=removed,
        failed_rules=verdict.failed_rules,
    )
