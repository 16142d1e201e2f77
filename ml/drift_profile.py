"""The drift baseline of a model (drift_baseline.json in its directory) and the windows compared with it.

ml/train.py writes the baseline next to the model, so every model version (its model.tar.gz)
carries the reference its monitor compares with. It holds, for a seeded sample of the training
rows (at most 5,000):
- the features monitored and their kind: every numeric column (labs and vitals by LOINC, age,
  hx_ flags, device aggregates dev_*, ...), every categorical column (sex, ...), the
  missingness of each lab and vital (`<LOINC>:missing`: a lab that stops being ordered is drift
  too), and the phenotype terms (1 observed, -1 excluded, 0 not recorded), as categories;
- the reference values: each numeric column's values SORTED on their own (the tests need only
  each column's distribution, and no row can be put back together from them), the counts of
  each category, and the counts of every phenotype term seen in the sample (so the detector
  can test the most prevalent terms of the reference OR of the current window: a term the
  training data never had, e.g. a new presentation, is tested against a reference count of 0);
- the model's top-1 class and top-1 probability on those rows (prediction drift);
- for each top-1 class predicted for at least PRESENTATION_MIN_ROWS of a larger seeded sample
  (at most PRESENTATION_ROWS rows, the first sample's among them: the power of a class's test
  is bounded by its reference rows): how many rows and, for each phenotype term, how many of
  them observe it (presentation drift: the terms of the cases predicted as a class). Counts
  only: no row can be linked across them.
No patient id, record id, pseudonym or other identifier; only feature values and counts.

A current window goes through the same code: `window(frame, ...)` on the frame that
ml/records.py builds from captured prediction inputs (EndpointRecord documents) or that
ml/table.py conforms from a curated table. Device aggregates never arrive with prediction inputs
(the prediction API takes clinical records only): features marked `table` are compared only when
the current data are a curated table (a new dataset version), never from records.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dxops.vocab.hpo import hpo_parents, uninformative_terms
from ml.drift import CATEGORICAL, NUMERIC, ClassTerms, Column, Counts, Values, counts_of
from ml.records import HISTORY_PREFIX, current_term, records_frame
from ml.table import ColumnRoles, conform

if TYPE_CHECKING:
    from ml.model import DiagnosisModel

BASELINE = "drift_baseline.json"
SCHEMA_VERSION = 2  # 2: presentation (a version-1 baseline has none: that check is skipped)
SAMPLE_ROWS = 5000
TOP_TERMS = 30  # phenotype terms tested: the most prevalent of the reference and of the window
LOINC = re.compile(r"^\d{1,7}-\d$")
RECORD_COLUMNS = ("age_years", "sex")  # what ml/records.py fills besides phenotypes, labs, vitals, hx_
MISSING = ":missing"
# Records with an observed phenotype term the model has no column for (a new presentation, a new
# disease): 0 in the reference by construction (every term of the training rows is a column).
PREDICTED_CLASS, PREDICTED_PROBABILITY = "predicted_class", "predicted_probability"
PRESENTATION_MIN_ROWS = 20  # a predicted class with fewer reference rows has no presentation profile
PRESENTATION_ROWS = 20000  # training rows (the sample's and more) scored for the presentation profile
Predict = Callable[[pd.DataFrame], tuple[list[str], list[float]]]


@dataclass
class Window:
    """One side of a comparison: each feature's values (numeric) or counts (categorical)."""

    rows: int
    numeric: dict[str, Values] = field(default_factory=dict)
    categorical: dict[str, Counts] = field(default_factory=dict)
    phenotypes: dict[str, Counts] = field(default_factory=dict)  # every term with a recorded value
    # predicted top-1 class -> (rows, {term: rows observing it}); empty when no class was given
    presentation: dict[str, tuple[int, Counts]] = field(default_factory=dict)


def source_of(column: str) -> str:
    """`record` when ml/records.py can fill the column from a clinical record, else `table`."""
    if column in RECORD_COLUMNS or column.startswith(HISTORY_PREFIX) or LOINC.match(column):
        return "record"
    return "table"


