"""Properties of the API's parsing and the ingestion domain (Hypothesis), for any input.

Whatever a client sends: the body parsers raise only their documented errors; every item of a
batch is either stored (pseudonymised, schema-valid) or quarantined with a reason, exactly once;
and no error or stored record repeats the patient's identifier or a value the client sent.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dxops.domain.clinical_ingestion import IngestLimits, NothingAccepted, ingest_clinical_records, parse_ingest_body
from dxops.domain.errors import MalformedPayload, PayloadTooLarge
from dxops.domain.prediction import InvalidRequest, PredictLimits, parse_predict_body
from dxops.schemas.clinical import PseudonymisedRecord
from tests.fakes import InMemoryObjectStore, StaticKeyProvider
from tests.records import clinical_record

LIMITS = IngestLimits(max_items=50, max_body_bytes=1_000_000)
NOW = dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC)
MARKER = "MRN-HYPOTHESIS-7Q"  # in every identifier and every wrong value: it must never come back

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
# Fields no marker-carrying value below is valid for (a record_id may be any identifier: it is echoed).
FIELDS = ["source", "encounter_date", "sex", "age_years", "birth_year", "phenotypes", "labs", "vitals"]


@st.composite
def valid_records(draw: st.DrawFn) -> dict[str, Any]:
    return clinical_record(
        draw(st.integers(0, 10_000)),
        source=draw(st.from_regex(r"\A[a-z0-9][a-z0-9\-]{0,20}\Z")),
        patient_id=MARKER + draw(st.text(min_size=1, max_size=30)),
        sex=draw(st.sampled_from(["female", "male", "other", "unknown"])),
        birth_year=draw(st.none() | st.integers(1890, 2026)),
        vitals=[{"name": "heart_rate", "value": draw(st.integers(20, 250)), "unit": "/min"}],
    )


@st.composite
def broken_records(draw: st.DrawFn) -> dict[str, Any]:
    """A valid record with one field replaced by a wrong value that carries the marker."""
    record = draw(valid_records())
    record[draw(st.sampled_from(FIELDS))] = draw(
        st.sampled_from([MARKER, [MARKER], {"x": MARKER}, 10**40, -1, f"HP:{MARKER}"])
    )
    return record


items = st.one_of(valid_records(), broken_records(), json_values)


@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_body_parses_within_the_limits_or_raises_a_documented_error(body: bytes) -> None:
    try:
        ingest = parse_ingest_body(body, None, LIMITS)
    except (MalformedPayload, PayloadTooLarge):
        pass
    else:
        assert 1 <= len(ingest.items) <= LIMITS.max_items
        # The same content serialised otherwise is the same request (idempotency).
        respaced = json.dumps(json.loads(body), indent=1, sort_keys=True).encode()
        again = parse_ingest_body(respaced, None, LIMITS)
        assert (again.payload_sha256, again.idempotency_key) == (ingest.payload_sha256, ingest.idempotency_key)
    try:
        predict = parse_predict_body(body, PredictLimits(max_records=5))
    except (MalformedPayload, PayloadTooLarge, InvalidRequest):
        pass
    else:
        assert 1 <= len(predict.records) <= 5


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(items, min_size=1, max_size=8))
def test_every_item_is_stored_or_quarantined_exactly_once_without_echoing_identifiers(batch: list[Any]) -> None:
    store = InMemoryObjectStore()
    request = parse_ingest_body(json.dumps(batch).encode(), None, LIMITS)
    try:
        result = ingest_clinical_records(request, store=store, keys=StaticKeyProvider(), now=NOW)
    except NothingAccepted as refused:
        result = refused.result
    stored, quarantined = store.lines("raw/"), store.lines("quarantine/")
    assert result.received == len(batch) == result.accepted + result.rejected
    assert len(stored) == result.accepted == len(result.stored_record_ids)
    assert [q["index"] for q in quarantined] == [e.index for e in result.errors]
    assert all(q["errors"] for q in quarantined)  # each with its reason
    for record in stored:
        PseudonymisedRecord.model_validate(record)  # what is stored is schema-valid
    # Neither the response nor the stored records carry an identifier or a sent value. The quarantine
    # keeps the rejected item itself, for repair: it is PHI at rest, encrypted, expiring.
    assert MARKER not in result.model_dump_json() + json.dumps(stored)
