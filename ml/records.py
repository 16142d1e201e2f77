"""Clinical records (the API's ClinicalRecord JSON) -> rows of the training table's format.

The same rules as the Glue ETL (glue/dxops_etl): phenotypes 1 observed / -1 excluded / 0 not
recorded, observed terms propagated to their ancestors when the training table was (the ETL's
tables are; a hospital export may not be: model.json records which), labs and vitals converted
to their canonical unit by dxops.vocab.units (an unknown unit is missing, never guessed), history
codes as hx_<code> flags. Columns the record cannot fill (device aggregates) are missing.
Identifiers are never read: only the fields below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from dxops.vocab.hpo import canonical_hpo_id
from dxops.vocab.identifiers import HIPAA_AGE_CAP
from dxops.vocab.units import LABS, VITAL_LOINC, VITALS, convert
from ml.table import ColumnRoles

HISTORY_PREFIX = "hx_"  # the ETL's history columns (glue/dxops_etl/features.py)


class RecordError(ValueError):
    """A record is not a ClinicalRecord object (the message gives its position and the field)."""


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordError(f"{where}: expected a number")
    return float(value)


def current_term(term: str) -> str:
    """The term's current id (an obsolete or alternative id maps to its primary, as the API does)."""
    try:
        return canonical_hpo_id(term)
    except (ValueError, IndexError):
        return term  # unknown to the ontology: kept as it is (no column will match it)


def _value(value: float, loinc: str, unit: str) -> float | None:
    """In the canonical unit when dxops knows the LOINC code; as it is for a code of the table's
    own (a hospital's lab column: its unit is the table's); None for a known code's unknown unit."""
    if loinc in LABS or loinc in VITALS:
        return convert(value, loinc, unit)
    return value


def _phenotypes(
    phenotypes: Sequence[Any], ancestors: Callable[[str], Iterable[str]] | None, where: str
) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for index, phenotype in enumerate(phenotypes):
        if not isinstance(phenotype, Mapping) or not isinstance(phenotype.get("hpo_id"), str):
            raise RecordError(f"{where}.phenotypes[{index}]: expected {{'hpo_id': 'HP:nnnnnnn', 'status': ...}}")
        term, status = current_term(phenotype["hpo_id"]), phenotype.get("status", "observed")
        if status == "excluded":
            row.setdefault(term, -1)
            continue
        for implied in (term, *(ancestors(term) if ancestors else ())):
            row[implied] = 1  # observed wins over excluded, as in the ETL
    return row


def _age(record: Mapping[str, Any], where: str) -> float | None:
    """age_years, else the encounter's year minus birth_year, capped at 90 as ingestion caps it."""
    age = _number(record.get("age_years"), f"{where}.age_years")
    birth_year = _number(record.get("birth_year"), f"{where}.birth_year")
    encounter = str(record.get("encounter_date") or "")
    if age is None and birth_year is not None and encounter[:4].isdigit():
        age = float(min(max(int(encounter[:4]) - birth_year, 0), HIPAA_AGE_CAP))
    return age


def record_row(
    record: Mapping[str, Any],
    roles: ColumnRoles,
    ancestors: Callable[[str], Iterable[str]] | None,
    where: str = "record",
) -> dict[str, Any]:
    """One table row; `ancestors` given when the training table's phenotypes were expanded."""
    if not isinstance(record, Mapping):
        raise RecordError(f"{where}: expected a JSON object")
    columns = set(roles.features)
    row = _phenotypes(record.get("phenotypes") or [], ancestors, where)
    for index, lab in enumerate(record.get("labs") or []):
        value = _number(lab.get("value"), f"{where}.labs[{index}].value")
        if value is not None:
            row[str(lab.get("loinc"))] = _value(value, str(lab.get("loinc")), str(lab.get("unit")))
    for index, vital in enumerate(record.get("vitals") or []):
        value = _number(vital.get("value"), f"{where}.vitals[{index}].value")
        loinc = VITAL_LOINC.get(str(vital.get("name")))
        if loinc is not None and value is not None:
            row[loinc] = convert(value, loinc, str(vital.get("unit")))
    for code in record.get("history") or []:
        row[f"{HISTORY_PREFIX}{code}"] = 1
    row["age_years"] = _age(record, where)
    row["sex"] = record.get("sex") or "unknown"
    features = {name: value for name, value in row.items() if name in columns}
    for name in roles.numeric:  # a history flag the record does not have is 0, not missing
        if name.startswith(HISTORY_PREFIX):
            features.setdefault(name, 0)
    return features


def records_frame(
    records: Sequence[Mapping[str, Any]], roles: ColumnRoles, ancestors: Callable[[str], Iterable[str]] | None
) -> pd.DataFrame:
    """The rows in the training's columns, built as three typed blocks (thousands of phenotype
    columns: one numpy array, not one pandas column at a time)."""
    rows = [record_row(record, roles, ancestors, f"records[{i}]") for i, record in enumerate(records)]
    phenotype_at = {name: j for j, name in enumerate(roles.phenotypes)}
    numeric_at = {name: j for j, name in enumerate(roles.numeric)}
    phenotypes = np.zeros((len(rows), len(roles.phenotypes)), dtype=np.int8)
    numeric = np.full((len(rows), len(roles.numeric)), np.nan)
    categorical: dict[str, list[Any]] = {name: [None] * len(rows) for name in roles.categorical}
    for i, row in enumerate(rows):
        for name, value in row.items():
            if name in phenotype_at:
                phenotypes[i, phenotype_at[name]] = value
            elif name in numeric_at:
                numeric[i, numeric_at[name]] = np.nan if value is None else float(value)
            elif name in categorical:
                categorical[name][i] = value
    return pd.concat(
        [
            pd.DataFrame(phenotypes, columns=list(roles.phenotypes)),
            pd.DataFrame(numeric, columns=list(roles.numeric)),
            pd.DataFrame(categorical, columns=list(roles.categorical)),
        ],
        axis=1,
    )


def phenotypes_expanded(
    frame: pd.DataFrame, phenotypes: Sequence[str], parents: Callable[[str], Iterable[str]]
) -> bool:
    """Whether a table's observed terms come with their ancestors (checked on the parent columns
    the table has): decides whether records are expanded the same way at inference."""
    present = set(phenotypes)
    checked = agreeing = 0
    for term in phenotypes:
        observed = frame[term].to_numpy() == 1
        if not observed.any():
            continue
        for parent in parents(term):
            if parent in present:
                checked += 1
                agreeing += bool((frame[parent].to_numpy()[observed] == 1).all())
    return checked > 0 and agreeing / checked > 0.95
