"""ClinicalRecord JSON -> the training table's row (ml/records.py): the ETL's rules in plain Python."""

from __future__ import annotations

import math

import pytest

from ml.knowledge import default_model
from ml.records import RecordError, record_row, records_frame
from ml.table import ColumnRoles

SEIZURE, FOCAL = "HP:0001250", "HP:0007359"  # focal-onset seizure is_a seizure
ROLES = ColumnRoles(
    phenotypes=(SEIZURE, FOCAL, "HP:0000822"),
    numeric=("age_years", "2345-7", "8867-4", "hx_ICD10:E11.9", "dev_readings"),
    categorical=("sex",),
)


def test_units_are_converted_and_unknown_units_are_missing() -> None:
    row = record_row(
        {
            "labs": [{"loinc": "2345-7", "value": 10.0, "unit": "mmol/L"}],
            "vitals": [{"name": "heart_rate", "value": 80, "unit": "/min"}],
        },
        ROLES,
        None,
    )
    assert row["2345-7"] == pytest.approx(180.16) and row["8867-4"] == 80
    unknown = record_row({"labs": [{"loinc": "2345-7", "value": 10.0, "unit": "furlongs"}]}, ROLES, None)
    assert unknown["2345-7"] is None


def test_phenotypes_history_and_defaults() -> None:
    ancestors = default_model().ancestors
    record = {
        "phenotypes": [
            {"hpo_id": FOCAL},
            {"hpo_id": SEIZURE, "status": "excluded"},
            {"hpo_id": "HP:0000822", "status": "excluded"},
        ],
        "history": ["ICD10:E11.9"],
    }
    expanded = record_row(record, ROLES, ancestors)
    assert expanded[FOCAL] == 1 and expanded[SEIZURE] == 1  # observed through a descendant wins over excluded
    assert expanded["HP:0000822"] == -1 and expanded["hx_ICD10:E11.9"] == 1 and expanded["sex"] == "unknown"
    assert record_row(record, ROLES, None)[SEIZURE] == -1  # a table that was not expanded
    assert record_row({}, ROLES, None)["hx_ICD10:E11.9"] == 0  # absent history is 0, not missing


def test_a_frame_has_the_training_columns_and_missing_values() -> None:
    frame = records_frame([{"phenotypes": [{"hpo_id": FOCAL}]}, {"age_years": 40, "sex": "male"}], ROLES, None)
    assert list(frame.columns) == list(ROLES.features)
    assert frame[FOCAL].tolist() == [1, 0] and str(frame[FOCAL].dtype) == "int8"
    assert math.isnan(frame.loc[0, "dev_readings"]) and frame.loc[1, "age_years"] == 40


@pytest.mark.parametrize(
    ("record", "where"),
    [
        ({"phenotypes": ["HP:0001250"]}, r"records\[0\]\.phenotypes\[0\]"),
        ({"labs": [{"loinc": "2345-7", "value": "high", "unit": "mg/dL"}]}, r"records\[0\]\.labs\[0\]\.value"),
        ({"age_years": True}, r"records\[0\]\.age_years"),
        ("not a record", r"records\[0\]: expected a JSON object"),
    ],
)
def test_a_bad_record_names_the_field(record: object, where: str) -> None:
    with pytest.raises(RecordError, match=where):
        records_frame([record], ROLES, None)  # type: ignore[list-item]


def test_age_from_birth_year_obsolete_terms_and_a_hospital_lab() -> None:
    roles = ColumnRoles(phenotypes=("HP:0012823",), numeric=("age_years", "99999-9"), categorical=())
    row = record_row(
        {
            "encounter_date": "2026-03-01",
            "birth_year": 1920,  # 106 years: capped as ingestion caps it
            "phenotypes": [{"hpo_id": "HP:0000004"}],  # an alternative id of HP:0012823
            "labs": [{"loinc": "99999-9", "value": 4.2, "unit": "mmol/L"}],  # a code of the table's own
        },
        roles,
        None,
    )
    assert row == {"age_years": 90.0, "HP:0012823": 1, "99999-9": 4.2}
    assert record_row({"encounter_date": "2026-03-01", "birth_year": 1980}, roles, None)["age_years"] == 46.0
