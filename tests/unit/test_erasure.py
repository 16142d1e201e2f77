"""GDPR erasure, domain side (fakes, no AWS): request, raw objects, completion and audit."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from pydantic import ValidationError

from dxops.domain.dataset_versions import PUBLISHED_KEY, pointer_to, published_version
from dxops.domain.erasure import (
    ErasureIncomplete,
    begin_erasure,
    complete_erasure,
    erase_lines,
    erase_raw_batch,
    erase_raw_objects,
    erasure_status,
    pseudonym_digest,
    raw_batches_key,
    raw_result_key,
    request_erasure,
    request_key,
    result_key,
)
from dxops.domain.pseudonymisation import pseudonymise
from dxops.schemas.datasets import DatasetManifest
from dxops.schemas.device import DeviceBinding
from dxops.schemas.erasure import (
    CompleteErasureRequest,
    ErasureInput,
    ErasureRequestBody,
    RawErasureBatch,
    RawErasureResult,
)
from tests.fakes import (
    InMemoryAuditLog,
    InMemoryCatalog,
    InMemoryDatasetFiles,
    InMemoryDeviceBindings,
    InMemoryVersionedObjects,
    RecordingErasureRuns,
    StaticKeyProvider,
)

NOW = dt.datetime(2026, 11, 27, 14, 0, tzinfo=dt.UTC)
P, OTHER = "a" * 64, "b" * 64
ERASURE = ErasureInput(request_id="er-" + "1" * 32, patient_pseudonym=P, requested_at=NOW)


def line(pseudonym: str, record: str) -> bytes:
    return json.dumps({"record_id": record, "patient_pseudonym": pseudonym}).encode() + b"\n"


def test_a_request_by_site_identifier_is_pseudonymised_recorded_and_started() -> None:
    keys, starter, audit = StaticKeyProvider(), RecordingErasureRuns(), InMemoryAuditLog()
    body = ErasureRequestBody.model_validate({"source": "site-a", "patient_id": "PAT-0001"})
    accepted = request_erasure(body, keys=keys, starter=starter, audit=audit, now=NOW)
    (started,) = starter.started
    assert started.patient_pseudonym == pseudonymise(keys.key, "site-a", "PAT-0001")
    assert accepted.request_id == started.request_id and accepted.request_id.startswith("er-")
    (record,) = audit.records.values()
    assert record.status == "requested" and record.pseudonym_sha256 == pseudonym_digest(started.patient_pseudonym)
    assert "PAT-0001" not in record.model_dump_json() and started.patient_pseudonym not in record.model_dump_json()


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"source": "site-a"},
        {"patient_id": "PAT-1"},
        {"source": "site-a", "patient_id": "PAT-1", "patient_pseudonym": "a" * 64},
        {"patient_pseudonym": "not-hex"},
        {"patient_pseudonym": "a" * 64, "name": "Jane"},
    ],
)
def test_a_request_must_name_the_patient_one_way(body: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        ErasureRequestBody.model_validate(body)


def test_lines_holding_the_pseudonym_are_removed_and_others_kept() -> None:
    body = line(P, "r1") + line(OTHER, "r2") + line(P, "r3")
    erased, removed = erase_lines(body, P)
    assert removed == 2 and erased == line(OTHER, "r2")


def test_raw_objects_are_rewritten_and_their_older_versions_purged() -> None:
    objects = InMemoryVersionedObjects(
        {
            "raw/clinical/a.ndjson": line(P, "r1") + line(OTHER, "r2"),
            "raw/clinical/b.ndjson": line(OTHER, "r3"),
            "quarantine/clinical/c.ndjson": line(P, "r4"),
        }
    )
    objects.versions["raw/clinical/a.ndjson"].append(line(P, "r1") + line(OTHER, "r2"))  # an earlier write
    keys = ["raw/clinical/a.ndjson", "raw/clinical/b.ndjson", "quarantine/clinical/c.ndjson", "raw/readme.txt"]
    result = erase_raw_objects(keys, P, objects)
    assert result == RawErasureResult(objects_scanned=3, objects_rewritten=2, lines_removed=2, versions_purged=3)
    assert objects.versions["raw/clinical/a.ndjson"] == [line(OTHER, "r2")]
    assert objects.versions["raw/clinical/b.ndjson"] == [line(OTHER, "r3")]
    assert "quarantine/clinical/c.ndjson" not in objects.versions  # only the patient's: removed entirely


def test_a_rerun_purges_what_a_failed_erasure_left_in_older_versions() -> None:
    objects = InMemoryVersionedObjects({"raw/clinical/a.ndjson": line(P, "r1") + line(OTHER, "r2")})
    objects.versions["raw/clinical/a.ndjson"].append(line(OTHER, "r2"))  # rewritten, then the run died
    result = erase_raw_objects(["raw/clinical/a.ndjson"], P, objects)
    assert (result.objects_rewritten, result.lines_removed, result.versions_purged) == (1, 0, 1)
    assert objects.versions["raw/clinical/a.ndjson"] == [line(OTHER, "r2")]


def test_an_object_whose_current_version_is_a_delete_marker_loses_its_older_versions() -> None:
    objects = InMemoryVersionedObjects({"quarantine/clinical/q.ndjson": line(P, "r1")})
    objects.versions["quarantine/clinical/q.ndjson"].append(None)  # expired by the lifecycle rule
    result = erase_raw_objects(["quarantine/clinical/q.ndjson"], P, objects)
    assert result.versions_purged == 1 and "quarantine/clinical/q.ndjson" not in objects.versions


def test_a_concurrent_rewrite_is_not_overwritten_with_stale_content() -> None:
    key = "raw/clinical/a.ndjson"
    objects = InMemoryVersionedObjects({key: line(P, "r1") + line(OTHER, "r2") + line("c" * 64, "r3")})

    def another_erasure(store: InMemoryVersionedObjects) -> None:  # erases patient c meanwhile
        store.versions[key].append(line(P, "r1") + line(OTHER, "r2"))

    objects.interfere = another_erasure
    erase_raw_objects([key], P, objects)
    assert objects.versions[key] == [line(OTHER, "r2")]  # both erasures hold: neither patient comes back


def test_a_batch_records_its_result_and_completion_refuses_a_missing_one() -> None:
    files = InMemoryDatasetFiles()
    objects = InMemoryVersionedObjects({"raw/clinical/a.ndjson": line(P, "r1") + line(OTHER, "r2")})
    batch = RawErasureBatch(batch=0, keys=["raw/clinical/a.ndjson"], erasure=ERASURE)
    erase_raw_batch(batch, objects=objects, files=files)
    assert files.objects[raw_result_key(ERASURE.request_id, 0)]["lines_removed"] == 1
    files.objects[raw_batches_key(ERASURE.request_id)] = [{"keys": ["raw/clinical/a.ndjson"]}, {"keys": ["x"]}]
    request = CompleteErasureRequest(erasure=ERASURE, device_bindings_removed=0)
    with pytest.raises(ErasureIncomplete):
        complete_erasure(request, now=NOW, audit=InMemoryAuditLog(), files=files, catalog=InMemoryCatalog())


def test_begin_lists_the_raw_objects_in_batches_and_removes_device_bindings() -> None:
    files, audit = InMemoryDatasetFiles(), InMemoryAuditLog()
    raw = InMemoryVersionedObjects({f"raw/clinical/{i:04d}.ndjson": b"" for i in range(1201)} | {"raw/x.txt": b""})
    bound = DeviceBinding(device_id="dev-1", source="site-a", patient_pseudonym=P, pseudonym_key_id="k", bound_at=NOW)
    other = DeviceBinding(
        device_id="dev-2", source="site-a", patient_pseudonym=OTHER, pseudonym_key_id="k", bound_at=NOW
    )
    bindings = InMemoryDeviceBindings(bound, other)
    begun = begin_erasure(ERASURE, audit=audit, files=files, bindings=bindings, raw=raw)
    assert (begun.device_bindings_removed, begun.raw_objects) == (1, 1201)
    assert [len(b["keys"]) for b in files.objects[raw_batches_key(ERASURE.request_id)]] == [500, 500, 201]
    assert files.objects[request_key(ERASURE.request_id)] == {"patient_pseudonym": P}
    assert set(bindings.bindings) == {"dev-2"}
    assert set(audit.read(ERASURE.request_id)) == {"requested"}  # recorded here: started without the API


def manifest(version: str) -> DatasetManifest:
    return DatasetManifest.model_validate(
        {
            "dataset_version": version,
            "created_at": NOW.isoformat(),
            "content_hash": "sha256:" + "0" * 64,
            "schema_version": "1.0",
            "table_uri": f"s3://curated-bucket/datasets/{version}/table/",
            "partition_keys": ["source"],
            "partitions": ["source=site-a"],
            "rows": {"curated": 10},
            "class_counts": {"A": 10},
            "label_status_counts": {"confirmed": 10},
            "columns": {},
            "sources_uri": "s3://curated-bucket/x/sources.json",
            "source_objects": 1,
            "dq_status": "pass",
            "dq_ruleset": "curated v1",
            "dq_report_uri": "s3://curated-bucket/x/dq_report.json",
            "run_summary_uri": "s3://curated-bucket/x/run_summary.json",
            "previous_version": None,
            "pipeline": {},
        }
    )


def test_completion_amends_manifests_purges_versions_and_records_the_audit() -> None:
    version = "v20261127T130000Z-0a1b2c3d"
    files, audit, catalog = InMemoryDatasetFiles(), InMemoryAuditLog(), InMemoryCatalog()
    files.objects[f"datasets/{version}/manifest.json"] = manifest(version).model_dump(mode="json")
    catalog.point_to(manifest(version), "s3://curated-bucket/m.json", [])
    files.objects[PUBLISHED_KEY] = pointer_to(manifest(version), "s3://curated-bucket/m.json").model_dump(mode="json")
    files.noncurrent = [f"datasets/{version}/table/source=site-a/part-0.parquet", "datasets/other/part.parquet"]
    new_hash = "sha256:" + "f" * 64
    files.objects[result_key(ERASURE.request_id)] = [
        {
            "path": f"s3://curated-bucket/datasets/{version}/table/",
            "dataset_version": version,
            "kind": "table",
            "rows_removed": 2,
            "rows_after": 8,
            "content_hash": new_hash,
        },
        {
            "path": "s3://curated-bucket/quarantine/v9/lines/",
            "dataset_version": "v9",
            "kind": "quarantine",
            "rows_removed": 1,
            "rows_after": 0,
            "content_hash": None,
        },
    ]
    files.objects[request_key(ERASURE.request_id)] = {"patient_pseudonym": P}
    files.objects[raw_batches_key(ERASURE.request_id)] = [{"keys": ["a", "b", "c"]}, {"keys": ["d", "e"]}]
    files.objects[raw_result_key(ERASURE.request_id, 0)] = RawErasureResult(
        objects_scanned=3, objects_rewritten=1, lines_removed=2
    ).model_dump()
    files.objects[raw_result_key(ERASURE.request_id, 1)] = RawErasureResult(objects_scanned=2).model_dump()
    request = CompleteErasureRequest(erasure=ERASURE, device_bindings_removed=1)
    record = complete_erasure(request, now=NOW, audit=audit, files=files, catalog=catalog)

    amended = DatasetManifest.model_validate(files.objects[f"datasets/{version}/manifest.json"])
    assert amended.rows["curated"] == 8 and amended.content_hash == new_hash
    assert [(e.request_id, e.rows_removed) for e in amended.erasures] == [(ERASURE.request_id, 2)]
    assert catalog.pointer[0].content_hash == new_hash
    published = published_version(files)
    assert published is not None and (published.content_hash, published.row_count) == (new_hash, 8)
    assert files.noncurrent == ["datasets/other/part.parquet"]
    assert not any(k.startswith("erasure-requests/") for k in files.objects)  # the pseudonym is gone too
    assert record.raw is not None and (record.raw.objects_scanned, record.raw.lines_removed) == (5, 2)
    assert record.versions_amended == [version]
    assert P not in record.model_dump_json()
    runs = RecordingErasureRuns()
    status = erasure_status(ERASURE.request_id, audit, runs)
    assert status is not None
    assert (status.status, status.raw_lines_removed, status.curated_rows_removed) == ("completed", 2, 2)
    assert erasure_status("er-" + "9" * 32, audit, runs) is None


def test_a_failed_erasure_shows_as_failed_not_in_progress_forever() -> None:
    audit, runs = InMemoryAuditLog(), RecordingErasureRuns()
    body = ErasureRequestBody.model_validate({"patient_pseudonym": P})
    accepted = request_erasure(body, keys=StaticKeyProvider(), starter=runs, audit=audit, now=NOW)
    assert erasure_status(accepted.request_id, audit, runs).status == "in-progress"  # type: ignore[union-attr]
    runs.statuses[accepted.request_id] = "FAILED"
    assert erasure_status(accepted.request_id, audit, runs).status == "failed"  # type: ignore[union-attr]
