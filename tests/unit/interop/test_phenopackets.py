"""GA4GH Phenopacket v2 -> ClinicalRecord (docs/interop-phenopackets.md), on hand-written examples."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.json_format import ParseError

from dxops.interop import DocumentRejected, MappedRecord
from dxops.interop import phenopackets as mapper
from dxops.interop.phenopackets import ONSET_CLASS_START_YEARS, map_phenopacket, phenopackets_in
from dxops.schemas.clinical import ClinicalRecord
from dxops.vocab.hpo import hpo_index

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "phenopackets"
SOURCE = "site-a"
VALID = ["marfan_full", "dob_only_no_sex", "unknown_codes", "orpha_disease"]


def example(name: str) -> Any:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def mapped(name: str) -> MappedRecord:
    return map_phenopacket(example(name), source=SOURCE)


def note_paths(result: MappedRecord) -> set[str]:
    return {note.path for note in result.notes}


def phenotype_map(result: MappedRecord) -> dict[str, tuple[str, float | None]]:
    return {p["hpo_id"]: (p["status"], p.get("onset_age_years")) for p in result.record.get("phenotypes", [])}


def minimal(**extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "pp-min-1",
        "subject": {"id": "patient-min-1"},
        "metaData": {"created": "2024-01-10T09:00:00Z", "phenopacketSchemaVersion": "2.0"},
    }
    doc.update(extra)
    return doc


def feature_with_onset(onset: dict[str, Any], **subject: Any) -> MappedRecord:
    doc = minimal(phenotypicFeatures=[{"type": {"id": "HP:0001250"}, "onset": onset}])
    doc["subject"].update(subject)
    return map_phenopacket(doc, source=SOURCE)


# --- the examples --------------------------------------------------------------------------------


def test_full_marfan_case() -> None:
    result = mapped("marfan_full")
    record = result.record
    assert result.origin == "pp-marfan-0001"
    assert {k: record[k] for k in ("record_id", "patient_id", "source", "encounter_date", "sex", "age_years")} == {
        "record_id": "pp-marfan-0001",
        "patient_id": "patient-m-0001",
        "source": SOURCE,
        "encounter_date": "2024-03-14",  # metaData.created: the last encounter is an age
        "sex": "female",
        "age_years": 36.0,
    }
    assert "birth_year" not in record
    assert phenotype_map(result) == {
        "HP:0001166": ("observed", 1.0),  # Childhood onset: 1 to 5 years
        "HP:0001083": ("observed", 8.0),  # age P8Y
        "HP:0002616": ("observed", 30.0),  # ageRange P30Y-P35Y: its start
        "HP:0001519": ("observed", 0.0),  # Congenital onset
        "HP:0001065": ("observed", 5.0),  # Juvenile onset: 5 to 15 years
        "HP:0001659": ("excluded", None),
        "HP:0002107": ("excluded", None),
    }
    assert record["diagnosis"] == {"code": "OMIM:154700", "status": "confirmed"}
    assert "history" not in record  # diseases[0] is the diagnosis itself
    assert record["labs"] == [
        {"loinc": "2093-3", "value": 182.0, "unit": "mg/dL", "reference_low": 100.0, "reference_high": 200.0}
    ]
    assert record["vitals"] == [
        {"name": "systolic_bp", "value": 118.0, "unit": "mm[Hg]"},
        {"name": "body_height", "value": 188.5, "unit": "cm"},
    ]
    assert note_paths(result) == {
        "subject.alternateIds",
        "subject.vitalStatus",
        "subject.karyotypicSex",
        "subject.taxonomy",
        "phenotypicFeatures[1].severity",
        "phenotypicFeatures[2].evidence",
        "phenotypicFeatures[4].description",
        "interpretations[0].diagnosis.genomicInterpretations",
        "diseases[0].onset",
        "measurements[0].timeObserved",
        "biosamples",
    }
    assert len(result.notes) == len(note_paths(result))  # one note per unmapped part
    reasons = {note.path: note.reason for note in result.notes}
    assert "free text" in reasons["phenotypicFeatures[4].description"]
    assert "direct identifier" in reasons["subject.alternateIds"]
    assert "mrn-invented" not in json.dumps([n.reason for n in result.notes])


def test_date_of_birth_only_keeps_its_year_and_sex_is_unknown() -> None:
    result = mapped("dob_only_no_sex")
    record = result.record
    assert record["sex"] == "unknown"
    assert record["birth_year"] == 1988
    assert "age_years" not in record
    assert record["encounter_date"] == "2023-11-02"  # metaData.created
    seizure_onset = round((dt.date(1995, 10, 12) - dt.date(1988, 4, 12)).days / 365.25, 4)
    assert phenotype_map(result) == {
        "HP:0001250": ("observed", seizure_onset),  # timestamp onset: years since the date of birth
        "HP:0001382": ("observed", round(28 / 365.25, 4)),  # Infantile onset: from 28 days
        "HP:0002650": ("observed", 3.5),  # P3Y6M
        "HP:0001763": ("observed", 0.8333),  # P10M
    }
    assert note_paths(result) == {"subject.dateOfBirth"}
    assert "1988-04-12" not in json.dumps(record) and "04-12" not in json.dumps(record)


def test_unknown_codes_become_notes() -> None:
    result = mapped("unknown_codes")
    record = result.record
    assert record["encounter_date"] == "2023-05-20"  # timeAtLastEncounter.timestamp wins over metaData.created
    assert record["sex"] == "male"
    assert phenotype_map(result) == {
        "HP:0000527": ("observed", None),  # HP:0000500 is an alternative id of HP:0000527
        "HP:0001250": ("observed", None),  # onset class "Onset" has no range
        "HP:0002650": ("observed", None),  # timestamp onset without a date of birth
        "HP:0001763": ("observed", None),  # not a duration
    }
    assert not {"diagnosis", "history", "labs", "vitals", "age_years", "birth_year"} & record.keys()
    assert note_paths(result) == {
        "phenotypicFeatures[0].type",  # HP:9999999: not in HPO
        "phenotypicFeatures[1].type",  # NCIT
        "phenotypicFeatures[3].onset",
        "phenotypicFeatures[4].onset",
        "phenotypicFeatures[5].onset",
        "diseases[0].term",  # MONDO
        "diseases[1]",  # excluded
        "diseases[2].term",  # not a valid OMIM number
        "measurements[0].assay",  # NCIT assay
        "measurements[1].assay",  # LOINC check digit
        "measurements[2].value.quantity",  # heart rate 900: implausible
        "measurements[3].value",  # coded value
        "measurements[4].value.quantity.unit",  # UO unit
    }
    reasons = {note.path: note.reason for note in result.notes}
    assert "unknown HPO term HP:9999999" in reasons["phenotypicFeatures[0].type"]
    assert "MONDO" in reasons["diseases[0].term"]
    assert "check digit" in reasons["measurements[1].assay"]
    assert "plausible range" in reasons["measurements[2].value.quantity"]
    assert "900" not in reasons["measurements[2].value.quantity"]  # never a patient value
    assert "eleven" not in json.dumps([n.reason for n in result.notes])


def test_orpha_diseases() -> None:
    result = mapped("orpha_disease")
    record = result.record
    assert record["diagnosis"] == {"code": "ORPHA:98896", "status": "confirmed"}  # ORPHANET:98896
    assert record["history"] == ["ORPHA:262"]  # Orphanet:262, the second disease
    assert record["sex"] == "male"
    assert record["age_years"] == round(14 / 365.25, 2)  # P2W (2 decimals under 2 years)
    assert record["encounter_date"] == "2022-07-19"
    assert phenotype_map(result) == {"HP:0003202": ("observed", 0.0)}  # Neonatal onset
    assert note_paths(result) == {
        "diseases[1].term",  # kept in history
        "diseases[2]",  # excluded
        "interpretations[0].diagnosis.disease",  # IN_PROGRESS: suspected, but a diagnosis is confirmed
    }
    assert "history" in {n.path: n.reason for n in result.notes}["diseases[1].term"]


def test_cohort_members() -> None:
    documents = phenopackets_in(example("cohort_two_members"))
    assert [d["id"] for d in documents] == ["pp-cohort-0005-a", "pp-cohort-0005-b"]
    first, second = (map_phenopacket(d, source=SOURCE) for d in documents)
    assert first.record == {
        "record_id": "pp-cohort-0005-a",
        "patient_id": "patient-c-0005a",
        "source": SOURCE,
        "encounter_date": "2021-09-01",
        "sex": "female",
        "age_years": 45.0,
        "phenotypes": [{"hpo_id": "HP:0001166", "status": "observed"}],
        "diagnosis": {"code": "OMIM:154700", "status": "confirmed"},
    }
    assert second.record == {
        "record_id": "pp-cohort-0005-b",
        "patient_id": "patient-c-0005b",
        "source": SOURCE,
        "encounter_date": "2021-09-02",
        "sex": "other",
        "age_years": round(5 / 365.25, 2),  # P5D (2 decimals under 2 years)
        "phenotypes": [{"hpo_id": "HP:0001250", "status": "excluded"}],
    }
    assert first.notes == second.notes == []


@pytest.mark.parametrize("name", VALID)
def test_mapped_records_are_valid_clinical_records_without_none(name: str) -> None:
    record = mapped(name).record
    ClinicalRecord.model_validate(record)

    def values(value: Any) -> list[Any]:
        if isinstance(value, dict):
            return [v for item in value.values() for v in [item, *values(item)]]
        if isinstance(value, list):
            return [v for item in value for v in [item, *values(item)]]
        return []

    assert None not in values(record)
    assert all(value != [] for value in record.values())


def test_cohort_members_are_valid_clinical_records() -> None:
    for document in phenopackets_in(example("cohort_two_members")):
        ClinicalRecord.model_validate(map_phenopacket(document, source=SOURCE).record)


def test_example_hpo_ids_are_known_to_the_index() -> None:
    terms = hpo_index().terms
    for name in ["marfan_full", "dob_only_no_sex", "orpha_disease"]:
        for feature in example(name)["phenotypicFeatures"]:
            assert int(feature["type"]["id"][3:]) in terms
    assert all(int(term[3:]) in terms for term in ONSET_CLASS_START_YEARS)


# --- invalid documents ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("invalid_unknown_field", [("subject", "extra_forbidden")]),
        ("invalid_wrong_type", [("phenotypicFeatures[1].excluded", "wrong_type")]),
        ("invalid_no_subject_id", [("subject.id", "missing")]),
        ("invalid_no_dates", [("subject.timeAtLastEncounter", "missing")]),
        ("invalid_not_an_object", [("(root)", "wrong_type")]),
    ],
)
def test_invalid_examples_are_rejected_with_paths(name: str, expected: list[tuple[str, str]]) -> None:
    document = example(name)
    with pytest.raises(DocumentRejected) as caught:
        map_phenopacket(document, source=SOURCE)
    assert [(e.path, e.type) for e in caught.value.errors] == expected
    text = str(caught.value)
    assert "Jane" not in text and "yes" not in text


def test_reasons_are_clear() -> None:
    with pytest.raises(DocumentRejected) as caught:
        map_phenopacket(example("invalid_no_subject_id"), source=SOURCE)
    assert str(caught.value) == "subject.id: subject.id is required: dxops pseudonymises it"
    with pytest.raises(DocumentRejected) as caught:
        map_phenopacket(example("invalid_unknown_field"), source=SOURCE)
    assert str(caught.value) == "subject: not a Phenopacket v2 document: a field this schema does not define"
    with pytest.raises(DocumentRejected) as caught:
        map_phenopacket(minimal(id=""), source=SOURCE)
    assert [e.path for e in caught.value.errors] == ["id"]


@pytest.mark.parametrize("document", [None, 42, "text", [], [{"id": "x"}], True])
def test_non_objects_are_rejected(document: Any) -> None:
    with pytest.raises(DocumentRejected) as caught:
        map_phenopacket(document, source=SOURCE)
    assert [(e.path, e.type) for e in caught.value.errors] == [("(root)", "wrong_type")]


NAME = "Jane Invented-Doe"
DOB = "1961-07-23"


def _planted() -> list[tuple[str, dict[str, Any]]]:
    """Documents with a name and a date of birth where they don't belong (key or value)."""
    base = example("marfan_full")
    cases: list[tuple[str, dict[str, Any]]] = []

    def case(label: str, change: Any) -> None:
        document = copy.deepcopy(base)
        change(document)
        cases.append((label, document))

    case("unknown key at the root", lambda d: d.update({NAME: DOB}))
    case("unknown key in subject", lambda d: d["subject"].update({NAME: DOB, "dob": DOB}))
    case("unknown key in a feature", lambda d: d["phenotypicFeatures"][0].update({DOB: NAME}))
    case("unknown key in metaData", lambda d: d["metaData"].update({"patientName": NAME}))
    case("name for a boolean", lambda d: d["phenotypicFeatures"][1].update(excluded=NAME))
    case("name for an enum", lambda d: d["subject"].update(sex=NAME))
    case("date for a timestamp", lambda d: d["subject"].update(dateOfBirth=DOB))
    case("name for a timestamp", lambda d: d["metaData"].update(created=NAME))
    case("name for a number", lambda d: d["measurements"][0]["value"]["quantity"].update(value=NAME))
    case("name for an object", lambda d: d.update(subject=NAME))
    case("name for an array", lambda d: d.update(phenotypicFeatures=NAME))
    case("date in an array", lambda d: d["phenotypicFeatures"].append(DOB))
    case("name for an integer", lambda d: d["subject"]["vitalStatus"].update(survivalTimeInDays=NAME))
    case("name as a map key", lambda d: d.update(files=[{"uri": "file:///x", "fileAttributes": {NAME: 7}}]))
    case("name for text", lambda d: d.update(id=[NAME, DOB]))
    return cases