def feature_specs(roles: ColumnRoles) -> list[dict[str, str]]:
    """The monitored features besides the phenotype terms: name, kind and source."""
    specs = [{"name": c, "kind": NUMERIC, "source": source_of(c)} for c in roles.numeric]
    specs += [
        {"name": f"{c}{MISSING}", "kind": CATEGORICAL, "source": "record"} for c in roles.numeric if LOINC.match(c)
    ]
    # No "records with a term the model has no column for": every training term is a column, so its
    # reference share is 0 by construction and any new patient population would drift on it.
    specs += [{"name": c, "kind": CATEGORICAL, "source": source_of(c)} for c in roles.categorical]
    return specs


def _phenotype_counts(matrix: np.ndarray[Any, Any], terms: Sequence[str]) -> dict[str, Counts]:
    observed, excluded = (matrix == 1).sum(axis=0), (matrix == -1).sum(axis=0)
    counts: dict[str, Counts] = {}
    for j in np.flatnonzero(observed + excluded).tolist():
        counts[terms[j]] = {
            "1": int(observed[j]),
            "-1": int(excluded[j]),
            "0": len(matrix) - int(observed[j] + excluded[j]),
        }
    return counts


def class_terms(
    matrix: np.ndarray[Any, Any], terms: Sequence[str], classes: Sequence[str]
) -> dict[str, tuple[int, Counts]]:
    """Per predicted class (one a row of `matrix`): its rows and how many of them observe each
    term (those observed at least once)."""
    if len(classes) != len(matrix):
        raise ValueError(f"{len(classes)} predicted classes for {len(matrix)} rows")
    observed = matrix == 1
    labels = np.asarray(classes, dtype=object)
    result: dict[str, tuple[int, Counts]] = {}
    for name in sorted(set(labels.tolist())):
        rows = labels == name
        counts = observed[rows].sum(axis=0)
        result[str(name)] = (int(rows.sum()), {terms[j]: int(counts[j]) for j in np.flatnonzero(counts).tolist()})
    return result


def window(
    frame: pd.DataFrame,
    specs: Sequence[Mapping[str, str]],
    phenotypes: Sequence[str],
    classes: Sequence[str] | None = None,
) -> Window:
    """The features of `frame` (a conformed table or ml/records.py's frame) whose phenotype
    columns are `phenotypes`, and with the rows' predicted top-1 `classes` their presentation:
    the one code path of the reference and of every current window."""
    result = Window(len(frame))
    for spec in specs:
        name = spec["name"]
        if name.endswith(MISSING):
            column = name[: -len(MISSING)]
            missing = int(pd.to_numeric(frame[column], errors="coerce").isna().sum())
            result.categorical[name] = {"missing": missing, "present": len(frame) - missing}
        elif spec["kind"] == NUMERIC:
            result.numeric[name] = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
        else:
            result.categorical[name] = counts_of(frame[name].tolist())
    terms = [t for t in phenotypes if t in frame.columns]
    matrix = frame[terms].to_numpy(dtype=np.int8)
    result.phenotypes = _phenotype_counts(matrix, terms)
    if classes is not None:
        result.presentation = class_terms(matrix, terms, classes)
    return result


