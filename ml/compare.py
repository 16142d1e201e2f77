"""dxops-compare: the promotion gate's evaluation, a candidate model against the champion.

    dxops-compare --candidate DIR --data TABLE --out DIR [--champion DIR] [tolerance flags]

Both models are scored on the same rows, unseen by either:
1. the candidate's held-out split of its table, recomputed from model.json's `held_out` (split
   kind, seed, test fraction) and verified against it (row count, SHA-256 of the sorted record
   ids); a mismatch (another table, another seed) is an error, not a comparison;
2. less the rows of patients the champion trained on (its training_patients.txt.gz: digests of
   patient ids), counted; a champion without that file (an older model) is evaluated on every
   held-out row, with a warning.
Metrics (ml/scoring.py): macro-F1, rare-disease recall, ECE, accuracy, top-3 accuracy, the recall
of groups (rare and common diseases, and cohorts by sex, age band and source when the table has
those columns), and a paired bootstrap interval of the macro-F1 difference. The gate's rules and
tolerances are in docs/model.md ("Promotion gate"); every tolerance is a flag.

OUT/comparison.json (verdict "pass" or "reject", reasons, checks, metrics) and OUT/comparison.md.
Exit status 0 whatever the verdict; 1 when the comparison could not be made, with the reason on
stderr (and, in a processing job, in /opt/ml/output/message: the job's ExitMessage). No patient id
and no value of a record is ever written: only labels, group names and aggregates.

SageMaker Processing contract (no --candidate): the candidate, the champion (absent or empty for
the first model) and the table in /opt/ml/processing/input/{candidate,champion,data} (a model
input is a model directory or a folder holding the training job's model.tar.gz; the table is
Parquet files, partitions included, or one CSV), the result in /opt/ml/processing/output/.
DXOPS_PROCESSING_ROOT replaces /opt/ml/processing (the message then goes to its sibling
output/message); on the local cloud, paths are under LOCALCLOUD_CONTAINER_ROOT (ml/processing.py).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import shutil
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.metrics import recall_score

from ml.metrics import align, is_rare_code
from ml.model import MANIFEST, DiagnosisModel, ModelError
from ml.processing import failure_message as processing_failure
from ml.processing import processing_root, report_failure
from ml.scoring import score_rows
from ml.table import LABEL, MAX_CATEGORIES, PATIENT_ID, TableError, labelled, read_table
from ml.train import (
    TRAINING_PATIENTS,
    ConfigError,
    _table_in,
    data_fingerprint,
    patient_digest,
    record_ids,
    records_digest,
    split_rows,
)

COMPARISON_JSON, COMPARISON_MD = "comparison.json", "comparison.md"
CANDIDATE_DOCUMENTS = ("model_card.md", "evaluation.json")
SPLIT_KINDS = ("holdout", "hashed")
COHORT_COLUMNS = ("sex", "source")  # categorical cohorts, when the table has them
AGE_COLUMN = "age_years"
AGE_BANDS = ((0.0, 18.0, "0-17"), (18.0, 40.0, "18-39"), (40.0, 65.0, "40-64"), (65.0, math.inf, "65+"))
EPSILON = 1e-9  # values are rounded to 6 decimals: a tie with the limit passes


class CompareError(ValueError):
    """The comparison cannot be made (the message says why; it never quotes a record's value)."""


@dataclass(frozen=True)
class Tolerances:
    """The gate's margins (docs/model.md, "Promotion gate")."""

    macro_f1: float = 0.01  # candidate >= champion - macro_f1
    rare_recall: float = 0.02  # candidate >= champion - rare_recall
    ece: float = 0.02  # candidate <= champion + ece
    group_recall: float = 0.05  # per group: candidate >= champion - group_recall
    min_group_rows: int = 20  # smaller groups are reported, not judged
    min_macro_f1: float = 0.0  # floors of a first model (no champion)
    min_rare_recall: float = 0.0


@dataclass(frozen=True)
class Bootstrap:
    resamples: int = 1000
    seed: int = 0
    confidence: float = 0.95


@dataclass(frozen=True)
class Loaded:
    model: DiagnosisModel
    directory: Path
    source: str  # the path or S3 URI it came from (shown in the output)


@dataclass(frozen=True)
class Evaluation:
    summary: dict[str, Any]
    predicted: NDArray[np.object_]
    recalls: dict[str, float | None]


def progress(message: str) -> None:
    print(f"[dxops-compare] {message}", file=sys.stderr, flush=True)


def _number(value: Any) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else round(float(value), 6)


# -- models ---------------------------------------------------------------------------------------
def _extract(archive: Path, target: Path) -> None:
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):  # Python 3.10.12+: refuses links and paths outside target
            tar.extractall(target, filter="data")
            return
        for member in tar.getmembers():  # older 3.10 patch releases
            if member.issym() or member.islnk() or member.name.startswith("/") or ".." in Path(member.name).parts:
                raise CompareError(f"{archive.name}: unsafe member in the archive")
        tar.extractall(target)  # noqa: S202 - members checked above


