"""Deliberately malformed records, each with the validation error it must cause.

For rejection-path tests: every defect but "duplicate" makes ClinicalRecord validation fail
at a known location (``loc``) with a known pydantic error type (``type``). A "duplicate" is a
valid record that reuses the previous record's record_id: the schema cannot see it; the
pipeline's deduplication must (downstream, by record_id).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cohorts.patients import record_id


@dataclass(frozen=True)
class Defect:
    name: str
    loc: str  # dotted location of the expected error ("" for duplicates)
    type: str  # pydantic error type expected there ("" for duplicates)
    edit: Callable[[dict[str, Any], int, int], None]  # (record, seed, index) -> None, in place


def _set(path: str, value: Any) -> Callable[[dict[str, Any], int, int], None]:
    def edit(record: dict[str, Any], _seed: int, _index: int) -> None:
        record[path] = value

    return edit


def _first_lab(field: str, value: Any) -> Callable[[dict[str, Any], int, int], None]:
    def edit(record: dict[str, Any], _seed: int, _index: int) -> None:
        if not record["labs"]:
            record["labs"] = [{"loinc": "2345-7", "value": 95.0, "unit": "mg/dL"}]
        record["labs"][0][field] = value

    return edit


def _first_phenotype(record: dict[str, Any], _seed: int, _index: int) -> None:
    record["phenotypes"] = [{"hpo_id": "HP:9999999", "status": "observed"}, *record["phenotypes"]]


def _unknown_system(record: dict[str, Any], _seed: int, _index: int) -> None:
    record["history"] = ["SNOMED:44054006", *record["history"]]


def _bad_icd10(record: dict[str, Any], _seed: int, _index: int) -> None:
    record["diagnosis"] = {"code": "ICD10:U07.1", "status": "confirmed"}  # U codes are not accepted


def _vital_out_of_range(record: dict[str, Any], _seed: int, _index: int) -> None:
    record["vitals"] = [{"name": "heart_rate", "value": 440, "unit": "/min"}, *record["vitals"]]


def _vital_wrong_unit(record: dict[str, Any], _seed: int, _index: int) -> None:
    record["vitals"] = [{"name": "heart_rate", "value": 80, "unit": "bpm"}, *record["vitals"]]


def _inverted_range(record: dict[str, Any], seed: int, index: int) -> None:
    _first_lab("reference_low", 500.0)(record, seed, index)
    record["labs"][0]["reference_high"] = 1.0


def _missing_date(record: dict[str, Any], _seed: int, _index: int) -> None:
    del record["encounter_date"]


def _duplicate(record: dict[str, Any], seed: int, index: int) -> None:
    record["record_id"] = record_id(seed, max(index - 1, 0))


DEFECTS: dict[str, Defect] = {
    defect.name: defect
    for defect in (
        Defect("wrong_type_age", "age_years", "float_parsing", _set("age_years", "forty")),
        Defect("wrong_type_phenotypes", "phenotypes", "list_type", _set("phenotypes", "HP:0001250")),
        Defect("wrong_type_lab_value", "labs.0.value", "float_type", _first_lab("value", [5.1])),
        Defect("unknown_hpo_term", "phenotypes.0.hpo_id", "value_error", _first_phenotype),
        Defect("unknown_code_system", "history.0", "string_pattern_mismatch", _unknown_system),
        Defect("invalid_icd10_code", "diagnosis.code", "value_error", _bad_icd10),
        Defect("bad_loinc_check_digit", "labs.0.loinc", "value_error", _first_lab("loinc", "2345-8")),
        Defect("age_out_of_range", "age_years", "less_than_equal", _set("age_years", 150.0)),
        Defect("vital_out_of_range", "vitals.0", "value_error", _vital_out_of_range),
        Defect("vital_wrong_unit", "vitals.0.unit", "literal_error", _vital_wrong_unit),
        Defect("encounter_in_future", "", "value_error", _set("encounter_date", "2199-01-01")),
        Defect("reference_range_inverted", "labs.0", "value_error", _inverted_range),
        Defect("free_text", "", "value_error", _set("notes", "simulated free text")),
        Defect("missing_encounter_date", "encounter_date", "missing", _missing_date),
        Defect("duplicate", "", "", _duplicate),
    )
}
INVALID = tuple(name for name in DEFECTS if name != "duplicate")


def malformed_choice(seed: int, index: int, rate: float) -> str | None:
    """The defect of record ``index`` (None: valid). Two draws whatever the rate, so a record
    malformed at one rate is malformed the same way at any higher rate."""
    rng = random.Random(f"dxops-cohort:{seed}:{index}:malformed")
    draw, name = rng.random(), rng.choice(sorted(DEFECTS))
    if index == 0 and name == "duplicate":
        name = INVALID[0]  # the first record has no predecessor to duplicate
    return name if draw < rate else None


def damage(record: dict[str, Any], defect: str, seed: int, index: int) -> dict[str, Any]:
    """A damaged copy of a valid record."""
    broken = copy.deepcopy(record)
    DEFECTS[defect].edit(broken, seed, index)
    return broken


def ground_truth(line: int, index: int, defect: str, record: dict[str, Any]) -> dict[str, Any]:
    """One entry of the ground-truth list (no patient identifier)."""
    spec = DEFECTS[defect]
    return {
        "line": line,
        "index": index,
        "record_id": record.get("record_id"),
        "defect": defect,
        "valid": defect == "duplicate",
        "expected_loc": spec.loc,
        "expected_type": spec.type,
    }
