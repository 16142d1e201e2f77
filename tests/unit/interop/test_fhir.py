"""FHIR R4 Bundle -> ClinicalRecords, and predictions -> RiskAssessments (docs/interop-fhir.md), on
hand-written Bundles (tests/interop/examples/fhir/)."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.riskassessment import RiskAssessment

from dxops.interop import DocumentRejected, MappedRecord
from dxops.interop.fhir import (
    CODE_SYSTEMS,
    MAX_ERRORS,
    PREDICTION_KIND_URL,
    map_bundle,
    outcome_concept,
    risk_assessment,
    risk_assessment_bundle,
)
from dxops.schemas.clinical import ClinicalRecord
from dxops.schemas.prediction import FeatureContribution, PredictedDiagnosis, Prediction, PredictResponse

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "fhir"
SOURCE = "site-a"
VALID = ["encounter-full", "two-encounters-urn-uuid", "missing-gender-unknown-codes"]
# Planted in the examples: a made-up name and date of birth that must never come out.
NAME, FAMILY, DOB = "Quillon Brambleworth", "Brambleworth", "2012-05-17"


def example(name: str) -> Any:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def mapped(name: str) -> list[MappedRecord]:
    return map_bundle(example(name), source=SOURCE)


def note_paths(result: MappedRecord) -> set[str]:
    return {note.path for note in result.notes}


def reasons(result: MappedRecord, path: str) -> list[str]:
    return [note.reason for note in result.notes if note.path == path]


def rejected(document: Any) -> DocumentRejected:
    with pytest.raises(DocumentRejected) as caught:
        map_bundle(document, source=SOURCE)
    return caught.value


def assert_no_phi(exc: DocumentRejected, *secrets: str) -> None:
    texts = [str(exc), repr(exc), json.dumps([e.model_dump() for e in exc.errors])]
    for secret in secrets:
        assert all(secret not in text for text in texts), secret
    # Raised outside the except clause: the ValidationError (which holds the inputs) is not chained.
    assert exc.__cause__ is None
    assert exc.__context__ is None


# --- valid Bundles ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", VALID)
def test_every_mapped_record_is_a_valid_clinical_record(name: str) -> None:
    for result in mapped(name):
        assert None not in result.record.values()
        ClinicalRecord.model_validate(result.record)
        json.dumps(result.record)  # JSON-shaped, as a client would send it


@pytest.mark.parametrize("name", VALID)
def test_no_direct_identifier_or_date_of_birth_comes_out(name: str) -> None:
    document = example(name)
    patients = [e["resource"] for e in document["entry"] if e["resource"]["resourceType"] == "Patient"]
    dates = {p["birthDate"] for p in patients if len(p.get("birthDate", "")) == 10}
    out = json.dumps([[r.record, [n.__dict__ for n in r.notes]] for r in mapped(name)])
    for secret in {FAMILY, "Quillon", "Example Lane", "+41 00", "VC-77120", *dates}:
        assert secret not in out


def test_full_encounter_bundle() -> None:
    [result] = mapped("encounter-full")
    record = result.record
    assert result.origin == "Encounter/enc-2024-0001"
    assert {k: record[k] for k in ("record_id", "source", "patient_id", "encounter_date", "sex", "birth_year")} == {
        "record_id": "enc-2024-0001",
        "source": SOURCE,
        # the official identifier, not the first (usual) one, with its system (an MRN and another number
        # with the same digits are two patients)
        "patient_id": "http://ehr.example.org/fhir/sid/patient|P-20931",
        "encounter_date": "2024-03-14",
        "sex": "female",
        "birth_year": 2012,
    }
    assert record["phenotypes"] == [
        {"hpo_id": "HP:0001250", "status": "observed", "onset_age_years": 3.0},
        {"hpo_id": "HP:0000252", "status": "excluded"},  # refuted Condition
        {"hpo_id": "HP:0001252", "status": "excluded"},  # Observation valueBoolean false
    ]
    assert record["diagnosis"] == {"code": "ORPHA:72", "status": "confirmed"}  # the Orphanet coding, not SNOMED
    assert record["history"] == ["ICD10:G40.9"]
    assert record["labs"] == [
        {"loinc": "718-7", "value": 12.9, "unit": "g/dL", "reference_low": 11.5, "reference_high": 15.5},
        {"loinc": "2160-0", "value": 0.45, "unit": "mg/dL", "reference_low": 0.3, "reference_high": 0.7},
    ]
    assert record["vitals"] == [
        {"name": "heart_rate", "value": 96.0, "unit": "/min"},  # the UCUM code, not "beats/minute"
        {"name": "body_temperature", "value": 37.1, "unit": "Cel"},
        {"name": "systolic_bp", "value": 104.0, "unit": "mm[Hg]"},
        {"name": "diastolic_bp", "value": 66.0, "unit": "mm[Hg]"},
    ]
    assert note_paths(result) == {
        "entry[0].resource",
        "entry[0].resource.birthDate",
        "entry[6].resource.code",
        "entry[13].resource",
    }
    [identifiers] = reasons(result, "entry[0].resource")
    assert identifiers.startswith("Patient.name, Patient.telecom, Patient.address, Patient.identifier")
    assert "direct identifiers, not taken" in identifiers
    assert reasons(result, "entry[6].resource.code") == [
        "code system not used by dxops for Condition codes: http://snomed.info/sct"
    ]
    assert "Eczema" not in json.dumps([n.reason for n in result.notes])  # the system, never its display text
    assert reasons(result, "entry[13].resource") == ["MedicationStatement is not used by dxops"]


def test_two_encounters_two_patients_and_urn_uuid_references() -> None:
    first, second = mapped("two-encounters-urn-uuid")
    assert (first.origin, second.origin) == ("Encounter/enc-a", "urn:uuid:9a7e0c55-1d2b-4e8f-8a1c-0e9d8c7b6a02")
    assert first.record["record_id"] == "enc-a"
    # no Encounter.id: its urn:uuid fullUrl (never its identifier: a visit number identifies the patient)
    assert second.record["record_id"] == "9a7e0c55-1d2b-4e8f-8a1c-0e9d8c7b6a02"
    assert (first.record["patient_id"], second.record["patient_id"]) == (
        "http://clinic.example.org/sid/patient|P-48807",
        "pat-sibling",  # no identifier: Patient.id
    )
    assert (first.record["sex"], second.record["sex"]) == ("male", "other")
    assert (first.record["birth_year"], second.record["birth_year"]) == (2015, 2009)  # "2009-01": its year
    assert (first.record["encounter_date"], second.record["encounter_date"]) == ("2023-06-01", "2023-06-02")
    # onsetDateTime 2018-03-04 with birthDate 2015-09-02: 914 days.
    assert first.record["phenotypes"] == [{"hpo_id": "HP:0002069", "status": "observed", "onset_age_years": 2.5}]
    # Two confirmed encounter-diagnoses: the first is the diagnosis, the second goes to history.
    assert first.record["diagnosis"] == {"code": "ICD10:J45.9", "status": "confirmed"}
    assert first.record["history"] == ["ICD10:E66.9"]  # icd-10-cm is read as ICD-10
    # A provisional ORPHA diagnosis before a confirmed OMIM one (https system URIs): the confirmed one wins.
    assert second.record["diagnosis"] == {"code": "OMIM:300672", "status": "confirmed"}
    assert "history" not in second.record  # no empty lists
    assert second.record["vitals"] == [{"name": "spo2", "value": 97.0, "unit": "%"}]
    assert note_paths(first) == {"entry[0].resource.birthDate", "entry[6].resource", "entry[10].resource"}
    assert reasons(first, "entry[6].resource") == [
        "another confirmed encounter-diagnosis: taken as history (the record has one diagnosis)"
    ]
    # The body weight references no Encounter in a Bundle with two: reported to its patient's record only.
    [weight] = reasons(first, "entry[10].resource")
    assert weight.startswith("Observation references no Encounter") and "vitals" not in first.record
    assert note_paths(second) == {"entry[1].resource.birthDate", "entry[7].resource"}
    assert "suspected: not taken" in reasons(second, "entry[7].resource")[0]


def test_missing_gender_and_unknown_codes_are_reported() -> None:
    [result] = mapped("missing-gender-unknown-codes")
    record = result.record
    assert record["patient_id"] == "pat-77"  # no identifier: Patient.id
    assert record["sex"] == "unknown"
    assert record["birth_year"] == 1979
    assert record["phenotypes"] == [
        {"hpo_id": "HP:0001249", "status": "observed"},  # valueBoolean true
        {"hpo_id": "HP:0000717", "status": "excluded"},  # interpretation NEG
    ]
    assert record["history"] == ["ICD10:E11.9"]
    assert "diagnosis" not in record
    assert "labs" not in record and "vitals" not in record
    expected = {
        "entry[0].resource.gender": "Patient.gender is missing: sex is unknown",
        "entry[0].resource.birthDate": "only the year of birth is taken (a date of birth is a direct identifier)",
        "entry[2].resource.code.coding[0]": "hpo_id: unknown HPO term HP:9999999",
        "entry[3].resource.code.coding[0]": "code: not a valid ORPHA code",
        "entry[4].resource.code.coding[0]": "code: not a valid ICD10 code",
        "entry[5].resource.verificationStatus": "verificationStatus unconfirmed",
        "entry[7].resource.code.coding[0]": "loinc: LOINC code 1234-5 has a wrong check digit",
        "entry[8].resource.valueQuantity": "heart_rate (value) /min is outside the plausible range [20, 300]",
        "entry[9].resource": "valueString is not used",
        "entry[10].resource": "a value with a comparator",
        "entry[11].resource": "no value (dataAbsentReason)",
        "entry[12].resource.status": "Observation entered-in-error: not taken",
        "entry[13].resource.code": "code system not used by dxops for Observation codes: http://snomed.info/sct",
        "entry[16].resource": "Procedure is not used by dxops",
    }
    assert note_paths(result) == set(expected)
    for path, start in expected.items():
        [reason] = reasons(result, path)
        assert reason.startswith(start), (path, reason)
    assert "900" not in json.dumps([n.reason for n in result.notes])  # the implausible value itself is not told


def test_condition_without_encounter_in_a_bundle_with_several_is_reported_not_mapped() -> None:
    document = example("two-encounters-urn-uuid")
    del document["entry"][4]["resource"]["encounter"]  # the phenotype of patient 1
    first, second = map_bundle(document, source=SOURCE)
    assert "phenotypes" not in first.record
    assert reasons(first, "entry[4].resource")[0].startswith("Condition references no Encounter")
    assert "entry[4].resource" not in note_paths(second)  # another patient's record


def test_reference_to_an_unknown_encounter_and_a_mismatched_subject() -> None:
    document = example("encounter-full")
    document["entry"][2]["resource"]["encounter"] = {"reference": "Encounter/elsewhere"}
    document["entry"][7]["resource"]["subject"] = {"reference": "urn:uuid:not-in-the-bundle"}  # unresolved: ignored
    document["entry"][8]["resource"]["subject"] = {"reference": "Patient/pat-1001"}
    document["entry"].append({"resource": {"resourceType": "Patient", "id": "other", "gender": "male"}})
    document["entry"][9]["resource"]["subject"] = {"reference": "Patient/other"}
    [result] = map_bundle(document, source=SOURCE)
    assert [p["hpo_id"] for p in result.record["phenotypes"]] == ["HP:0000252", "HP:0001252"]
    assert reasons(result, "entry[2].resource.encounter") == [
        "Condition references an Encounter that is not in the Bundle: not mapped"
    ]
    assert [lab["loinc"] for lab in result.record["labs"]] == ["718-7", "2160-0"]
    assert reasons(result, "entry[9].resource.subject") == [
        "Observation whose subject is not the Patient of its Encounter: not mapped"
    ]
    assert reasons(result, "entry[14].resource") == ["a Patient that is the subject of no Encounter: not used"]


def test_an_encounter_without_its_patient_among_others_gives_a_record_the_ingestion_rejects() -> None:
    document = example("two-encounters-urn-uuid")
    document["entry"][3]["resource"]["subject"] = {"reference": "Patient/nobody"}
    first, second = map_bundle(document, source=SOURCE)
    ClinicalRecord.model_validate(first.record)
    assert "patient_id" not in second.record
    assert reasons(second, "entry[3].resource.subject")[0].endswith("no patient_id")
    with pytest.raises(ValueError, match="patient_id"):
        ClinicalRecord.model_validate(second.record)


def test_entered_in_error_encounter_makes_no_record() -> None:
    document = example("two-encounters-urn-uuid")
    document["entry"][3]["resource"]["status"] = "entered-in-error"
    [first] = map_bundle(document, source=SOURCE)
    assert first.record["record_id"] == "enc-a"
    # The sibling's Encounter and its resources are reported (to all records: the sibling has none).
    assert {"entry[3].resource", "entry[7].resource.encounter", "entry[9].resource.encounter"} <= note_paths(first)


def test_condition_onset_age_units_and_statuses() -> None:
    document = example("encounter-full")
    seizure = document["entry"][2]["resource"]
    seizure["onsetAge"] = {"value": 18, "unit": "months", "system": "http://unitsofmeasure.org", "code": "mo"}
    document["entry"][3]["resource"]["verificationStatus"]["coding"][0]["code"] = "entered-in-error"
    dx = document["entry"][4]["resource"]
    del dx["verificationStatus"]
    [result] = map_bundle(document, source=SOURCE)
    assert result.record["phenotypes"][0] == {"hpo_id": "HP:0001250", "status": "observed", "onset_age_years": 1.5}
    assert reasons(result, "entry[3].resource.verificationStatus") == ["entered-in-error: not taken"]
    assert result.record["diagnosis"] == {"code": "ORPHA:72", "status": "suspected"}
    assert reasons(result, "entry[4].resource") == [
        "an encounter-diagnosis without verificationStatus: taken as suspected"
    ]


def test_refuted_diagnosis_and_observation_categories() -> None:
    document = example("encounter-full")
    document["entry"][4]["resource"]["verificationStatus"]["coding"][0]["code"] = "refuted"
    # Glucose is a dxops measurement: with the laboratory category it is a lab, without any category a vital.
    glucose: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2339-0"}]},
        "valueQuantity": {"value": 92, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"},
    }
    uncategorised = copy.deepcopy(glucose)
    del uncategorised["category"]
    bmi = copy.deepcopy(glucose)
    bmi["category"][0]["coding"][0]["code"] = "vital-signs"
    bmi["code"]["coding"][0]["code"] = "39156-5"
    malformed = copy.deepcopy(bmi)
    malformed["code"]["coding"][0]["code"] = NAME
    document["entry"] += [
        {"resource": glucose},
        {"resource": uncategorised},
        {"resource": bmi},
        {"resource": malformed},
    ]
    [result] = map_bundle(document, source=SOURCE)
    assert "diagnosis" not in result.record
    assert reasons(result, "entry[4].resource.verificationStatus") == ["a refuted diagnosis: not taken"]
    assert result.record["labs"][-1] == {"loinc": "2339-0", "value": 92.0, "unit": "mg/dL"}
    assert result.record["vitals"][-1] == {"name": "glucose", "value": 92.0, "unit": "mg/dL"}
    assert reasons(result, "entry[16].resource.code.coding[0]")[0].startswith("LOINC 39156-5 is not a vital sign")
    assert reasons(result, "entry[17].resource.code.coding[0]") == ["not a LOINC code (nnnnn-n): not taken"]


# --- rejected Bundles --------------------------------------------------------------------------


def test_wrong_typed_fields_are_rejected_with_paths_and_no_values() -> None:
    exc = rejected(example("invalid-wrong-type"))
    assert {(e.path, e.type) for e in exc.errors} == {
        ("total", "int_parsing"),
        ("entry[0].resource.gender", "string_type"),
        ("entry[0].resource.birthDate", "value_error"),
        ("entry[1].resource.period.start", "value_error"),
        ("entry[2].resource.valueQuantity.value", "value_error"),
    }
    assert {e.message for e in exc.errors if e.path == "entry[0].resource.birthDate"} == {
        "Date value string does not match spec regex."
    }
    assert_no_phi(exc, NAME, FAMILY, "17/05/2012", DOB, "09:30")


def test_unknown_elements_are_rejected_without_naming_them() -> None:
    exc = rejected(example("invalid-unknown-element"))
    assert [(e.path, e.type) for e in exc.errors] == [
        ("entry[0].resource.(unknown field)", "extra_forbidden"),
        ("entry[0].resource.(unknown field)", "extra_forbidden"),
        ("entry[1].resource.subject.(unknown field)", "extra_forbidden"),
    ]
    assert_no_phi(exc, NAME, FAMILY, DOB, "dateOfBirth", "patientName")


@pytest.mark.parametrize(
    ("document", "path"),
    [
        ("invalid-not-a-bundle", "resourceType"),
        ([{"resourceType": "Bundle"}], "(root)"),
        (NAME, "(root)"),
        ({"resourceType": NAME, "type": "collection"}, "resourceType"),
    ],
)
def test_not_a_bundle_is_rejected(document: Any, path: str) -> None:
    exc = rejected(example(document) if document == "invalid-not-a-bundle" else document)
    assert [(e.path, e.type) for e in exc.errors] == [(path, "not_a_bundle")]
    assert_no_phi(exc, NAME, FAMILY, DOB)


def test_unknown_or_missing_resource_types_are_rejected_without_their_value() -> None:
    document = example("encounter-full")
    document["entry"][13]["resource"]["resourceType"] = NAME  # fhir.resources would raise KeyError(value)
    document["entry"][2]["resource"]["contained"] = [{"resourceType": DOB}]
    del document["entry"][3]["resource"]["resourceType"]
    document["type"] = FAMILY
    exc = rejected(document)
    # entry[13] is set aside, as any resource dxops does not map (reported as a note, never by its type's name)
    assert {(e.path, e.type) for e in exc.errors} == {
        ("type", "bundle_type"),
        ("entry[3].resource.resourceType", "missing"),
        ("entry[2].resource.contained[0].resourceType", "resource_type"),
    }
    assert_no_phi(exc, NAME, FAMILY, DOB)


def test_a_value_echoed_by_a_message_is_replaced() -> None:
    # A datatype where a resource is expected: the message names the type (a known FHIR type name only:
    # unknown resourceTypes are refused before fhir.resources sees them).
    encounter = {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"}}
    encounter["contained"] = [{"resourceType": "Coding"}]
    document = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": encounter}]}
    exc = rejected(document)
    assert [(e.path, e.message) for e in exc.errors] == [
        (
            "entry[0].resource.contained[0].root",
            "Provided FHIR resource Coding should be derived from / based on Resource.",
        )
    ]
    # Any message that holds a text value of the document is replaced (here the value happens to be in
    # the message; a message that echoed its input would be caught the same way).
    document = example("encounter-full")
    document["entry"][0]["resource"]["birthDate"] = "spec regex"
    document["entry"][1]["resource"]["id"] = "enc 1"
    exc = rejected(document)
    assert {(e.path, e.message) for e in exc.errors} == {
        ("entry[0].resource.birthDate", "invalid value (value_error)"),
        ("entry[1].resource.id", "String should match pattern '^[A-Za-z0-9\\-.]+$'"),
    }


def test_too_many_errors_are_counted_not_listed() -> None:
    document = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": {"resourceType": "Patient", "gender": index}} for index in range(MAX_ERRORS + 5)],
    }
    exc = rejected(document)
    assert len(exc.errors) == MAX_ERRORS + 1
    assert exc.errors[-1].message == "5 more errors not listed"


def test_a_bundle_without_encounter_is_rejected() -> None:
    exc = rejected(example("invalid-no-encounter"))
    assert [(e.path, e.type) for e in exc.errors] == [("entry", "no_encounter")]
    assert "dxops records are encounters" in exc.errors[0].message


def test_a_bundle_without_the_encounters_patient_is_rejected() -> None:
    exc = rejected(example("invalid-no-patient"))
    assert [(e.path, e.type) for e in exc.errors] == [("entry[1].resource.subject", "no_patient")]


# --- predictions -> RiskAssessment --------------------------------------------------------------

OCCURRENCE = dt.datetime(2024, 3, 14, 10, 30, tzinfo=dt.UTC)


def predict_response() -> PredictResponse:
    return PredictResponse(
        request_id="c0ffee00-1234-4abc-9def-0123456789ab",
        model_version="dxops-xgb-2024-03-01-v7",
        predictions=[
            Prediction(
                prediction_id="c0ffee00-1234-4abc-9def-0123456789ab:0",
                record_id="enc-2024-0001",
                diagnoses=[
                    PredictedDiagnosis(code="ORPHA:72", name="Angelman syndrome", probability=0.6125),
                    PredictedDiagnosis(code="ICD10:G40.9", name="Epilepsy, unspecified", probability=0.2213),
                    PredictedDiagnosis(code="OMIM:300672", probability=0.0417),
                ],
                rare_candidates=[PredictedDiagnosis(code="ORPHA:3451", name="West syndrome", probability=0.083)],
                contributions=[FeatureContribution(feature="HP:0001250", contribution=0.91)],
            ),
            Prediction(
                prediction_id="c0ffee00-1234-4abc-9def-0123456789ab:1",
                record_id="enc-a",
                diagnoses=[PredictedDiagnosis(code="ICD10:J45.9", probability=0.77)],
                rare_candidates=[],
                contributions=[],
            ),
        ],
    )


SUBJECTS = {"enc-2024-0001": {"reference": "Patient/123"}, "enc-a": {"reference": "Patient/ehr-9"}}


def test_risk_assessment_bundle_round_trips_through_fhir_resources() -> None:
    response = predict_response()
    basis = {"enc-2024-0001": [{"reference": "Encounter/enc-2024-0001"}]}
    document = risk_assessment_bundle(response, SUBJECTS, occurrence=OCCURRENCE, basis=basis)
    parsed = Bundle.model_validate_json(json.dumps(document))
    assert parsed.type == "collection"
    assert parsed.identifier is not None and parsed.identifier.value == response.request_id
    entries = parsed.entry or []
    assert len(entries) == len(response.predictions)
    assert len({entry.fullUrl for entry in entries}) == 2
    for prediction, entry in zip(response.predictions, entries, strict=True):
        assert isinstance(entry.resource, RiskAssessment)
        assert entry.resource.get_resource_type() == "RiskAssessment"
        resource: Any = entry.resource  # optional elements, present here
        assert resource.status == "final"
        assert resource.subject.reference == SUBJECTS[prediction.record_id]["reference"]
        assert [(i.system, i.value) for i in resource.identifier] == [
            ("urn:dxops:prediction", prediction.prediction_id)
        ]
        assert [(c.system, c.code) for c in resource.method.coding] == [
            ("urn:dxops:model-version", response.model_version)
        ]
        assert resource.occurrenceDateTime == OCCURRENCE
        served = [*prediction.diagnoses, *prediction.rare_candidates]
        outcomes = []
        for predicted in resource.prediction:
            [coding] = predicted.outcome.coding
            prefix = next(p for p, systems in CODE_SYSTEMS.items() if coding.system == systems[0])
            [kind] = predicted.extension
            assert kind.url == PREDICTION_KIND_URL
            outcomes.append((f"{prefix}:{coding.code}", float(predicted.probabilityDecimal), kind.valueCode))
        expected_kinds = ["ranked"] * len(prediction.diagnoses) + ["rare-candidate"] * len(prediction.rare_candidates)
        assert outcomes == [(d.code, d.probability, k) for d, k in zip(served, expected_kinds, strict=True)]
    first, second = (entry.resource for entry in entries)
    assert isinstance(first, RiskAssessment) and isinstance(second, RiskAssessment)
    assert [b.reference for b in first.basis or []] == ["Encounter/enc-2024-0001"]
    assert second.basis is None
    assert '"resourceType": "RiskAssessment"' in json.dumps(document)


def test_risk_assessment_shape_and_no_free_text() -> None:
    prediction = predict_response().predictions[0]
    resource = risk_assessment(
        prediction, subject={"reference": "Patient/123"}, model_version="v7", occurrence=OCCURRENCE
    )
    assert resource["resourceType"] == "RiskAssessment"
    assert resource["occurrenceDateTime"] == "2024-03-14T10:30:00Z"
    assert resource["prediction"][0]["outcome"] == {
        "coding": [{"system": "http://www.orpha.net", "code": "72", "display": "Angelman syndrome"}]
    }
    assert resource["prediction"][2]["outcome"] == {"coding": [{"system": "http://omim.org", "code": "300672"}]}
    assert not {"note", "text", "mitigation"} & set(resource)
    with pytest.raises(ValueError, match="no display"):
        risk_assessment(
            prediction,
            subject={"reference": "Patient/123", "display": NAME},
            model_version="v7",
            occurrence=OCCURRENCE,
        )
    with pytest.raises(ValueError, match="timezone"):
        risk_assessment(
            prediction, subject={"reference": "Patient/123"}, model_version="v7", occurrence=dt.datetime(2024, 1, 1)
        )
    with pytest.raises(ValueError, match="no subject"):
        risk_assessment_bundle(predict_response(), {"enc-a": {"reference": "Patient/1"}}, occurrence=OCCURRENCE)


def test_code_system_table_is_shared_both_ways() -> None:
    """A diagnosis mapped in from FHIR and written back out lands in the first URI of its system."""
    for prefix, systems in CODE_SYSTEMS.items():
        code = {"ICD10": "G40.9", "ORPHA": "72", "OMIM": "300672"}[prefix]
        for system in systems:
            document = example("encounter-full")
            document["entry"][4]["resource"]["code"] = {"coding": [{"system": system, "code": code}]}
            [result] = map_bundle(document, source=SOURCE)
            assert result.record["diagnosis"]["code"] == f"{prefix}:{code}"
            assert outcome_concept(result.record["diagnosis"]["code"]) == {
                "coding": [{"system": systems[0], "code": code}]
            }
    with pytest.raises(ValueError, match="not a dxops disease code"):
        outcome_concept("SNOMED:123")


def test_a_transaction_bundle_refers_to_its_patient_by_identifier() -> None:
    # As EHRs POST transactions: entries without ids (urn:uuid fullUrls), the Patient referred to by a
    # conditional reference, or by a logical reference (Reference.identifier).
    system, value = "http://hospital.example.org/mrn", "MRN-7781"
    patient = {"resourceType": "Patient", "identifier": [{"system": system, "value": value}], "gender": "male"}

    def transaction(subject: dict[str, Any]) -> dict[str, Any]:
        encounter = {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": subject,
            "period": {"start": "2025-02-03"},
        }
        return {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": "urn:uuid:0b7d3c52-9d1e-4a55-8f0e-1c2d3e4f5a60",
                    "resource": patient,
                    "request": {"method": "PUT", "url": f"Patient?identifier={system}|{value}"},
                },
                {
                    "fullUrl": "urn:uuid:6a1f9e20-3b4c-4d5e-8f60-718293a4b5c6",
                    "resource": encounter,
                    "request": {"method": "POST", "url": "Encounter"},
                },
            ],
        }

    for subject in (
        {"reference": f"Patient?identifier={system}|{value}"},
        {"identifier": {"system": system, "value": value}},
    ):
        [record] = map_bundle(transaction(subject), source=SOURCE)
        assert record.record["patient_id"] == f"{system}|{value}"
        assert record.record["record_id"] == "6a1f9e20-3b4c-4d5e-8f60-718293a4b5c6"  # no id: its urn:uuid
        assert record.subject == subject and record.encounter == {
            "reference": "urn:uuid:6a1f9e20-3b4c-4d5e-8f60-718293a4b5c6"
        }
        ClinicalRecord.model_validate(record.record)