def model_directory(folder: Path, scratch: Path) -> Path | None:
    """The model directory in `folder`: itself (model.json), or its model.tar.gz extracted into
    `scratch`; None when the folder is absent or empty (no champion)."""
    if folder.is_file() and folder.name.endswith(".tar.gz"):
        archive = folder
    elif not folder.is_dir() or not any(folder.iterdir()):
        return None
    elif (folder / MANIFEST).is_file():
        return folder
    else:
        archives = sorted(folder.rglob("model.tar.gz")) or sorted(folder.rglob("*.tar.gz"))
        if not archives:
            raise CompareError(f"{folder.name}: neither a model directory ({MANIFEST}) nor a model.tar.gz")
        archive = archives[0]
    target = Path(tempfile.mkdtemp(prefix="model-", dir=scratch))
    _extract(archive, target)
    manifests = sorted(target.rglob(MANIFEST), key=lambda p: len(p.parts))
    if not manifests:
        raise CompareError(f"{archive.name}: no {MANIFEST} in the archive")
    return manifests[0].parent


def load(folder: Path | None, scratch: Path, role: str, source: str | None = None) -> Loaded | None:
    if folder is None:
        return None
    directory = model_directory(folder, scratch)
    if directory is None:
        return None
    progress(f"loading the {role}")
    return Loaded(DiagnosisModel.load(directory), directory, source or str(folder))


def training_patients(loaded: Loaded) -> set[str] | None:
    """The digests of the patients the model trained on; None for a model without the file."""
    path = loaded.directory / TRAINING_PATIENTS
    if not path.is_file():
        return None
    data = path.read_bytes()
    recorded = (loaded.model.manifest.get("training_patients") or {}).get("sha256")
    if recorded and hashlib.sha256(data).hexdigest() != recorded:
        raise CompareError(f"the champion's {TRAINING_PATIENTS} does not match its SHA-256 in {MANIFEST}")
    return set(gzip.decompress(data).decode("ascii").split())


# -- rows -----------------------------------------------------------------------------------------
def held_out(rows: pd.DataFrame, manifest: dict[str, Any]) -> pd.DataFrame:
    """The candidate's held-out rows of `rows` (the labelled rows of its table), verified."""
    record = manifest.get("held_out")
    if not isinstance(record, dict):
        raise CompareError(
            f"the candidate's {MANIFEST} records no held-out split (a model trained before dxops-compare): "
            "retrain it to compare it"
        )
    kind, seed, fraction = record.get("kind"), record.get("seed"), record.get("test_fraction")
    if kind not in SPLIT_KINDS or not isinstance(seed, int) or not isinstance(fraction, (int, float)):
        raise CompareError(f"the candidate's {MANIFEST} has an unreadable held-out split record")
    _train, test = split_rows(rows, str(kind), float(fraction), seed)
    test_rows = rows.iloc[test].reset_index(drop=True)
    where = (
        f"({kind} split, seed {seed}, test fraction {fraction}; the candidate was trained on dataset version "
        f"{manifest.get('dataset_version', 'unknown')}): this table is not the one the candidate was trained on, "
        "or the split was altered"
    )
    if len(test_rows) != record.get("test_rows"):
        raise CompareError(
            f"held-out split mismatch: the recomputed split has {len(test_rows)} rows, the candidate's had "
            f"{record.get('test_rows')} {where}"
        )
    if records_digest(record_ids(test_rows)) != record.get("test_records_sha256"):
        raise CompareError(
            f"held-out split mismatch: the recomputed split's record ids are not the candidate's (SHA-256 of the "
            f"sorted ids) {where}"
        )
    return test_rows