@pytest.mark.parametrize(("label", "document"), _planted(), ids=[label for label, _ in _planted()])
def test_no_phi_in_rejections(label: str, document: dict[str, Any]) -> None:
    with pytest.raises(DocumentRejected) as caught:
        map_phenopacket(document, source=SOURCE)
    told = [str(caught.value), *(json.dumps(e.model_dump()) for e in caught.value.errors)]
    for secret in (NAME, DOB, "Jane", "1961", "patientName", "dob"):
        assert all(secret not in text for text in told), (label, told)
    assert caught.value.errors


def test_no_phi_in_a_mapped_document() -> None:
    document = example("marfan_full")
    document["subject"]["dateOfBirth"] = f"{DOB}T00:00:00Z"
    document["phenotypicFeatures"][4]["description"] = f"{NAME}, born {DOB}"
    document["phenotypicFeatures"][0]["type"]["label"] = NAME
    document["interpretations"][0]["summary"] = NAME
    document["subject"]["alternateIds"] = [NAME]
    document["metaData"]["createdBy"] = NAME
    document["diseases"].append({"term": {"id": f"{NAME}:{DOB}"}})
    document["phenotypicFeatures"].append({"type": {"id": NAME}})
    document["measurements"].append({"assay": {"id": DOB}, "value": {"quantity": {"value": 1}}})
    result = map_phenopacket(document, source=SOURCE)
    assert result.record["birth_year"] == 1961
    told = json.dumps([result.record, [(n.path, n.reason) for n in result.notes]])
    for secret in (NAME, DOB, "Jane", "07-23"):
        assert secret not in told
    ClinicalRecord.model_validate(result.record)


