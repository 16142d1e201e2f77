"""Domain: POST /fhir/predict: a FHIR Bundle in, its records predicted, FHIR RiskAssessments out."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from dxops.domain.errors import MalformedPayload, PayloadTooLarge
from dxops.domain.prediction import InvalidRequest, PredictLimits, parse_fhir_predict_body, predict
from dxops.interop.fhir import risk_assessment_bundle
from tests.fakes import FakeDiagnosisEndpoint, InMemoryMonitoringStore, StaticKeyProvider

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "fhir"
LIMITS = PredictLimits(max_records=5)
NOW = dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC)


def bundle(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    return document


def encode(document: Any) -> bytes:
    return json.dumps(document).encode()


def resources(document: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in document["entry"] if e["resource"]["resourceType"] == kind]


def test_a_bundle_is_predicted_and_answered_as_risk_assessments_of_its_own_patients() -> None:
    sent = bundle("two-encounters-urn-uuid.json")
    parsed = parse_fhir_predict_body(encode(sent), LIMITS, "site-a")
    encounters = resources(sent, "Encounter")
    assert len(parsed.request.records) == len(encounters) == len(parsed.subjects)
    store = InMemoryMonitoringStore()
    outcome = predict(
        parsed.request, request_id="req-0001", endpoint=FakeDiagnosisEndpoint(), store=store, keys=StaticKeyProvider()
    )
    answer = risk_assessment_bundle(outcome.response, parsed.subjects, occurrence=NOW, encounters=parsed.encounters)
    validated = Bundle.model_validate_json(json.dumps(answer))
    assessments = [entry.resource for entry in validated.entry]
    assert [a.get_resource_type() for a in assessments] == ["RiskAssessment"] * len(encounters)
    # each answer names the patient and the encounter as the Bundle did
    assert [a.subject.reference for a in assessments] == [e["subject"]["reference"] for e in encounters]
    full_urls = [e["fullUrl"] for e in sent["entry"] if e["resource"]["resourceType"] == "Encounter"]
    assert [a.encounter.reference for a in assessments] == [
        f"Encounter/{e['id']}" if "id" in e else url for e, url in zip(encounters, full_urls, strict=True)
    ]
    for assessment, prediction in zip(assessments, outcome.response.predictions, strict=True):
        expected = [(d.code.split(":")[1], d.probability) for d in prediction.diagnoses]
        ranked = [p for p in assessment.prediction if p.extension[0].valueCode == "ranked"]
        assert [(p.outcome.coding[0].code, float(p.probabilityDecimal)) for p in ranked] == expected
    # what was stored for monitoring is pseudonymised: no identifier of the Bundle's patients
    patients = {i["value"] for p in resources(sent, "Patient") for i in p.get("identifier", [])}
    stored = b"".join(store.objects.values()).decode()
    assert patients and not [value for value in patients if value in stored + json.dumps(answer)]


def test_a_bundle_that_cannot_be_mapped_is_refused_with_paths() -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_fhir_predict_body(encode(bundle("invalid-no-encounter.json")), LIMITS, "site-a")
    assert [f.path for f in refused.value.fields] == ["entry"]
    with pytest.raises(MalformedPayload):
        parse_fhir_predict_body(b"[]", LIMITS, "site-a")


def test_a_record_that_fails_validation_names_its_encounter() -> None:
    sent = bundle("encounter-full.json")
    broken = copy.deepcopy(sent)
    for encounter in resources(broken, "Encounter"):
        encounter["period"] = {"start": "1850-01-01"}  # before 1900: encounter_date is refused
    with pytest.raises(InvalidRequest) as refused:
        parse_fhir_predict_body(encode(broken), LIMITS, "site-a")
    [encounter] = resources(sent, "Encounter")
    assert refused.value.fields[0].path.startswith(f"Encounter/{encounter['id']}: ")


def test_too_many_encounters_are_refused() -> None:
    with pytest.raises(PayloadTooLarge, match="encounters exceed the limit of 1"):
        parse_fhir_predict_body(encode(bundle("two-encounters-urn-uuid.json")), PredictLimits(max_records=1), "s")