# -- the baseline ---------------------------------------------------------------------------------
def build_profile(
    rows: pd.DataFrame,
    roles: ColumnRoles,
    *,
    predict: Predict | None,
    expanded: bool,
    sample_rows: int = SAMPLE_ROWS,
    presentation_rows: int = PRESENTATION_ROWS,
    seed: int = 0,
    held_out: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """The baseline document of `rows` (the training rows, in the table's format): the features
    and predictions of a sample of `sample_rows`, the presentation of a larger one (the sample
    and more, `presentation_rows` in all: a class's reference count bounds the test's power).
    The prediction reference (top-1 class and probability) comes from `held_out` rows when given:
    a model is more confident on the rows it was fitted on than on new patients, so its training
    rows would make every new window look like prediction drift."""
    order = np.random.default_rng(seed).permutation(len(rows))
    take = np.sort(order[:sample_rows])
    sample = conform(rows.iloc[take].reset_index(drop=True), roles)
    specs = feature_specs(roles)
    reference = window(sample, specs, roles.phenotypes)
    predicted = None
    if predict is not None:
        scored = np.sort(order[: max(sample_rows, presentation_rows)])  # the sample's rows among them
        scored_rows = conform(rows.iloc[scored].reset_index(drop=True), roles)
        classes, probabilities = predict(scored_rows)
        in_sample = np.isin(scored, take)
        predicted = (
            [c for c, kept in zip(classes, in_sample.tolist(), strict=True) if kept],
            np.asarray(probabilities, dtype=np.float64)[in_sample],
        )
        terms = [t for t in roles.phenotypes if t in scored_rows.columns]
        per_class = class_terms(scored_rows[terms].to_numpy(dtype=np.int8), terms, classes)
    if predict is not None and held_out is not None and len(held_out):
        unseen = np.sort(np.random.default_rng(seed).permutation(len(held_out))[:sample_rows])
        classes_unseen, probabilities_unseen = predict(conform(held_out.iloc[unseen].reset_index(drop=True), roles))
        predicted = (list(classes_unseen), np.asarray(probabilities_unseen, dtype=np.float64))
    document: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "rows": len(sample),
        "training_rows": len(rows),
        "seed": seed,
        "phenotypes_expanded": expanded,
        "features": specs,
        "numeric": {name: _stored(values) for name, values in reference.numeric.items()},
        "categorical": {name: dict(counts) for name, counts in reference.categorical.items()},
        "phenotypes": {term: dict(counts) for term, counts in sorted(reference.phenotypes.items())},
        "prediction": None,
        "presentation": None,
    }
    if predicted is not None:
        document["prediction"] = {
            PREDICTED_CLASS: counts_of(predicted[0]),
            PREDICTED_PROBABILITY: _stored(predicted[1]),
            "source": "held-out rows" if held_out is not None and len(held_out) else "training rows",
        }
        document["presentation"] = {
            "rows": len(classes),
            "min_rows": PRESENTATION_MIN_ROWS,
            "classes": {
                name: {"rows": n, "terms": dict(counts)}
                for name, (n, counts) in per_class.items()
                if n >= PRESENTATION_MIN_ROWS
            },
        }
    return document


def _stored(values: Values) -> list[float | None]:
    """Sorted (no row can be rebuilt across columns), missing last as null, 6 significant digits."""
    ordered = np.sort(values)  # NaN last
    return [None if np.isnan(v) else float(f"{v:.6g}") for v in ordered.tolist()]


def model_predict(model: DiagnosisModel) -> Predict:
    """The model's top-1 class and its probability on a frame (what StoredPrediction.predicted[0] holds)."""

    def predict(frame: pd.DataFrame) -> tuple[list[str], list[float]]:
        predictions = model.predict(frame, top_k=1, explain=False)
        return [p.diagnoses[0].disease_id for p in predictions], [p.diagnoses[0].probability for p in predictions]

    return predict


def write_baseline(
    out: Path, training: pd.DataFrame, model: DiagnosisModel, seed: int, held_out: pd.DataFrame | None = None
) -> dict[str, Any]:
    """BASELINE in the model directory `out`; model.json's record of it."""
    expanded = bool(model.manifest.get("phenotypes_expanded"))
    document = build_profile(
        training, model.roles, predict=model_predict(model), expanded=expanded, seed=seed, held_out=held_out
    )
    data = (json.dumps(document, sort_keys=True, separators=(",", ":")) + "\n").encode()
    out.mkdir(parents=True, exist_ok=True)
    (out / BASELINE).write_bytes(data)
    return {"file": BASELINE, "rows": document["rows"], "sha256": hashlib.sha256(data).hexdigest()}


@dataclass(frozen=True)
class Baseline:
    document: dict[str, Any]

    @classmethod
    def load(cls, directory: Path) -> Baseline:
        return cls(json.loads((directory / BASELINE).read_text(encoding="utf-8")))

    @property
    def specs(self) -> list[dict[str, str]]:
        return list(self.document["features"])

    @property
    def reference(self) -> Window:
        doc = self.document
        numeric = {
            k: np.array([np.nan if v is None else v for v in vs], dtype=np.float64) for k, vs in doc["numeric"].items()
        }
        return Window(int(doc["rows"]), numeric, dict(doc["categorical"]), dict(doc["phenotypes"]))

    @property
    def prediction(self) -> dict[str, Column] | None:
        stored = self.document.get("prediction")
        if not stored:
            return None
        values = np.array(stored[PREDICTED_PROBABILITY], dtype=np.float64)
        return {PREDICTED_CLASS: dict(stored[PREDICTED_CLASS]), PREDICTED_PROBABILITY: values}

    @property
    def presentation(self) -> ClassTerms | None:
        """Per predicted class: (rows, {term: rows observing it}); None without a profile
        (a version-1 baseline, or one built without the model's predictions)."""
        stored = self.document.get("presentation")
        if not stored:
            return None
        return {name: (int(entry["rows"]), dict(entry["terms"])) for name, entry in stored["classes"].items()}