def unseen_by(rows: pd.DataFrame, patients: set[str] | None) -> NDArray[np.bool_]:
    """Rows whose patient is not among `patients` (digests); every row when they are unknown."""
    if patients is None:
        return np.ones(len(rows), dtype=np.bool_)
    return np.array([patient_digest(p) not in patients for p in rows[PATIENT_ID].astype(str)], dtype=np.bool_)


def groups_of(rows: pd.DataFrame) -> dict[str, NDArray[np.bool_]]:
    """Row masks of the groups judged: rare and common diseases (by the true label), then cohorts
    by sex, age band and source when the table has those columns. Empty groups are left out."""
    rare = np.array([is_rare_code(label) for label in rows[LABEL].astype(str)], dtype=np.bool_)
    groups = {"disease=rare": rare, "disease=common": ~rare}
    for column in COHORT_COLUMNS:
        if column not in rows.columns:
            continue
        values = rows[column].astype("string").str.strip()
        distinct = sorted(str(v) for v in values.dropna().unique())
        if len(distinct) > MAX_CATEGORIES:
            progress(f"column {column}: {len(distinct)} distinct values, not a cohort (left out)")
            continue
        for value in distinct:
            groups[f"{column}={value}"] = values.eq(value).fillna(False).to_numpy(dtype=np.bool_)
    if AGE_COLUMN in rows.columns:
        age = pd.to_numeric(rows[AGE_COLUMN], errors="coerce").to_numpy(dtype=np.float64)
        for low, high, name in AGE_BANDS:
            groups[f"age={name}"] = (age >= low) & (age < high)
    return {name: mask for name, mask in groups.items() if mask.any()}


# -- metrics --------------------------------------------------------------------------------------
def group_recall(truth: NDArray[np.object_], predicted: NDArray[np.object_], mask: NDArray[np.bool_]) -> float | None:
    """Macro recall over the diseases present among the group's rows, on the group's rows only."""
    if not mask.any():
        return None
    labels = sorted(set(truth[mask].tolist()))
    return _number(recall_score(truth[mask], predicted[mask], labels=labels, average="macro", zero_division=0))


def evaluate(loaded: Loaded, rows: pd.DataFrame, groups: dict[str, NDArray[np.bool_]], seed: int) -> Evaluation:
    scored = score_rows(loaded.model, rows, seed=seed)
    truth = np.asarray(scored.truth, dtype=object)
    predicted = align(scored.truth, scored.decisions, scored.classes).y_pred
    metrics = scored.metrics
    summary = {
        "model_version": loaded.model.version,
        "dataset_version": loaded.model.manifest.get("dataset_version"),
        "source": loaded.source,
        "macro_f1": metrics["macro_f1"],
        "rare_recall": metrics["groups"]["rare"]["macro_recall"],
        "ece": metrics["ece"],
        "accuracy": metrics["accuracy"],
        "top3_accuracy": metrics["top3_accuracy"],
        "intervals": {key: scored.intervals[key] for key in ("macro_f1", "accuracy", "ece") if key in scored.intervals},
    }
    recalls = {name: group_recall(truth, predicted, mask) for name, mask in groups.items()}
    return Evaluation(summary, predicted, recalls)


def macro_f1_weighted(truth: NDArray[np.int64], predicted: NDArray[np.int64], weights: NDArray[Any], k: int) -> float:
    """scikit-learn's macro-F1 (labels: those true or predicted) of rows repeated `weights` times."""
    support = np.bincount(truth, weights=weights, minlength=k)
    predictions = np.bincount(predicted, weights=weights, minlength=k)
    hit = truth == predicted
    hits = np.bincount(truth[hit], weights=weights[hit], minlength=k)
    present = (support + predictions) > 0
    return float(np.mean(2 * hits[present] / (support[present] + predictions[present])))


