"""Domain: POST /records bodies are parsed, split into accepted and quarantined, and reconcile."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from dxops.domain.clinical_ingestion import IngestLimits, NothingAccepted, ingest_clinical_records, parse_ingest_body
from dxops.domain.errors import MalformedPayload, PayloadTooLarge
from tests.fakes import InMemoryObjectStore, StaticKeyProvider
from tests.records import PATIENT_IDS, clinical_record, with_change

LIMITS = IngestLimits(max_items=10, max_body_bytes=64_000)
NOW = dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC)


def body(payload: object) -> bytes:
    return json.dumps(payload).encode()


def test_single_record_is_stored_pseudonymised() -> None:
    store = InMemoryObjectStore()
    request = parse_ingest_body(body(clinical_record()), None, LIMITS)
    result = ingest_clinical_records(request, store=store, keys=StaticKeyProvider(), now=NOW)
    assert (result.received, result.accepted, result.rejected) == (1, 1, 0)
    assert result.raw_objects == [f"raw/clinical/source=site-a/ingest_date=2026-11-27/{result.batch_id}.ndjson"]
    [stored] = store.lines("raw/")
    assert "patient_id" not in stored and "birth_year" not in stored
    assert stored["age_years"] == 65.0  # 2026 - 1961, from birth year
    assert len(stored["patient_pseudonym"]) == 64
    assert stored["pseudonym_key_id"] == "test-v1"


def test_batch_splits_valid_and_invalid_and_reconciles() -> None:
    store = InMemoryObjectStore()
    items = [
        clinical_record(0),
        with_change(clinical_record(1), "phenotypes.0.hpo_id", "HP:9999999"),
        clinical_record(2, source="site-b"),
        "not a record",
        with_change(clinical_record(4), "vitals.0.value", 999),
    ]
    result = ingest_clinical_records(
        parse_ingest_body(body(items), None, LIMITS), store=store, keys=StaticKeyProvider(), now=NOW
    )
    assert result.accepted + result.rejected == result.received == 5
    assert [e.index for e in result.errors] == [1, 3, 4]
    assert result.stored_record_ids == ["rec-00000", "rec-00002"]
    assert len(result.raw_objects) == 2  # one object per site
    assert len(store.lines("raw/")) == result.accepted
    quarantined = store.lines("quarantine/")
    assert [q["index"] for q in quarantined] == [1, 3, 4]
    assert quarantined[0]["errors"][0]["path"] == "phenotypes[0].hpo_id"
    assert quarantined[1]["item_type"] == "str"


def quarantine_of(*items: object) -> tuple[InMemoryObjectStore, str]:
    store = InMemoryObjectStore()
    with pytest.raises(NothingAccepted) as refused:
        ingest_clinical_records(
            parse_ingest_body(body(list(items)), None, LIMITS), store=store, keys=StaticKeyProvider(), now=NOW
        )
    assert refused.value.result.rejected == len(items)
    return store, b"".join(store.objects.values()).decode() + refused.value.result.model_dump_json()


def test_quarantine_keeps_no_identifier_or_free_text() -> None:
    bad = clinical_record(0, notes="Jane Roe, DOB 1961-03-04, lives on Elm St", date_of_birth="1961-03-04")
    store, text = quarantine_of(bad)
    for secret in (PATIENT_IDS[0], "Jane Roe", "1961-03-04", "Elm St"):
        assert secret not in text
    [line] = store.lines("quarantine/")
    assert len(line["item"]["patient_pseudonym"]) == 64  # linkable for the data team, not identifying
    assert line["item"]["record_id"] == "rec-00000" and line["item"]["phenotypes"]  # the rest is kept


def test_quarantine_keeps_only_fields_the_schema_knows() -> None:
    """Identifiers hidden anywhere: nested objects, lists, unknown keys, wrong-typed known fields."""
    nested = clinical_record(0, patient={"name": "Jane Roe", "dob": "1961-03-04"}, aliases=["Jane Roe"])
    nested["labs"][0]["performer"] = {"who": "Dr Elm St"}
    wrong_type = clinical_record(1, sex={"given": "Jane Roe"}, history=[{"name": "Jane Roe"}])
    unknown_key = clinical_record(2, **{"Jane Roe 1961-03-04": 1})
    bad_unit = with_change(clinical_record(0), "vitals.0.unit", "Jane Roe")
    bad_code = with_change(clinical_record(1), "history.0", "ICD10:JANEROE")
    bad_id = clinical_record(2, record_id="Jane Roe 1961-03-04")
    store, text = quarantine_of(nested, wrong_type, unknown_key, bad_unit, bad_code, bad_id)
    for secret in ("Jane Roe", "1961-03-04", "Elm St", "JANEROE", *PATIENT_IDS):
        assert secret not in text, secret
    lines = store.lines("quarantine/")
    assert [line["unknown_or_malformed_fields_dropped"] for line in lines[:3]] == [3, 2, 1]
    assert {e["path"] for e in lines[2]["errors"]} == {"(unknown field)"}
    assert lines[5]["item_id"] is None  # an invalid record_id is not echoed as the item's id
    assert lines[3]["item"]["vitals"][0]["value"] == 88  # numbers that failed are evidence: kept


def test_a_request_with_no_valid_record_raises_with_its_result() -> None:
    store, _ = quarantine_of(with_change(clinical_record(), "vitals.0.value", 999))
    assert len(store.lines("quarantine/")) == 1


def test_same_request_writes_the_same_objects() -> None:
    store = InMemoryObjectStore()
    keys = StaticKeyProvider()
    payload = body([clinical_record(0), clinical_record(1)])
    first = ingest_clinical_records(parse_ingest_body(payload, None, LIMITS), store=store, keys=keys, now=NOW)
    second = ingest_clinical_records(parse_ingest_body(payload, None, LIMITS), store=store, keys=keys, now=NOW)
    assert first.raw_objects == second.raw_objects
    assert len(store.objects) == 1


def test_single_record_without_key_is_idempotent_on_its_record_id() -> None:
    request = parse_ingest_body(body(clinical_record(3)), None, LIMITS)
    assert request.idempotency_key == "anonymous|record:site-a:rec-00003"
    batch = parse_ingest_body(body([clinical_record(3), clinical_record(4)]), None, LIMITS)
    assert batch.idempotency_key == f"anonymous|body:{batch.payload_sha256}"


def test_client_idempotency_key_names_the_batch_per_caller() -> None:
    a = parse_ingest_body(body(clinical_record()), "client-key-0001", LIMITS, caller="arn:a")
    b = parse_ingest_body(body(clinical_record(1)), "client-key-0001", LIMITS, caller="arn:a")
    other = parse_ingest_body(body(clinical_record()), "client-key-0001", LIMITS, caller="arn:b")
    assert a.idempotency_key == b.idempotency_key == "arn:a|client:client-key-0001"
    assert other.idempotency_key != a.idempotency_key
    assert a.payload_sha256 != b.payload_sha256


def test_same_content_serialised_differently_is_the_same_request() -> None:
    record = clinical_record()
    compact = parse_ingest_body(json.dumps(record).encode(), "k-00000001", LIMITS)
    pretty = parse_ingest_body(json.dumps(dict(reversed(record.items())), indent=2).encode(), "k-00000001", LIMITS)
    assert compact.payload_sha256 == pretty.payload_sha256


@pytest.mark.parametrize(
    ("raw", "error", "fragment"),
    [
        (b"{not json", MalformedPayload, "not valid JSON at line 1 column 2"),
        (b"\xff\xfe", MalformedPayload, "not valid JSON"),
        (b"[" * 20_000 + b"]" * 20_000, MalformedPayload, "nesting depth"),
        (b"1" * 5000, MalformedPayload, "number size"),
        (b"[" * 40 + b"]" * 40, MalformedPayload, "nests deeper than 32 levels"),
        (b"[]", MalformedPayload, "non-empty array"),
        (b"42", MalformedPayload, "record object"),
        (b"x" * 64_001, PayloadTooLarge, "exceeds the limit of 64000 bytes"),
        (body([clinical_record(i) for i in range(11)]), PayloadTooLarge, "batch of 11 records exceeds the limit of 10"),
    ],
)
def test_bad_bodies_are_refused(raw: bytes, error: type[Exception], fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        parse_ingest_body(raw, None, LIMITS)


def test_bad_idempotency_key_is_refused() -> None:
    with pytest.raises(MalformedPayload, match="Idempotency-Key"):
        parse_ingest_body(body(clinical_record()), "short", LIMITS)


def test_storage_failure_propagates() -> None:
    store = InMemoryObjectStore(fail_with=OSError("s3 down"))
    with pytest.raises(OSError, match="s3 down"):
        ingest_clinical_records(
            parse_ingest_body(body(clinical_record()), None, LIMITS), store=store, keys=StaticKeyProvider(), now=NOW
        )
