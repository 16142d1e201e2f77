"""Domain: Phenopackets and FHIR Bundles through the ingestion, by API body and by inbox file."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from dxops.domain.clinical_ingestion import (
    IngestLimits,
    IngestRequest,
    IngestResult,
    NothingAccepted,
    ingest_clinical_records,
    parse_ingest_body,
)
from dxops.domain.errors import MalformedPayload
from dxops.domain.inbox_ingestion import InboxObject, inbox_target, ingest_inbox_object
from dxops.schemas.clinical import PseudonymisedRecord
from tests.fakes import InMemoryObjectStore, StaticKeyProvider

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
LIMITS = IngestLimits(max_items=3, max_body_bytes=1_000_000)
NOW = dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC)
PHI = ("patient-o-0004", "patient-m-0001")


def example(relative: str) -> Any:
    return json.loads((EXAMPLES / relative).read_text())


def lines(store: InMemoryObjectStore, prefix: str) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for key, body in sorted(store.objects.items())
        if key.startswith(prefix)
        for line in body.decode().splitlines()
    ]


def ingest(store: InMemoryObjectStore, request: IngestRequest) -> IngestResult:
    try:
        return ingest_clinical_records(request, store=store, keys=StaticKeyProvider(), now=NOW)
    except NothingAccepted as nothing:
        return nothing.result


def test_phenopackets_are_stored_as_records_and_invalid_ones_quarantined() -> None:
    store = InMemoryObjectStore()
    documents = [
        example("phenopackets/marfan_full.json"),
        example("phenopackets/orpha_disease.json"),
        example("phenopackets/invalid_wrong_type.json"),
    ]
    body = json.dumps(documents).encode()
    result = ingest(store, parse_ingest_body(body, None, LIMITS, document_format="phenopacket", source="site-a"))
    assert (result.documents, result.received, result.accepted, result.rejected) == (3, 3, 2, 1)
    stored = [PseudonymisedRecord.model_validate(line) for line in lines(store, "raw/clinical/")]
    assert [r.source for r in stored] == ["site-a", "site-a"]
    assert {r.record_id for r in stored} == {documents[0]["id"], documents[1]["id"]}
    [quarantined] = lines(store, "quarantine/clinical/")
    assert quarantined["index"] == 2 and quarantined["errors"][0]["path"].startswith("phenotypicFeatures")
    # Nothing of the refused document is kept (not even fields named as a ClinicalRecord's): its reasons.
    assert quarantined["item"] == {} and quarantined["unknown_or_malformed_fields_dropped"] == 0
    # What the mapping left out is reported per record, by index, with its path in the document.
    assert {report.index for report in result.mapping_notes} <= {0, 1}
    assert any(note.path.startswith("diseases") for report in result.mapping_notes for note in report.notes)
    everything = json.dumps([result.model_dump(mode="json"), lines(store, "")])
    assert not [value for value in PHI if value in everything]


def test_a_record_sent_to_the_wrong_route_keeps_none_of_its_text_in_quarantine() -> None:
    store = InMemoryObjectStore()
    record = {"record_id": "John Smith 1970-03-04", "sex": "Jane Doe", "source": "site-a", "patient_id": "MRN-1"}
    body = json.dumps(record).encode()
    result = ingest(store, parse_ingest_body(body, None, LIMITS, document_format="phenopacket", source="site-a"))
    assert result.rejected == 1
    assert not [text for text in ("John Smith", "Jane Doe", "MRN-1") if text in json.dumps(lines(store, ""))]


def test_a_cohort_is_its_members() -> None:
    cohort = example("phenopackets/cohort_two_members.json")
    request = parse_ingest_body(json.dumps(cohort).encode(), None, LIMITS, document_format="phenopacket", source="s")
    assert request.items == cohort["members"]


def test_the_same_body_for_another_site_or_format_is_another_request() -> None:
    body = json.dumps(example("phenopackets/marfan_full.json")).encode()
    a = parse_ingest_body(body, None, LIMITS, document_format="phenopacket", source="site-a")
    b = parse_ingest_body(body, None, LIMITS, document_format="phenopacket", source="site-b")
    c = parse_ingest_body(body, None, LIMITS, document_format="fhir-bundle", source="site-a")
    assert len({a.idempotency_key, b.idempotency_key, c.idempotency_key}) == 3
    assert len({a.payload_sha256, b.payload_sha256, c.payload_sha256}) == 3
    keyed = parse_ingest_body(body, "key-00000001", LIMITS, document_format="phenopacket", source="site-a")
    assert keyed.idempotency_key == "anonymous|client:phenopacket:key-00000001"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("inbox/phenopackets/site-a/cases.ndjson", ("phenopacket", "site-a")),
        ("inbox/fhir/hospital-7/export 2026.json", ("fhir-bundle", "hospital-7")),
    ],
)
def test_inbox_keys_name_format_and_site(key: str, expected: tuple[str, str]) -> None:
    target = inbox_target(key)
    assert (target.document_format, target.source) == expected


@pytest.mark.parametrize(
    "key", ["inbox/cases.ndjson", "inbox/hl7v2/site-a/x.json", "inbox/fhir/Site_A/x.json", "inbox/fhir/a/b/c.json"]
)
def test_other_inbox_keys_are_refused(key: str) -> None:
    with pytest.raises(MalformedPayload, match="inbox/phenopackets/<site>/"):
        inbox_target(key)


def _ingest_file(store: InMemoryObjectStore, key: str, body: bytes, max_object_bytes: int = 10_000_000) -> Any:
    requests: list[IngestRequest] = []

    def ingest_chunk(request: IngestRequest) -> IngestResult:
        requests.append(request)
        return ingest_clinical_records(request, store=store, keys=StaticKeyProvider(), now=NOW)

    report = ingest_inbox_object(
        InboxObject(key=key, version="v1", size=len(body)),
        lambda: body,
        ingest=ingest_chunk,
        store=store,
        keys=StaticKeyProvider(),
        limits=LIMITS,
        max_object_bytes=max_object_bytes,
        now=NOW,
    )
    return report, requests


def test_an_ndjson_file_is_ingested_in_idempotent_chunks_and_bad_lines_are_rejected() -> None:
    store = InMemoryObjectStore()
    valid = [example(f"phenopackets/{name}.json") for name in ("marfan_full", "orpha_disease", "dob_only_no_sex")]
    text = "\n".join([json.dumps(valid[0]), "{not json", json.dumps(valid[1]), "", json.dumps(valid[2]), "42"])
    report, requests = _ingest_file(store, "inbox/phenopackets/site-a/cases.ndjson", text.encode())
    # 5 documents (the blank line is no document) in chunks of LIMITS.max_items = 3
    assert [len(r.items) for r in requests] == [3, 2]
    assert (report.documents, report.received, report.accepted, report.rejected) == (5, 5, 3, 2)
    assert requests[0].unreadable == {1: "line 2 is not valid JSON at column 2"}
    not_a_phenopacket = "must be a Phenopacket or Cohort object or a non-empty array of phenopackets"
    assert requests[1].unreadable == {1: f"line 6 {not_a_phenopacket}"}
    assert len(lines(store, "raw/clinical/")) == 3 and len(lines(store, "quarantine/clinical/")) == 2
    # A redelivered event makes the same requests: the idempotency layer answers them from its record.
    _, again = _ingest_file(InMemoryObjectStore(), "inbox/phenopackets/site-a/cases.ndjson", text.encode())
    assert [r.idempotency_key for r in again] == [r.idempotency_key for r in requests]
    assert len({r.idempotency_key for r in requests}) == 2


def test_a_file_that_cannot_be_read_is_quarantined_whole_with_its_reason() -> None:
    store = InMemoryObjectStore()
    report, requests = _ingest_file(store, "inbox/phenopackets/site-a/cases.json", b"[")
    assert requests == [] and report.refused and "not valid JSON" in report.refused
    [quarantined] = lines(store, "quarantine/clinical/")
    assert quarantined["errors"][0]["message"] == report.refused
    too_large, _ = _ingest_file(InMemoryObjectStore(), "inbox/fhir/site-a/x.json", b"{}", max_object_bytes=1)
    assert too_large.refused is not None and "split it" in too_large.refused
    misplaced, _ = _ingest_file(InMemoryObjectStore(), "inbox/site-a/x.json", b"{}")
    assert misplaced.refused is not None and misplaced.rejected == 1
