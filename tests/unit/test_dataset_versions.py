"""Dataset versions around the Glue job: prepare, evaluate, publish once, withdraw (fakes, no AWS)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from dxops.domain.dataset_versions import (
    RunOutputMissing,
    VersionAlreadyPublished,
    evaluate_run,
    prepare_run,
    publish_version,
    published_version,
    version_id,
    withdraw_run,
)
from dxops.schemas.datasets import DatasetManifest, ProcessingTrigger
from tests.fakes import InMemoryCatalog, InMemoryDatasetFiles

STARTED = dt.datetime(2026, 11, 27, 13, 17, 0, 123000, tzinfo=dt.UTC)
HASH_A, HASH_B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def glue_outputs(
    files: InMemoryDatasetFiles, version: str, *, status: str = "pass", content_hash: str = HASH_A
) -> None:
    """What the Glue job writes into datasets/<version>/."""
    root = f"datasets/{version}/"
    files.objects[root + "run_summary.json"] = {
        "content_hash": content_hash,
        "schema_version": "1.0",
        "rows": {"curated": 40, "clinical_quarantined": 2, "clinical_duplicates": 3, "dq_failing_rows": 0},
        "class_counts": {"ICD10:J45": 25, "ORPHA:558": 10},
        "label_status_counts": {"confirmed": 35, "unlabelled": 5},
        "columns": {"phenotypes": ["HP:0001250"], "labs": []},
        "table_schema": [{"name": "record_id", "type": "string"}, {"name": "age_years", "type": "double"}],
        "source_objects": 4,
        "parameters": {"ruleset": "curated v1"},
    }
    rules = [
        {"id": "record_id_unique", "level": "error", "status": "pass"},
        {"id": "age_range", "level": "error", "status": "fail" if status == "fail" else "pass"},
        # one rule checked on two columns: one check each, folded per rule by the gate
        {"id": "labs_plausible:2345-7", "rule": "labs_plausible", "level": "error", "status": "pass"},
        {
            "id": "labs_plausible:718-7",
            "rule": "labs_plausible",
            "level": "error",
            "status": "fail" if status == "fail" else "pass",
        },
        {"id": "label_known", "level": "error", "status": "skipped"},
        {"id": "soft_rule", "level": "warning", "status": "fail"},
    ]
    files.objects[root + "dq_report.json"] = {"status": status, "rules": rules}
    files.objects[root + "sources.json"] = [{"kind": "clinical", "uri": "s3://raw/raw/clinical/a.ndjson", "lines": 45}]
    for site in ("site-a", "site-b"):
        files.objects[root + f"table/source={site}/part-0.parquet"] = b"PAR1"
    files.objects[f"quarantine/{version}/lines/kind=clinical/part-0.json"] = b"{}"


def run_of(
    files: InMemoryDatasetFiles,
    catalog: InMemoryCatalog | None = None,
    name: str = "raw-20261127T130000Z",
    **trigger: Any,
):  # type: ignore[no-untyped-def]
    return prepare_run(
        ProcessingTrigger(**trigger),
        execution_name=name,
        started_at=STARTED,
        raw_bucket="raw",
        files=files,
    )


def test_prepare_allocates_a_sortable_version_and_the_job_arguments() -> None:
    files, catalog = InMemoryDatasetFiles(), InMemoryCatalog()
    run = run_of(files, catalog, trigger="schedule")
    assert run.dataset_version == version_id(STARTED, "raw-20261127T130000Z")
    assert run.dataset_version.startswith("v20261127T131700Z-")
    assert run.glue_arguments == {
        "--raw_path": "s3://raw/raw/",
        "--output_path": f"s3://curated-bucket/datasets/{run.dataset_version}/",
        "--quarantine_path": f"s3://curated-bucket/quarantine/{run.dataset_version}/",
        "--dataset_version": run.dataset_version,
        "--run_time": "2026-11-27T13:17:00.123000+00:00",
    }
    assert run.previous is None


def test_a_passing_run_is_published_once_with_its_lineage() -> None:
    files, catalog = InMemoryDatasetFiles(), InMemoryCatalog()
    run = run_of(files, catalog)
    glue_outputs(files, run.dataset_version)
    verdict = evaluate_run(run, files)
    assert (verdict.status, verdict.unchanged, verdict.failed_rules) == ("pass", False, [])
    detail = publish_version(run, verdict, glue_job_run_id="jr_1", now=STARTED, files=files, catalog=catalog)
    manifest = DatasetManifest.model_validate(files.objects[f"datasets/{run.dataset_version}/manifest.json"])
    assert manifest.partitions == ["source=site-a", "source=site-b"]
    assert manifest.sources_uri.endswith(f"{run.dataset_version}/sources.json")
    assert manifest.pipeline == {"execution": run.execution, "glue_job_run_id": "jr_1", "trigger": "manual"}
    assert (detail.rows, detail.labelled_rows, detail.classes) == (40, 35, 2)
    published = published_version(files)
    assert published is not None and published.dataset_version == run.dataset_version
    assert catalog.pointer[0].dataset_version == run.dataset_version  # the catalog follows the pointer
    assert catalog.columns[1] == {"name": "age_years", "type": "double"}
    # A retry of the step (the manifest already written by this run) carries on with it...
    assert publish_version(run, verdict, glue_job_run_id="jr_1", now=STARTED, files=files, catalog=catalog) == detail
    # ...but versions are immutable: another run cannot publish over it.
    with pytest.raises(VersionAlreadyPublished):
        publish_version(
            run.model_copy(update={"execution": "another"}),
            verdict,
            glue_job_run_id="jr_2",
            now=STARTED,
            files=files,
            catalog=catalog,
        )


def test_the_next_run_knows_the_previous_version_and_detects_unchanged_content() -> None:
    files, catalog = InMemoryDatasetFiles(), InMemoryCatalog()
    first = run_of(files, catalog)
    glue_outputs(files, first.dataset_version)
    publish_version(
        first, evaluate_run(first, files), glue_job_run_id="jr_1", now=STARTED, files=files, catalog=catalog
    )

    second = run_of(files, catalog, name="schedule-1", trigger="schedule")
    assert second.previous is not None and second.previous.dataset_version == first.dataset_version
    assert second.glue_arguments["--previous_row_count"] == "40"
    glue_outputs(files, second.dataset_version)  # same content hash
    verdict = evaluate_run(second, files)
    assert verdict.unchanged
    withdrawal = withdraw_run(second, verdict, files)
    assert withdrawal.reason == "unchanged" and withdrawal.kept == []
    assert not any(
        k.startswith((f"datasets/{second.dataset_version}/", f"quarantine/{second.dataset_version}/"))
        for k in files.objects
    )
    assert f"datasets/{first.dataset_version}/manifest.json" in files.objects


def test_a_failing_run_keeps_its_reports_in_the_quarantine_and_publishes_nothing() -> None:
    files, catalog = InMemoryDatasetFiles(), InMemoryCatalog()
    run = run_of(files, catalog)
    glue_outputs(files, run.dataset_version, status="fail", content_hash=HASH_B)
    verdict = evaluate_run(run, files)
    assert verdict.failed_rules == ["age_range", "labs_plausible"]  # warnings and skipped rules do not
    assert [r.id for r in verdict.rules].count("labs_plausible") == 1
    withdrawal = withdraw_run(run, verdict, files)
    assert withdrawal.reason == "quality-failed"
    assert withdrawal.kept == [
        f"s3://curated-bucket/quarantine/{run.dataset_version}/dq_report.json",
        f"s3://curated-bucket/quarantine/{run.dataset_version}/run_summary.json",
    ]
    assert not any(k.startswith(f"datasets/{run.dataset_version}/") for k in files.objects)
    assert f"quarantine/{run.dataset_version}/lines/kind=clinical/part-0.json" in files.objects
    assert published_version(files) is None and catalog.pointer is None


def test_missing_job_outputs_are_an_error_not_a_pass() -> None:
    files, catalog = InMemoryDatasetFiles(), InMemoryCatalog()
    with pytest.raises(RunOutputMissing):
        evaluate_run(run_of(files, catalog), files)