def paired_difference(
    truth: Sequence[str], candidate: Sequence[str], champion: Sequence[str], bootstrap: Bootstrap
) -> dict[str, Any]:
    """Percentile interval of macro-F1(candidate) - macro-F1(champion) over resamples of the rows,
    the same resample for both models (the difference's own spread, not two independent ones)."""
    codes = {label: i for i, label in enumerate(sorted({*truth, *candidate, *champion}))}
    t, a, b = (np.array([codes[x] for x in labels], dtype=np.int64) for labels in (truth, candidate, champion))
    n, k = len(t), len(codes)
    rng = np.random.default_rng(bootstrap.seed)
    differences = np.empty(bootstrap.resamples)
    for r in range(bootstrap.resamples):
        weights = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
        differences[r] = macro_f1_weighted(t, a, weights, k) - macro_f1_weighted(t, b, weights, k)
    tail = 100 * (1 - bootstrap.confidence) / 2
    low, high = np.percentile(differences, [tail, 100 - tail])
    ones = np.ones(n)
    return {
        "estimate": _number(macro_f1_weighted(t, a, ones, k) - macro_f1_weighted(t, b, ones, k)),
        "low": _number(low),
        "high": _number(high),
        "resamples": bootstrap.resamples,
        "confidence": bootstrap.confidence,
        "seed": bootstrap.seed,
    }


# -- the gate -------------------------------------------------------------------------------------
NAMES = {"macro_f1": "macro-F1", "rare_recall": "rare-disease recall", "ece": "ECE (calibration error)"}


def _check(
    name: str,
    candidate: float | None,
    champion: float | None,
    *,
    tolerance: float | None,
    limit: float | None,
    lower: bool = False,
) -> dict[str, Any]:
    """One check: `lower` when the candidate must stay at or below the limit (ECE)."""
    check: dict[str, Any] = {
        "name": name,
        "candidate": candidate,
        "champion": champion,
        "tolerance": tolerance,
        "limit": None if limit is None else round(limit, 6),
        "passed": True,
    }
    if candidate is None or limit is None:
        check["note"] = "not applicable: no row of this kind among the rows compared"
    elif lower:
        check["passed"] = bool(candidate <= limit + EPSILON)
    else:
        check["passed"] = bool(candidate >= limit - EPSILON)
    return check


def _reason(check: dict[str, Any]) -> str:
    name = check["name"]
    label = NAMES.get(name, f"recall of group {name.removeprefix('group_recall:')}")
    candidate, champion, tolerance, limit = (check[key] for key in ("candidate", "champion", "tolerance", "limit"))
    if champion is None:
        return f"{label} {candidate:.4f} is below the floor {limit:.4f}"
    if name == "ece":
        return (
            f"{label} {candidate:.4f} is above the champion's {champion:.4f} plus the tolerance {tolerance:g} "
            f"(limit {limit:.4f})"
        )
    return (
        f"{label} {candidate:.4f} is below the champion's {champion:.4f} minus the tolerance {tolerance:g} "
        f"(limit {limit:.4f})"
    )


def headline_checks(
    candidate: dict[str, Any], champion: dict[str, Any] | None, tol: Tolerances
) -> list[dict[str, Any]]:
    """macro-F1, rare-disease recall and ECE against the champion's; floors without a champion."""
    if champion is None:
        floors = {"macro_f1": tol.min_macro_f1, "rare_recall": tol.min_rare_recall}
        return [_check(key, candidate[key], None, tolerance=None, limit=floor) for key, floor in floors.items()]
    checks = []
    rules = (("macro_f1", tol.macro_f1, False), ("rare_recall", tol.rare_recall, False), ("ece", tol.ece, True))
    for key, tolerance, lower in rules:
        theirs = champion[key]
        limit = None if theirs is None else theirs + (tolerance if lower else -tolerance)
        checks.append(_check(key, candidate[key], theirs, tolerance=tolerance, limit=limit, lower=lower))
    return checks