def test_protobuf_messages_are_never_passed_on(monkeypatch: pytest.MonkeyPatch) -> None:
    def parse(document: Any, message: Any) -> Any:
        raise ParseError(f'Message type "Phenopacket" has no field named "{NAME}": {DOB}')

    monkeypatch.setattr(mapper, "ParseDict", parse)
    with pytest.raises(DocumentRejected) as caught:
        map_phenopacket(example("marfan_full"), source=SOURCE)
    assert [(e.path, e.type) for e in caught.value.errors] == [("(root)", "invalid")]
    assert NAME not in str(caught.value) and DOB not in str(caught.value)


def test_schema_errors() -> None:
    def errors(document: dict[str, Any]) -> list[tuple[str, str]]:
        with pytest.raises(DocumentRejected) as caught:
            map_phenopacket(document, source=SOURCE)
        return [(e.path, e.type) for e in caught.value.errors]

    both = {"age": {"iso8601duration": "P1Y"}, "timestamp": "2020-01-01T00:00:00Z"}
    assert errors(minimal(subject={"id": "p", "timeAtLastEncounter": both})) == [
        ("subject.timeAtLastEncounter", "oneof")
    ]
    assert errors(minimal(phenotypicFeatures=[], phenotypic_features=[])) == [("phenotypicFeatures", "duplicate")]
    assert errors(minimal(phenotypicFeatures=[None])) == [("phenotypicFeatures[0]", "wrong_type")]
    assert errors(minimal(subject={"id": "p", "sex": 9})) == [("subject.sex", "wrong_type")]
    assert errors(minimal(subject={"id": "p", "vitalStatus": {"survivalTimeInDays": -1}})) == [
        ("subject.vitalStatus.survivalTimeInDays", "wrong_type")
    ]
    two_unknown = minimal(phenotypicFeatures=[{"type": {"id": "HP:0001250"}, "a": 1, "b": 2}])
    with pytest.raises(DocumentRejected) as caught:
        map_phenopacket(two_unknown, source=SOURCE)
    assert (
        str(caught.value)
        == "phenotypicFeatures[0]: not a Phenopacket v2 document: 2 fields this schema does not define"
    )