# -- current windows ------------------------------------------------------------------------------
def record_terms(records: Iterable[Mapping[str, Any]], ancestors: Callable[[str], Iterable[str]] | None) -> set[str]:
    """The phenotype terms of records, as ml/records.py names them (current ids, and their
    ancestors when the training table's phenotypes were expanded)."""
    terms: set[str] = set()
    for record in records:
        for phenotype in record.get("phenotypes") or []:
            if isinstance(phenotype, Mapping) and isinstance(phenotype.get("hpo_id"), str):
                term = current_term(phenotype["hpo_id"])
                terms.add(term)
                if ancestors is not None and phenotype.get("status", "observed") != "excluded":
                    terms.update(ancestors(term))
    # The roots every expanded record has: never a column of an ETL table (dxops.vocab.hpo).
    return terms - uninformative_terms(hpo_parents())


def _with_terms(roles: ColumnRoles, terms: Iterable[str]) -> ColumnRoles:
    return ColumnRoles(tuple(sorted({*roles.phenotypes, *terms})), roles.numeric, roles.categorical)


def records_window(
    records: Sequence[Mapping[str, Any]],
    roles: ColumnRoles,
    specs: Sequence[Mapping[str, str]],
    ancestors: Callable[[str], Iterable[str]] | None,
    classes: Sequence[str] | None = None,
) -> Window:
    """The window of captured prediction inputs: ml/records.py's rows, with every phenotype term
    they hold (new ones too); `table` features are left out (records cannot carry them).
    `classes`: the top-1 class served for each record (its presentation)."""
    extended = _with_terms(roles, record_terms(records, ancestors))
    frame = records_frame(records, extended, ancestors)
    record_specs = [s for s in specs if s["source"] == "record"]
    return window(frame, record_specs, extended.phenotypes, classes)


def table_window(
    table: pd.DataFrame,
    roles: ColumnRoles,
    specs: Sequence[Mapping[str, str]],
    classes: Sequence[str] | None = None,
) -> Window:
    """The window of a curated table (ml/table.py's format): every feature, every phenotype column;
    `classes`: the model's top-1 class of each row (its presentation)."""
    from ml.table import HPO_COLUMN  # noqa: PLC0415

    extended = _with_terms(roles, (str(c) for c in table.columns if HPO_COLUMN.match(str(c))))
    return window(conform(table, extended), specs, extended.phenotypes, classes)


def top_terms(reference: Window, current: Window, k: int = TOP_TERMS) -> list[str]:
    """The k most prevalent observed terms of the reference and of the current window, together."""

    def top(side: Window) -> list[str]:
        share = {t: c.get("1", 0) / max(side.rows, 1) for t, c in side.phenotypes.items() if c.get("1", 0)}
        return sorted(share, key=lambda t: (-share[t], t))[:k]

    return sorted({*top(reference), *top(current)})


def comparisons(
    reference: Window, current: Window, specs: Sequence[Mapping[str, str]], k: int = TOP_TERMS
) -> list[tuple[str, str, Column, Column]]:
    """(name, kind, reference, current) of every feature both windows have, then the top terms."""
    pairs: list[tuple[str, str, Column, Column]] = []
    for spec in specs:
        name, kind = spec["name"], spec["kind"]
        side = "numeric" if kind == NUMERIC else "categorical"
        ours, theirs = getattr(reference, side), getattr(current, side)
        if name in ours and name in theirs:
            pairs.append((name, kind, ours[name], theirs[name]))
    for term in top_terms(reference, current, k):
        absent_ref: Counts = {"0": reference.rows}
        absent_cur: Counts = {"0": current.rows}
        pairs.append(
            (term, CATEGORICAL, reference.phenotypes.get(term, absent_ref), current.phenotypes.get(term, absent_cur))
        )
    return pairs
