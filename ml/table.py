"""The training table: reading it and telling its columns' roles.

The format (documented in docs/model.md) is the curated table of the Glue ETL
(glue/dxops_etl/curated_schema.py) and, more generally, any clinical table with:

- reserved columns, never features: ``record_id`` and ``patient_id`` (required), ``label`` (the
  diagnosis code; empty = unlabelled, such rows are not trained on) and, when present,
  ``source``, ``encounter_date``, ``label_status``, ``ingested_at``;
- phenotype columns named by HPO id (``HP:0001250``): 1 observed, -1 excluded, 0 or empty not
  recorded;
- every other column is a feature as it is: numeric columns (labs by LOINC code, vitals, device
  aggregates, history flags ``hx_*``, age, ...) with empty = missing; text columns (``sex``, ...)
  as categories. A text column with too many distinct values to be a category (free text, an id:
  more than 50, or more than half its rows), a date, or a column named as a direct identifier or
  free text (name, dob, mrn, notes, ...: dxops.vocab.identifiers) is left out and reported.

Parquet (a file or a folder of files, partitions included) or CSV (by extension).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dxops.vocab.identifiers import DIRECT_IDENTIFIER_KEYS, FREE_TEXT_KEYS

RECORD_ID, PATIENT_ID, LABEL = "record_id", "patient_id", "label"
RESERVED_COLUMNS: tuple[str, ...] = (
    RECORD_ID,
    PATIENT_ID,
    LABEL,
    "source",
    "encounter_date",
    "label_status",
    "ingested_at",
)
HPO_COLUMN = re.compile(r"^HP:\d{7}$")
MAX_CATEGORIES = 50  # a text column with more distinct values is not a category (free text, ids)
IDENTIFYING_NAMES = DIRECT_IDENTIFIER_KEYS | FREE_TEXT_KEYS


class TableError(ValueError):
    """The table cannot be trained on or scored (the message says which column and why)."""


@dataclass(frozen=True)
class ColumnRoles:
    """Which column is what; stored in the model so that scoring sees the training's columns."""

    phenotypes: tuple[str, ...]
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    ignored: dict[str, str] = field(default_factory=dict)  # column -> why it is not a feature

    @property
    def features(self) -> tuple[str, ...]:
        return (*self.phenotypes, *self.numeric, *self.categorical)

    def to_json(self) -> dict[str, Any]:
        return {
            "phenotypes": list(self.phenotypes),
            "numeric": list(self.numeric),
            "categorical": list(self.categorical),
            "ignored": dict(self.ignored),
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> ColumnRoles:
        return cls(
            tuple(document["phenotypes"]),
            tuple(document["numeric"]),
            tuple(document["categorical"]),
            dict(document.get("ignored", {})),
        )


def _csv_header(path: Path) -> list[str]:
    return list(pd.read_csv(path, nrows=0).columns)


def read_table(path: Path) -> pd.DataFrame:
    """The table with phenotype columns as int8 and ids and labels as strings."""
    if not path.exists():
        raise TableError(f"{path}: no such file or folder")
    if path.is_dir() or path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif path.suffix == ".csv" or path.name.endswith(".csv.gz"):
        header = _csv_header(path)
        ids = {name: "string" for name in (RECORD_ID, PATIENT_ID, LABEL) if name in header}
        try:
            frame = pd.read_csv(path, dtype={**ids, **{n: "float32" for n in header if HPO_COLUMN.match(n)}})
        except ValueError:  # a phenotype column holds text: read as text, checked by normalise
            frame = pd.read_csv(path, dtype=ids, low_memory=False)
    else:
        raise TableError(f"{path}: expected Parquet (.parquet or a folder) or CSV (.csv)")
    return normalise(frame)


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Checks the required columns and gives every column the type the model expects."""
    missing = [name for name in (RECORD_ID, PATIENT_ID) if name not in frame.columns]
    if missing:
        raise TableError(f"missing required column(s): {', '.join(missing)}")
    frame = frame.copy()
    for name in (RECORD_ID, PATIENT_ID, LABEL):
        if name in frame.columns:
            frame[name] = _text(frame[name])
    if LABEL not in frame.columns:
        frame[LABEL] = pd.Series(pd.NA, index=frame.index, dtype="string")
    # A record without a patient id is its own patient (it cannot share a split with another).
    frame[PATIENT_ID] = frame[PATIENT_ID].fillna("record:" + frame[RECORD_ID].fillna(""))
    for name in frame.columns:
        if HPO_COLUMN.match(str(name)):
            present = frame[name].notna()
            values = pd.to_numeric(frame[name], errors="coerce")
            bad = present & ~values.isin((-1, 0, 1))
            if bad.any():  # the values themselves are not quoted: they could be anything
                raise TableError(f"column {name}: {int(bad.sum())} value(s) are not 1, -1, 0 or empty")
            frame[name] = values.fillna(0).astype("int8")
    return frame


def _text(series: pd.Series) -> pd.Series:
    """Ids and labels as text, the same from CSV and Parquet (a label stored as 1.0 is "1")."""
    if pd.api.types.is_float_dtype(series) and (series.dropna() % 1 == 0).all():
        series = series.astype("Int64")
    text = series.astype("string").str.strip()
    if text.dropna().str.fullmatch(r"-?\d+\.0+").all() and text.notna().any():  # "1.0" written by a float
        text = text.str.replace(r"\.0+$", "", regex=True)
    return text


def column_roles(frame: pd.DataFrame) -> ColumnRoles:
    """Roles from the columns' names and types (see the module docstring)."""
    phenotypes, numeric, categorical = [], [], []
    ignored: dict[str, str] = {}
    for name in frame.columns:
        column = str(name)
        if column in RESERVED_COLUMNS:
            continue
        series = frame[name]
        if column.strip().lower() in IDENTIFYING_NAMES:
            ignored[column] = "named as a direct identifier or free text (never a feature)"
        elif HPO_COLUMN.match(column):
            phenotypes.append(column)
        elif pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            numeric.append(column)
        elif pd.api.types.is_datetime64_any_dtype(series) or pd.api.types.infer_dtype(series, skipna=True) in (
            "date",
            "datetime",
            "datetime64",
            "time",
        ):
            ignored[column] = "date or time (not a feature; derive an age or a duration upstream)"
        else:
            values = series.dropna().astype(str)
            distinct = values.nunique()
            if distinct > MAX_CATEGORIES or distinct > max(2, len(values) // 2):
                ignored[column] = f"text with {distinct} distinct values in {len(values)} (not a category)"
            else:
                categorical.append(column)
    if not phenotypes and not numeric and not categorical:
        raise TableError("no feature column (expected HP:nnnnnnn, numeric or categorical columns)")
    return ColumnRoles(tuple(phenotypes), tuple(numeric), tuple(categorical), ignored)


def labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows with a label (confirmed diagnoses; unlabelled rows are not trained on)."""
    labels = frame[LABEL]
    keep = labels.notna() & (labels.str.strip() != "")
    if "label_status" in frame.columns:
        keep &= frame["label_status"].fillna("confirmed").astype(str) == "confirmed"
    return frame.loc[keep].reset_index(drop=True)


def conform(frame: pd.DataFrame, roles: ColumnRoles) -> pd.DataFrame:
    """The frame with exactly the training's feature columns: absent ones are added as not
    recorded (phenotypes 0) or missing (numeric NaN, categorical null); extra ones are dropped.
    Built as three typed blocks (a table has thousands of phenotype columns)."""
    phenotypes = np.zeros((len(frame), len(roles.phenotypes)), dtype=np.int8)
    present = [j for j, name in enumerate(roles.phenotypes) if name in frame.columns]
    if present:
        phenotypes[:, present] = frame[[roles.phenotypes[j] for j in present]].to_numpy(dtype=np.int8)
    numeric = np.full((len(frame), len(roles.numeric)), np.nan)
    for j, name in enumerate(roles.numeric):
        if name in frame.columns:
            numeric[:, j] = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
    categorical = {
        name: frame[name].astype("object").where(frame[name].notna(), None).to_numpy()
        if name in frame.columns
        else [None] * len(frame)
        for name in roles.categorical
    }
    return pd.concat(
        [
            pd.DataFrame(phenotypes, columns=list(roles.phenotypes), index=frame.index),
            pd.DataFrame(numeric, columns=list(roles.numeric), index=frame.index),
            pd.DataFrame(categorical, columns=list(roles.categorical), index=frame.index),
        ],
        axis=1,
    )