def test_proto_field_names_and_integer_enums_are_read() -> None:
    doc = minimal(phenotypic_features=[{"type": {"id": "HP:0001250"}, "excluded": True}])
    doc["subject"]["sex"] = 2
    doc["meta_data"] = doc.pop("metaData")
    result = map_phenopacket(doc, source=SOURCE)
    assert result.record["sex"] == "male"
    assert result.record["phenotypes"] == [{"hpo_id": "HP:0001250", "status": "excluded"}]


# --- mapping details -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "years"),
    [
        ("P45Y", 45.0),
        # whole years from 2 on, 2 decimals below (with the encounter date, finer ages give the birth date away)
        ("P3Y6M", 3.0),
        ("P10M", 0.83),
        ("P2W", 0.04),
        ("P5D", 0.01),
        ("P1Y2M3D", round(1 + 2 / 12 + 3 / 365.25, 2)),
        ("P0D", 0.0),
        ("P1.5Y", 1.5),
    ],
)
def test_age_durations(duration: str, years: float) -> None:
    doc = minimal()
    doc["subject"]["timeAtLastEncounter"] = {"age": {"iso8601duration": duration}}
    assert map_phenopacket(doc, source=SOURCE).record["age_years"] == years


@pytest.mark.parametrize("duration", ["P", "45Y", "P45", "PT", "P1Y-2M", "forty years", ""])
def test_bad_durations_are_notes(duration: str) -> None:
    doc = minimal()
    doc["subject"]["timeAtLastEncounter"] = {"age": {"iso8601duration": duration}}
    result = map_phenopacket(doc, source=SOURCE)
    assert "age_years" not in result.record
    assert note_paths(result) == {"subject.timeAtLastEncounter.age"}
    assert result.notes[0].reason == "not mapped: not an ISO 8601 duration (P45Y, P3Y6M...)"