def group_table(
    groups: dict[str, NDArray[np.bool_]], candidate: Evaluation, champion: Evaluation | None, tol: Tolerances
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the groups' rows, the checks of the groups judged)."""
    table, checks = [], []
    for name, mask in groups.items():
        rows = int(mask.sum())
        ours = candidate.recalls[name]
        theirs = None if champion is None else champion.recalls[name]
        entry: dict[str, Any] = {
            "group": name,
            "rows": rows,
            "candidate_recall": ours,
            "champion_recall": theirs,
            "judged": False,
            "passed": None,
        }
        if champion is None:
            entry["status"] = "no champion"
        elif rows < tol.min_group_rows:
            entry["status"] = f"too small to judge (fewer than {tol.min_group_rows} rows)"
        else:
            limit = None if theirs is None else theirs - tol.group_recall
            check = _check(f"group_recall:{name}", ours, theirs, tolerance=tol.group_recall, limit=limit)
            entry.update(judged=True, passed=check["passed"], status="passed" if check["passed"] else "failed")
            checks.append(check)
        table.append(entry)
    return table, checks


# -- the comparison -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Inputs:
    candidate: Path
    data: Path
    out: Path
    champion: Path | None = None
    data_source: str | None = None  # the S3 URI of the data, when known
    candidate_source: str | None = None
    champion_source: str | None = None


def _common_rows(candidate: Loaded, champion: Loaded | None, data: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The held-out rows unseen by the champion, and the counts and warnings that go with them."""
    progress(f"reading {data.name}")
    table = read_table(data)
    rows = labelled(table)
    test = held_out(rows, candidate.model.manifest)
    progress(f"held-out split verified: {len(test)} rows of {len(rows)} labelled")
    patients = None if champion is None else training_patients(champion)
    keep = unseen_by(test, patients)
    warnings = []
    if champion is not None and patients is None:
        warnings.append(
            f"the champion has no {TRAINING_PATIENTS} (a model trained before it existed): its training "
            "patients are unknown, every held-out row is evaluated, and its metrics may be optimistic where "
            "it trained on some of them"
        )
    elif patients is not None and unseen_by(rows.drop_duplicates(PATIENT_ID), patients).all():
        warnings.append(
            "no patient of this table is among the champion's training patients: expected when the data are "
            "new, but if patient pseudonyms changed (another pseudonymisation key) the champion's training "
            "patients cannot be recognised and its metrics may be optimistic"
        )
    evaluated = test.loc[keep].reset_index(drop=True)
    if evaluated.empty:
        raise CompareError("no held-out row is left once the rows of the champion's training patients are left out")
    counts = {
        "table": len(table),
        "labelled": len(rows),
        "held_out": len(test),
        "evaluated": len(evaluated),
        "excluded_seen_by_champion": int((~keep).sum()),
        "leakage_checked": None if champion is None else patients is not None,
        "warnings": warnings,
    }
    if champion is None:
        progress("no champion: the candidate is held to the floors")
    else:
        progress(f"{counts['excluded_seen_by_champion']} held-out rows left out (patients the champion trained on)")
    return evaluated, counts


def compare(inputs: Inputs, tolerances: Tolerances, bootstrap: Bootstrap, scratch: Path) -> dict[str, Any]:
    started = time.perf_counter()
    candidate = load(inputs.candidate, scratch, "candidate", inputs.candidate_source)
    if candidate is None:
        raise CompareError("no candidate model in its input (an empty or missing folder)")
    champion = load(inputs.champion, scratch, "champion", inputs.champion_source)
    rows, counts = _common_rows(candidate, champion, inputs.data)
    groups = groups_of(rows)
    seed = int(candidate.model.manifest.get("seed", 0))
    progress(f"scoring the candidate on {len(rows)} rows")
    ours = evaluate(candidate, rows, groups, seed)
    theirs = None
    if champion is not None:
        progress(f"scoring the champion on {len(rows)} rows")
        theirs = evaluate(champion, rows, groups, seed)
    checks = headline_checks(ours.summary, None if theirs is None else theirs.summary, tolerances)
    table, group_checks = group_table(groups, ours, theirs, tolerances)
    checks += group_checks
    difference: dict[str, Any] = {"estimate": None, "low": None, "high": None}
    if theirs is not None:
        truth = rows[LABEL].astype(str).tolist()
        difference = paired_difference(truth, ours.predicted.tolist(), theirs.predicted.tolist(), bootstrap)
    passed = all(check["passed"] for check in checks)
    low = difference["low"]
    fingerprint = data_fingerprint(inputs.data)
    return {
        "verdict": "pass" if passed else "reject",
        "clearly_better": bool(theirs is not None and passed and low is not None and low > 0),
        "reasons": [_reason(check) for check in checks if not check["passed"]],
        "warnings": counts["warnings"],
        "checks": checks,
        "candidate": ours.summary,
        "champion": None if theirs is None else theirs.summary,
        "groups": table,
        "macro_f1_difference": difference,
        "rows": {key: counts[key] for key in ("held_out", "evaluated", "excluded_seen_by_champion")},
        "leakage_checked": counts["leakage_checked"],
        "tolerances": asdict(tolerances),
        "dataset": {
            "path": str(inputs.data),
            "uri": inputs.data_source,
            "dataset_version": candidate.model.manifest.get("dataset_version"),
            "sha256": fingerprint,
            "matches_candidate": fingerprint == candidate.model.manifest.get("data_sha256"),
            "rows": {"table": counts["table"], "labelled": counts["labelled"]},
        },
        "seconds": round(time.perf_counter() - started, 1),
    }


# -- output ---------------------------------------------------------------------------------------
def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _shown(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def markdown(document: dict[str, Any]) -> str:
    candidate, champion = document["candidate"], document["champion"]
    difference, rows = document["macro_f1_difference"], document["rows"]
    against = f"champion `{champion['model_version']}`" if champion else "no champion (first model: floors)"
    lines = [
        f"# Promotion gate: {document['verdict']}",
        "",
        f"Candidate `{candidate['model_version']}` against {against}, on {rows['evaluated']} held-out rows of "
        f"dataset version {document['dataset']['dataset_version']} ({rows['held_out']} held out, "
        f"{rows['excluded_seen_by_champion']} left out: patients the champion trained on). "
        f"Clearly better: {'yes' if document['clearly_better'] else 'no'}.",
        "",
        "| check | candidate | champion | tolerance | limit | result |",
        "|---|---|---|---|---|---|",
    ]
    for check in document["checks"]:
        cells = [_shown(check[key]) for key in ("candidate", "champion", "tolerance", "limit")]
        lines.append(f"| {_cell(check['name'])} | {' | '.join(cells)} | {'pass' if check['passed'] else 'FAIL'} |")
    if difference["estimate"] is not None:
        lines += [
            "",
            f"Macro-F1 difference (candidate - champion): {difference['estimate']:+.4f}, "
            f"{100 * difference['confidence']:g} % interval [{difference['low']:+.4f}, {difference['high']:+.4f}] "
            f"(paired bootstrap, {difference['resamples']} resamples).",
        ]
    lines += ["", "| group | rows | candidate recall | champion recall | status |", "|---|---|---|---|---|"]
    for group in document["groups"]:
        cells = [_shown(group[key]) for key in ("rows", "candidate_recall", "champion_recall")]
        lines.append(f"| {_cell(group['group'])} | {' | '.join(cells)} | {group['status']} |")
    for title, items in (("Reasons", document["reasons"]), ("Warnings", document["warnings"])):
        if items:
            lines += ["", f"{title}:", *(f"- {item}" for item in items)]
    return "\n".join(lines) + "\n"


def write(out: Path, document: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / COMPARISON_JSON).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (out / COMPARISON_MD).write_text(markdown(document), encoding="utf-8")


# -- entry points ---------------------------------------------------------------------------------
def _input_uris(root: Path) -> dict[str, str]:
    """{input folder name: S3 URI} from the job's configuration, when there is one."""
    config = root.parent / "config" / "processingjobconfig.json"
    try:
        request = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    uris = {}
    for item in request.get("ProcessingInputs") or []:
        s3 = item.get("S3Input") or {}
        if s3.get("LocalPath") and s3.get("S3Uri"):
            uris[Path(s3["LocalPath"]).name] = str(s3["S3Uri"])
    return uris


def processing_inputs(root: Path) -> Inputs:
    uris = _input_uris(root)
    folder = root / "input"
    return Inputs(
        candidate=folder / "candidate",
        data=_table_in(folder / "data"),
        out=root / "output",
        champion=folder / "champion",
        data_source=uris.get("data"),
        candidate_source=uris.get("candidate"),
        champion_source=uris.get("champion"),
    )


def failure_message(error: BaseException) -> str:
    """Our own errors as they are; anyone else's without its text (it may quote a value)."""
    return processing_failure(error, "dxops-compare", (CompareError, TableError, ModelError, ConfigError), "comparison")


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1]")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def parser() -> argparse.ArgumentParser:
    defaults, boot = Tolerances(), Bootstrap()
    parser = argparse.ArgumentParser(prog="dxops-compare", description=__doc__.splitlines()[0] if __doc__ else None)
    for flag, metavar, text in (
        ("--candidate", "DIR", "the candidate: a model directory or a folder with its model.tar.gz"),
        ("--champion", "DIR", "the champion (the same forms); none for a first model"),
        ("--data", "TABLE", "the candidate's table: Parquet file or folder, or CSV"),
        ("--out", "DIR", "folder for comparison.json and comparison.md"),
    ):
        parser.add_argument(flag, metavar=metavar, type=Path, help=text)
    flags = {
        "--macro-f1-tolerance": ("macro_f1", "candidate macro-F1 >= champion's minus this"),
        "--rare-recall-tolerance": ("rare_recall", "candidate rare-disease recall >= champion's minus this"),
        "--ece-tolerance": ("ece", "candidate ECE <= champion's plus this"),
        "--group-recall-tolerance": ("group_recall", "no group's recall below the champion's minus this"),
        "--min-macro-f1": ("min_macro_f1", "floor of a first model's macro-F1 (no champion)"),
        "--min-rare-recall": ("min_rare_recall", "floor of a first model's rare-disease recall (no champion)"),
    }
    for flag, (name, text) in flags.items():
        default = getattr(defaults, name)
        parser.add_argument(
            flag, dest=name, type=_fraction, default=default, metavar="X", help=f"{text} (default {default})"
        )
    parser.add_argument(
        "--min-group-rows",
        type=_positive,
        metavar="N",
        default=defaults.min_group_rows,
        help=f"groups with fewer rows are not judged (default {defaults.min_group_rows})",
    )
    parser.add_argument("--bootstrap", metavar="N", type=_positive, default=boot.resamples, help="resamples (1000)")
    parser.add_argument("--seed", metavar="N", type=int, default=boot.seed, help="the bootstrap's seed (default 0)")
    return parser


def _inputs(args: argparse.Namespace, root: Path | None) -> Inputs:
    if args.candidate is not None:
        return Inputs(args.candidate, _table_in(args.data), args.out, args.champion)
    if root is None:
        raise CompareError("no --candidate and not in a SageMaker Processing job")
    return processing_inputs(root)


def main(argv: Sequence[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    root = processing_root()  # in a processing job, its failure message goes there even with flags
    if args.candidate is None and root is None:
        cli.error("--candidate, --data and --out are required outside a SageMaker Processing job")
    if args.candidate is not None and (args.data is None or args.out is None):
        cli.error("--data and --out are required with --candidate")
    tolerances = Tolerances(**{name: getattr(args, name) for name in (f.name for f in fields(Tolerances))})
    bootstrap = Bootstrap(resamples=args.bootstrap, seed=args.seed)
    try:
        inputs = _inputs(args, root)
        with tempfile.TemporaryDirectory(prefix="dxops-compare-") as scratch:
            document = compare(inputs, tolerances, bootstrap, Path(scratch))
            write(inputs.out, document)
            # The candidate's card and evaluation go with the comparison: the registry references
            # them (a reviewer reads them without unpacking model.tar.gz).
            candidate = model_directory(inputs.candidate, Path(scratch))
            for name in CANDIDATE_DOCUMENTS:
                if candidate is not None and (candidate / name).is_file():
                    shutil.copyfile(candidate / name, inputs.out / f"candidate_{name}")
    except Exception as error:  # every failure is reported, none with a record's value
        report_failure(failure_message(error), root)
        return 1
    progress(f"{document['verdict']}: {'; '.join(document['reasons']) or 'every check holds'}")
    summary = {key: document[key] for key in ("verdict", "clearly_better")}
    print(json.dumps({"out": str(inputs.out), **summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