@pytest.mark.parametrize(
    ("onset_class", "years"),
    [
        ("HP:0030674", 0.0),  # antenatal
        ("HP:0011461", 0.0),  # fetal
        ("HP:0003577", 0.0),  # congenital
        ("HP:0003623", 0.0),  # neonatal
        ("HP:0003593", 0.0767),  # infantile: 28 days
        ("HP:0410280", 0.0767),  # pediatric: after the neonatal period
        ("HP:0011463", 1.0),  # childhood
        ("HP:0003621", 5.0),  # juvenile
        ("HP:0003581", 16.0),  # adult
        ("HP:0011462", 16.0),  # young adult
        ("HP:0025709", 19.0),  # intermediate young adult
        ("HP:0003596", 40.0),  # middle age
        ("HP:0003584", 60.0),  # late
    ],
)
def test_onset_classes_give_the_start_of_their_range(onset_class: str, years: float) -> None:
    result = feature_with_onset({"ontologyClass": {"id": onset_class}})
    assert phenotype_map(result) == {"HP:0001250": ("observed", years)}
    assert result.notes == []


def test_other_onsets() -> None:
    gestational = feature_with_onset({"gestationalAge": {"weeks": 30}})
    assert phenotype_map(gestational) == {"HP:0001250": ("observed", 0.0)}
    interval = {"interval": {"start": "2020-01-01T00:00:00Z", "end": "2021-01-01T00:00:00Z"}}
    assert note_paths(feature_with_onset(interval)) == {"phenotypicFeatures[0].onset"}
    before_birth = feature_with_onset({"timestamp": "1999-01-01T00:00:00Z"}, dateOfBirth="2000-01-01T00:00:00Z")
    assert phenotype_map(before_birth) == {"HP:0001250": ("observed", None)}
    assert note_paths(before_birth) == {"phenotypicFeatures[0].onset", "subject.dateOfBirth"}
    no_start = feature_with_onset({"ageRange": {"end": {"iso8601duration": "P5Y"}}})
    assert note_paths(no_start) == {"phenotypicFeatures[0].onset"}


def test_an_implausible_onset_is_left_out_and_the_phenotype_kept() -> None:
    result = feature_with_onset({"age": {"iso8601duration": "P200Y"}})
    assert phenotype_map(result) == {"HP:0001250": ("observed", None)}
    assert note_paths(result) == {"phenotypicFeatures[0].onset"}
    assert "200" not in result.notes[0].reason


def _with_interpretations(*interpretations: tuple[str, str], diseases: tuple[str, ...] = ()) -> MappedRecord:
    doc = minimal(
        interpretations=[
            {"id": f"i{n}", "progressStatus": status, "diagnosis": {"disease": {"id": code}}}
            for n, (status, code) in enumerate(interpretations)
        ],
        diseases=[{"term": {"id": code}} for code in diseases],
    )
    return map_phenopacket(doc, source=SOURCE)


def test_a_solved_interpretation_takes_precedence() -> None:
    result = _with_interpretations(("SOLVED", "OMIM:154700"), diseases=("ORPHA:98896",))
    assert result.record["diagnosis"] == {"code": "OMIM:154700", "status": "confirmed"}
    assert result.record["history"] == ["ORPHA:98896"]
    assert note_paths(result) == {"diseases[0].term"}


def test_two_solved_interpretations() -> None:
    result = _with_interpretations(("SOLVED", "OMIM:154700"), ("SOLVED", "ORPHA:262"))
    assert result.record["diagnosis"] == {"code": "OMIM:154700", "status": "confirmed"}
    assert result.record["history"] == ["ORPHA:262"]
    assert note_paths(result) == {"interpretations[1].diagnosis.disease"}


@pytest.mark.parametrize("status", ["IN_PROGRESS", "COMPLETED", "UNKNOWN_PROGRESS"])
def test_an_open_interpretation_is_suspected_when_nothing_is_confirmed(status: str) -> None:
    result = _with_interpretations((status, "ORPHA:98896"), (status, "OMIM:154700"))
    assert result.record["diagnosis"] == {"code": "ORPHA:98896", "status": "suspected"}
    assert "history" not in result.record
    assert note_paths(result) == {"interpretations[1].diagnosis.disease"}


def test_an_unsolved_interpretation_is_no_diagnosis() -> None:
    # UNSOLVED: the case was closed without a diagnosis; its disease was considered, not established
    result = _with_interpretations(("UNSOLVED", "ORPHA:98896"))
    assert "diagnosis" not in result.record
    assert note_paths(result) == {"interpretations[0].diagnosis.disease"}


def test_diseases_confirm_over_suspected_interpretations() -> None:
    result = _with_interpretations(("IN_PROGRESS", "OMIM:154700"), diseases=("OMIM:154700", "ICD10:E11.9"))
    assert result.record["diagnosis"] == {"code": "OMIM:154700", "status": "confirmed"}
    assert result.record["history"] == ["ICD10:E11.9"]
    assert note_paths(result) == {"diseases[1].term"}  # the suspected one is the diagnosis itself


def test_genomic_interpretations_and_summary_are_notes() -> None:
    doc = minimal(
        interpretations=[
            {
                "id": "i1",
                "progressStatus": "SOLVED",
                "summary": "invented summary text",
                "diagnosis": {
                    "disease": {"id": "OMIM:154700"},
                    "genomicInterpretations": [{"subjectOrBiosampleId": "s", "interpretationStatus": "CAUSATIVE"}],
                },
            }
        ]
    )
    result = map_phenopacket(doc, source=SOURCE)
    assert result.record["diagnosis"] == {"code": "OMIM:154700", "status": "confirmed"}
    assert note_paths(result) == {"interpretations[0].summary", "interpretations[0].diagnosis.genomicInterpretations"}


def _lab(quantity: dict[str, Any], assay: str = "LOINC:2093-3") -> MappedRecord:
    return map_phenopacket(
        minimal(measurements=[{"assay": {"id": assay}, "value": {"quantity": quantity}}]), source=SOURCE
    )


def test_reference_ranges() -> None:
    mg = {"id": "UCUM:mg/dL"}
    other_unit = _lab({"unit": mg, "value": 180, "referenceRange": {"unit": {"id": "UCUM:mmol/L"}, "high": 5.2}})
    assert other_unit.record["labs"] == [{"loinc": "2093-3", "value": 180.0, "unit": "mg/dL"}]
    assert note_paths(other_unit) == {"measurements[0].value.quantity.referenceRange"}
    reversed_range = _lab({"unit": mg, "value": 180, "referenceRange": {"unit": mg, "low": 300, "high": 200}})
    assert reversed_range.record["labs"] == [{"loinc": "2093-3", "value": 180.0, "unit": "mg/dL"}]
    assert note_paths(reversed_range) == {"measurements[0].value.quantity.referenceRange"}
    only_high = _lab({"unit": mg, "value": 180, "referenceRange": {"unit": mg, "high": 200}})
    assert only_high.record["labs"][0]["reference_low"] == 0.0  # proto3: an absent bound is 0


def test_vitals() -> None:
    heart_rate = _lab({"unit": {"id": "UCUM:/min"}, "value": 72, "referenceRange": {"high": 100}}, "LOINC:8867-4")
    assert heart_rate.record["vitals"] == [{"name": "heart_rate", "value": 72.0, "unit": "/min"}]
    assert note_paths(heart_rate) == {"measurements[0].value.quantity.referenceRange"}
    wrong_unit = _lab({"unit": {"id": "UCUM:Cel"}, "value": 72}, "LOINC:8867-4")
    assert "vitals" not in wrong_unit.record
    assert note_paths(wrong_unit) == {"measurements[0].value.quantity"}  # the unit is not one of heart_rate's
    not_finite = _lab({"unit": {"id": "UCUM:/min"}, "value": "NaN"}, "LOINC:8867-4")
    assert "vitals" not in not_finite.record
    assert note_paths(not_finite) == {"measurements[0].value.quantity.value"}


def test_unused_parts_are_one_note_each() -> None:
    doc = minimal(
        medicalActions=[{"treatment": {"agent": {"id": "DrugCentral:1610"}}}],
        files=[{"uri": "file:///data/genome.vcf.gz"}],
    )
    doc["subject"].update(gender={"id": "X:1"}, karyotypicSex="XY", alternateIds=["a", "b"])
    result = map_phenopacket(doc, source=SOURCE)
    assert [n.path for n in result.notes] == [
        "subject.alternateIds",
        "subject.karyotypicSex",
        "subject.gender",
        "medicalActions",
        "files",
    ]


def test_a_disease_with_its_parts() -> None:
    doc = minimal(
        diseases=[
            {
                "term": {"id": "ORPHA:558"},
                "diseaseStage": [{"id": "NCIT:C28554"}],
                "laterality": {"id": "HP:0012834"},
            },
            {"term": {"id": "MONDO:0007947"}, "laterality": {"id": "HP:0012834"}},
        ]
    )
    result = map_phenopacket(doc, source=SOURCE)
    assert result.record["diagnosis"] == {"code": "ORPHA:558", "status": "confirmed"}
    assert [n.path for n in result.notes] == ["diseases[0].diseaseStage", "diseases[0].laterality", "diseases[1].term"]


# --- phenopackets_in -----------------------------------------------------------------------------


def test_phenopackets_in() -> None:
    one = example("marfan_full")
    assert phenopackets_in(one) == [one]
    assert phenopackets_in([one, one]) == [one, one]
    assert len(phenopackets_in(example("cohort_two_members"))) == 2
    assert phenopackets_in({"members": "not a list"}) == []
    assert phenopackets_in({"members": [], "subject": {"id": "p"}}) == [{"members": [], "subject": {"id": "p"}}]
    assert phenopackets_in("text") == [] and phenopackets_in(None) == []
    assert phenopackets_in([]) == []


def test_a_family_is_its_proband_and_relatives_with_the_family_provenance() -> None:
    proband, relative = example("cohort_two_members")["members"]
    shared = proband.pop("metaData")
    relative.pop("metaData", None)
    family = {"id": "family-1", "proband": proband, "relatives": [relative], "metaData": shared}
    documents = phenopackets_in(family)
    assert [d["id"] for d in documents] == [proband["id"], relative["id"]]
    assert all(d["metaData"] == shared for d in documents)  # members without metaData take the family's
    for document in documents:
        ClinicalRecord.model_validate(map_phenopacket(document, source=SOURCE).record)
