"""dxops-train: the training job (SageMaker script mode, and locally the same script).

    dxops-train --data TABLE --out MODEL_DIR [--hyperparameters FILE.json] [--set key=value ...]

Under the SageMaker training container contract (`python -m ml.train` with no --data): the table
is read from SM_CHANNEL_TRAIN (a folder of Parquet or CSV files), hyperparameters from SM_HPS
(/opt/ml/input/config/hyperparameters.json), the model is written to SM_MODEL_DIR and a failure
reason to /opt/ml/output/failure. Steps (docs/model.md):

1. read the table (ml/table.py), keep labelled rows, split off a held-out test split by patient;
2. select a candidate (model x imbalance strategy) by cross-validation grouped by patient on
   macro-F1 and rare-disease recall, every candidate's scores recorded;
3. fit the knowledge combination on the chosen candidate's out-of-fold predictions (ml/combine.py);
4. refit the chosen candidate on the whole training split, evaluate on the test split (with the
   supervised model alone and the knowledge model alone beside it), write the model directory,
   evaluation.json and the model card. model.json records the held-out split (`held_out`: kind,
   seed, test fraction, rows, SHA-256 of the sorted record ids) and the directory holds digests
   of the training patients (TRAINING_PATIENTS): dxops-compare (ml/compare.py) needs both.

Progress goes to stderr; metric lines (`dxops-metric name=value`) to stdout, matched by
METRIC_DEFINITIONS (dxops/vocab/training_metrics.py). No identifier ever reaches the output: only labels and
aggregates.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
import xgboost
from numpy.typing import NDArray
from sklearn.metrics import f1_score, recall_score

from dxops.vocab.training_metrics import METRIC_PREFIX
from ml.candidates import Candidate, Settings, SupervisedModel
from ml.combine import FitCases, Weights, candidate_table, choose_threshold, fit_weights
from ml.distributed import Cluster, broadcast, cluster_from_environment, communicator, gather, tracker
from ml.drift_profile import write_baseline
from ml.knowledge import default_model
from ml.metrics import classification_metrics, is_rare_code
from ml.model import MANIFEST, DiagnosisModel, knowledge_candidates, phenotype_cases
from ml.model_card import write_model_card
from ml.records import phenotypes_expanded
from ml.scoring import score_rows
from ml.table import (
    LABEL,
    PATIENT_ID,
    RECORD_ID,
    ColumnRoles,
    TableError,
    column_roles,
    conform,
    labelled,
    read_table,
)
from ml.validation import auto_repeats, cv_folds, hashed_split, holdout_split, selection_sample

ML_SOURCE = Path(__file__).resolve().parent
# SageMaker MetricDefinitions for the training job (CloudWatch metrics of the job).
DEFAULT_CANDIDATES = ("logreg+class_weights", "forest+class_weights", "xgboost+none", "xgboost+class_weights")
# The model directory's digests of the patients it was trained on (dxops-compare leaves their
# held-out rows out when this model is the champion): one line per patient, sorted, gzipped.
TRAINING_PATIENTS = "training_patients.txt.gz"
PATIENT_DIGEST_CHARS = 16  # hex characters of the SHA-256 of a patient_id (64 bits)


class ConfigError(ValueError):
    """A hyperparameter the job refuses (the message names it)."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the model (recorded in model.json)."""

    candidates: tuple[str, ...] = DEFAULT_CANDIDATES
    folds: int = 3
    repeats: int = 0  # 0: automatic (validation.auto_repeats)
    test_fraction: float = 0.2
    selection_rows: int = 20_000
    combiner_rows: int = 6_000
    dataset_version: str = "unversioned"
    settings: Settings = field(default_factory=Settings)

    @classmethod
    def from_hyperparameters(cls, values: dict[str, Any]) -> TrainConfig:
        """SageMaker passes hyperparameters as strings: each is parsed to its field's type."""
        config, settings = {}, {}
        own = {f.name: f for f in fields(cls) if f.name != "settings"}
        theirs = {f.name: f for f in fields(Settings)}
        for key, value in values.items():
            if key in own:
                config[key] = _parse(key, value, own[key].default)
            elif key in theirs:
                settings[key] = _parse(key, value, theirs[key].default)
            elif not key.startswith("sagemaker_"):
                raise ConfigError(f"unknown hyperparameter {key!r}")
        for name in config.get("candidates", ()):
            try:
                Candidate.parse(name)
            except ValueError as error:
                raise ConfigError(str(error)) from None
        return replace(cls(**config), settings=replace(Settings(), **settings))


def _parse(key: str, value: Any, default: Any) -> Any:
    if isinstance(default, tuple):
        items = value if isinstance(value, list) else str(value).split(",")
        return tuple(str(item).strip() for item in items if str(item).strip())
    try:
        return type(default)(value)
    except (TypeError, ValueError):
        raise ConfigError(f"hyperparameter {key}: {value!r} is not a {type(default).__name__}") from None


def progress(message: str) -> None:
    print(f"[dxops-train] {message}", file=sys.stderr, flush=True)


def emit_metric(name: str, value: float | None) -> None:
    if value is not None:
        print(f"{METRIC_PREFIX} {name}={value:.6f}", flush=True)


def code_version() -> str:
    """SHA-256 of the ml package's sources (there is no git in a training container)."""
    digest = hashlib.sha256()
    for path in sorted(ML_SOURCE.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def data_fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode() + b"\0")
        with file.open("rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def encode(labels: Sequence[str]) -> tuple[list[str], NDArray[np.int64]]:
    classes = sorted(set(labels))
    position = {label: i for i, label in enumerate(classes)}
    return classes, np.array([position[label] for label in labels], dtype=np.int64)


def fit_supervised(
    candidate: Candidate, roles: ColumnRoles, settings: Settings, frame: pd.DataFrame, labels: Sequence[str]
) -> tuple[SupervisedModel, list[str]]:
    classes, y = encode(labels)
    return SupervisedModel(candidate, roles, settings).fit(frame, y), classes


@dataclass
class CandidateResult:
    name: str
    macro_f1: float
    rare_recall: float | None
    score: float
    seconds: float
    folds: list[dict[str, Any]]


def rare_recall(metrics: dict[str, Any]) -> float | None:
    value = metrics["groups"]["rare"].get("macro_recall")
    return None if value is None else float(value)


def decision_quality(truth: list[str], predicted: list[str], weights: list[float]) -> float:
    """selection_score of a list of weighted decisions (the threshold correction is chosen by it)."""
    macro = float(f1_score(truth, predicted, average="macro", sample_weight=weights, zero_division=0))
    rare = sorted({label for label in truth if is_rare_code(label)})
    recall = (
        float(recall_score(truth, predicted, labels=rare, average="macro", sample_weight=weights, zero_division=0))
        if rare
        else None
    )
    return selection_score(macro, recall)


def selection_score(macro_f1: float, rare: float | None) -> float:
    """Mean of macro-F1 and rare-disease recall (macro-F1 alone when there is no rare class)."""
    return macro_f1 if rare is None else (macro_f1 + rare) / 2


class Trainer:
    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.settings = config.settings
        self.knowledge = default_model()

    def cross_validate(self, frame: pd.DataFrame, roles: ColumnRoles) -> tuple[list[CandidateResult], dict[str, Any]]:
        """Every candidate on the same folds; the out-of-fold pieces of each (for the combination)."""
        labels = frame[LABEL].to_numpy(dtype=str)
        groups = frame[PATIENT_ID].to_numpy(dtype=str)
        repeats = self.config.repeats or auto_repeats(labels, groups, self.config.folds)
        folds = cv_folds(labels, groups, self.config.folds, repeats, self.settings.seed)
        rare = {label for label in labels if is_rare_code(label)}
        results, pieces = [], {}
        for name in self.config.candidates:
            candidate = Candidate.parse(name)
            started = time.perf_counter()
            fold_metrics, oof = [], []
            for fold in folds:
                model, classes = fit_supervised(
                    candidate, roles, self.settings, frame.iloc[fold.train], labels[fold.train]
                )
                proba = model.predict_proba(frame.iloc[fold.valid])
                metrics = classification_metrics(labels[fold.valid], proba, classes, rare=rare, top_k=(1, 3))
                fold_metrics.append(
                    {
                        "repeat": fold.repeat,
                        "fold": fold.fold,
                        "macro_f1": metrics["macro_f1"],
                        "rare_recall": rare_recall(metrics),
                    }
                )
                oof.append((fold, classes, proba))
                where = f"repeat {fold.repeat + 1} fold {fold.fold + 1}/{self.config.folds}"
                progress(f"{name}: {where} macro-F1 {metrics['macro_f1']:.3f}")
            macro = float(np.mean([m["macro_f1"] for m in fold_metrics]))
            rares = [m["rare_recall"] for m in fold_metrics if m["rare_recall"] is not None]
            rare_mean = float(np.mean(rares)) if rares else None
            seconds = time.perf_counter() - started
            results.append(
                CandidateResult(
                    name,
                    round(macro, 6),
                    None if rare_mean is None else round(rare_mean, 6),
                    round(selection_score(macro, rare_mean), 6),
                    round(seconds, 2),
                    fold_metrics,
                )
            )
            pieces[name] = oof
            shown = "n/a" if rare_mean is None else f"{rare_mean:.3f}"
            progress(f"{name}: macro-F1 {macro:.3f}, rare recall {shown} ({seconds:.0f} s)")
        details = {"folds": self.config.folds, "repeats": repeats, "rows": len(frame), "classes": len(set(labels))}
        return results, {"pieces": pieces, "details": details}

    def fit_combination(
        self, frame: pd.DataFrame, roles: ColumnRoles, oof: list[Any]
    ) -> tuple[Weights, dict[str, Any]]:
        """The combination weights from out-of-fold predictions (first repeat), a fold's class counts
        standing for the training counts. Every rare row (what the combination is about) and a
        sample of the others, each weighted by the inverse of its sampling rate."""
        labels = frame[LABEL].to_numpy(dtype=str)
        rng = np.random.default_rng(self.settings.seed)
        pieces = [piece for piece in oof if piece[0].repeat == 0]
        budget = max(1, self.config.combiner_rows // max(1, len(pieces)))
        scorer = self.knowledge.scorer()
        cases: list[FitCases] = []
        for fold, classes, proba in pieces:
            counts = dict(Counter(labels[fold.train].tolist()))
            valid_labels = labels[fold.valid]
            rare_rows = np.flatnonzero([is_rare_code(label) for label in valid_labels])
            other = np.setdiff1d(np.arange(len(fold.valid)), rare_rows)
            sampled = rng.permutation(other)[: max(0, budget - len(rare_rows))]
            take = np.sort(np.concatenate([rare_rows, sampled]))
            weight_of_other = len(other) / max(1, len(sampled))
            rows = fold.valid[take]
            phenotypes = phenotype_cases(conform(frame.iloc[rows], roles), roles.phenotypes, self.knowledge)
            ids, scores, _top = knowledge_candidates(scorer, phenotypes, sorted({*classes, *labels[rows]}))
            truth = labels[rows].tolist()
            weights = np.array([1.0 if is_rare_code(label) else weight_of_other for label in truth])
            table = candidate_table(classes, proba[take], ids, scores, counts=counts)
            cases.append(FitCases(table, truth, weights))
        weights_fit, fit = fit_weights(cases)
        threshold, by_threshold = choose_threshold(cases, weights_fit, decision_quality)
        fit["threshold_scores"] = by_threshold
        progress(
            f"combination fitted on {fit['cases']} out-of-fold cases ({fit['unreachable']} whose disease no "
            f"candidate list held left out): log loss {fit['log_loss']}, threshold correction {threshold:g}"
        )
        return replace(weights_fit, threshold=threshold), fit


@dataclass(frozen=True)
class Selection:
    """Model selection and the knowledge combination, made on a sample of the training rows."""

    results: list[CandidateResult]
    details: dict[str, Any]
    best: CandidateResult
    weights: Weights
    combination_fit: dict[str, Any]
    rows: int


def select(training: pd.DataFrame, roles: ColumnRoles, config: TrainConfig, trainer: Trainer) -> Selection:
    sample = selection_sample(
        training[LABEL].to_numpy(dtype=str),
        training[PATIENT_ID].to_numpy(dtype=str),
        config.selection_rows,
        config.settings.seed,
    )
    selection = training.iloc[sample].reset_index(drop=True)
    prepared = pd.concat([selection[[LABEL, PATIENT_ID]], conform(selection, roles)], axis=1)
    results, cv = trainer.cross_validate(prepared, roles)
    best = max(results, key=lambda r: (r.score, -config.candidates.index(r.name)))
    emit_metric("cv_macro_f1", best.macro_f1)
    emit_metric("cv_rare_recall", best.rare_recall)
    progress(f"selected {best.name} (score {best.score:.3f})")
    weights, combination_fit = trainer.fit_combination(prepared, roles, cv["pieces"][best.name])
    return Selection(results, cv["details"], best, weights, combination_fit, len(selection))


def config_digest(config: TrainConfig) -> str:
    """Short SHA-256 of every setting (seed and hyperparameters): part of the model version."""
    text = json.dumps({**asdict(config), "candidates": list(config.candidates)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def split_rows(
    rows: pd.DataFrame, kind: str, test_fraction: float, seed: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(train rows, test rows) of the labelled rows: `holdout` (stratified, grouped by patient) or
    `hashed` (a hash of the patient: multi-instance jobs). dxops-compare recomputes it from model.json."""
    groups = rows[PATIENT_ID].to_numpy(dtype=str)
    if kind == "holdout":
        return holdout_split(rows[LABEL].to_numpy(dtype=str), groups, test_fraction, seed)
    if kind == "hashed":
        return hashed_split(groups, test_fraction, seed)
    raise ValueError(f"unknown split kind {kind!r}")


def record_ids(rows: pd.DataFrame) -> list[str]:
    return [str(i) for i in rows[RECORD_ID].astype("string").fillna("")]


def records_digest(ids: Iterable[str]) -> str:
    """SHA-256 of the sorted record ids, one per line: what identifies a held-out split."""
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def held_out_record(kind: str, config: TrainConfig, ids: Sequence[str]) -> dict[str, Any]:
    """model.json's `held_out`: what recomputes the test split and what verifies it."""
    return {
        "kind": kind,
        "seed": config.settings.seed,
        "test_fraction": config.test_fraction,
        "test_rows": len(ids),
        "test_records_sha256": records_digest(ids),
    }


def patient_digest(patient_id: str) -> str:
    """The first PATIENT_DIGEST_CHARS hex characters of the patient_id's SHA-256."""
    return hashlib.sha256(str(patient_id).encode()).hexdigest()[:PATIENT_DIGEST_CHARS]


def patient_digests(patient_ids: Iterable[str]) -> set[str]:
    return {patient_digest(patient_id) for patient_id in patient_ids}


def write_training_patients(out: Path, digests: Iterable[str]) -> dict[str, Any]:
    """TRAINING_PATIENTS in `out` (reproducible: sorted, gzip without a time); model.json's record of it."""
    unique = sorted(set(digests))
    data = gzip.compress("".join(f"{digest}\n" for digest in unique).encode(), mtime=0)
    out.mkdir(parents=True, exist_ok=True)
    (out / TRAINING_PATIENTS).write_bytes(data)
    return {
        "file": TRAINING_PATIENTS,
        "patients": len(unique),
        "digest": f"sha256(patient_id)[:{PATIENT_DIGEST_CHARS}]",
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def manifest_of(
    data: Path,
    config: TrainConfig,
    selection: Selection,
    trainer: Trainer,
    *,
    training: pd.DataFrame,
    roles: ColumnRoles,
) -> dict[str, Any]:
    code, fingerprint, settings = code_version(), data_fingerprint(data), config_digest(config)
    return {
        "model_version": f"{code}-{fingerprint[:12]}-{settings}",
        "dataset_version": config.dataset_version,
        "data_sha256": fingerprint,
        "code_version": code,
        "seed": config.settings.seed,
        "candidate": selection.best.name,
        "config": {**asdict(config), "candidates": list(config.candidates)},
        "libraries": {
            "python": platform.python_version(),
            "xgboost": xgboost.__version__,
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
        },
        "knowledge_release": _knowledge_release(),
        "phenotypes_expanded": phenotypes_expanded(training.iloc[:5000], roles.phenotypes, trainer.knowledge.ancestors),
    }


def finish(
    out: Path, model: DiagnosisModel, test: pd.DataFrame, selection: Selection, started: float
) -> dict[str, Any]:
    """Saves the model, evaluates it on the test split, writes evaluation.json and the card."""
    model.save(out)
    evaluation = evaluate_split(model, test, model.counts)
    evaluation["cross_validation"] = {
        **selection.details,
        "candidates": [asdict(r) for r in selection.results],
        "selected": selection.best.name,
    }
    evaluation["combination"] = {"weights": asdict(selection.weights), **selection.combination_fit}
    evaluation["train_seconds"] = round(time.perf_counter() - started, 1)
    (out / "evaluation.json").write_text(json.dumps(evaluation, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    saved = json.loads((out / MANIFEST).read_text(encoding="utf-8"))  # with the classes and roles
    write_model_card(out, saved, evaluation)
    for name in ("accuracy", "macro_f1", "top3_accuracy", "ece"):
        emit_metric(f"test_{name}", evaluation["test"][name])
    emit_metric("test_rare_recall", evaluation["test"]["groups"]["rare"].get("macro_recall"))
    emit_metric("train_seconds", evaluation["train_seconds"])
    progress(f"model written to {out} ({evaluation['train_seconds']:.0f} s)")
    return evaluation


def _read(data: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    progress(f"reading {data.name}")
    table = read_table(data)
    rows = labelled(table)
    if rows[LABEL].nunique() < 2:
        raise TableError("fewer than 2 distinct labels: nothing to learn")
    return table, rows


def train(data: Path, out: Path, config: TrainConfig) -> dict[str, Any]:
    started = time.perf_counter()
    table, rows = _read(data)
    roles = column_roles(table)
    progress(
        f"{len(table)} rows, {len(rows)} labelled, {rows[LABEL].nunique()} classes; features: "
        f"{len(roles.phenotypes)} phenotypes, {len(roles.numeric)} numeric, {len(roles.categorical)} categorical"
    )
    train_rows, test_rows = split_rows(rows, "holdout", config.test_fraction, config.settings.seed)
    training, test = rows.iloc[train_rows].reset_index(drop=True), rows.iloc[test_rows].reset_index(drop=True)
    trainer = Trainer(config)
    selection = select(training, roles, config, trainer)
    progress(f"refitting {selection.best.name} on {len(training)} training rows")
    supervised, classes = fit_supervised(
        Candidate.parse(selection.best.name),
        roles,
        config.settings,
        conform(training, roles),
        training[LABEL].astype(str).tolist(),
    )
    counts = dict(Counter(training[LABEL].astype(str).tolist()))
    manifest = manifest_of(data, config, selection, trainer, training=training, roles=roles)
    manifest["rows"] = {
        "table": len(table),
        "labelled": len(rows),
        "train": len(training),
        "test": len(test),
        "selection": selection.rows,
    }
    manifest["held_out"] = held_out_record("holdout", config, record_ids(test))
    manifest["training_patients"] = write_training_patients(out, patient_digests(training[PATIENT_ID]))
    model = DiagnosisModel(supervised, classes, counts, selection.weights, manifest, knowledge=trainer.knowledge)
    # The drift monitor's reference (ml/drift_profile.py): inside every model version's model.tar.gz.
    manifest["drift_baseline"] = write_baseline(out, training, model, config.settings.seed, held_out=test)
    return finish(out, model, test, selection, started)


def train_distributed(data: Path, out: Path, config: TrainConfig, cluster: Cluster) -> dict[str, Any] | None:
    """Multi-instance training (ml/distributed.py): this host's shard in `data`; the leader
    selects, combines and writes the model, every host trains the final XGBoost together."""
    started = time.perf_counter()
    table, rows = _read(data)
    trainer = Trainer(config)
    progress(f"host {cluster.rank + 1} of {cluster.size}: {len(rows)} labelled rows in this shard")
    train_rows, test_rows = split_rows(rows, "hashed", config.test_fraction, config.settings.seed)
    training, test = rows.iloc[train_rows].reset_index(drop=True), rows.iloc[test_rows].reset_index(drop=True)
    with tracker(cluster):
        recipe: dict[str, Any] | None = None
        if cluster.is_leader:  # single-host work, before joining the others (see ml/distributed.py)
            roles = column_roles(table)
            candidates = tuple(c for c in config.candidates if Candidate.parse(c).model == "xgboost")
            left_out = sorted(set(config.candidates) - set(candidates))
            if left_out:
                progress(f"multi-instance: XGBoost candidates only ({', '.join(left_out)} left out)")
            leader = replace(config, candidates=candidates or ("xgboost+class_weights",))
            selection = select(training, roles, leader, Trainer(leader))
            template = SupervisedModel(Candidate.parse(selection.best.name), roles, config.settings)
            features = template.fit_features(conform(training, roles))
            recipe = {"roles": roles, "selection": selection, "features": features}
        with communicator(cluster):
            recipe = broadcast(recipe)
            assert recipe is not None
            roles, selection = recipe["roles"], recipe["selection"]
            shard_counts = gather(dict(Counter(training[LABEL].astype(str).tolist())), cluster)
            counts = dict(sum((Counter(c) for c in shard_counts), Counter()))
            classes = sorted(counts)
            progress(f"training {selection.best.name} across {cluster.size} hosts on {len(training)} local rows")
            position = {label: i for i, label in enumerate(classes)}
            supervised = SupervisedModel(Candidate.parse(selection.best.name), roles, config.settings).fit(
                conform(training, roles),
                np.array([position[label] for label in training[LABEL].astype(str)], dtype=np.int64),
                class_counts=np.array([counts[label] for label in classes], dtype=np.int64),
                features_from=recipe["features"],
            )
            progress(f"booster sha256 {supervised.booster_digest()}")
            # The held-out split and the training patients of every shard (dxops-compare's inputs).
            held_ids = [i for ids in gather(record_ids(test), cluster) for i in ids]
            patients: set[str] = set().union(*gather(patient_digests(training[PATIENT_ID]), cluster))
    if not cluster.is_leader:
        return None
    manifest = manifest_of(data, config, selection, trainer, training=training, roles=roles)
    manifest["hosts"] = cluster.size
    manifest["rows"] = {
        "table": len(table),
        "labelled": len(rows),
        "train": sum(counts.values()),
        "test": len(test),
        "selection": selection.rows,
    }
    manifest["held_out"] = held_out_record("hashed", config, held_ids)
    manifest["training_patients"] = write_training_patients(out, patients)
    model = DiagnosisModel(supervised, classes, counts, selection.weights, manifest, knowledge=trainer.knowledge)
    # The drift monitor's reference (ml/drift_profile.py): inside every model version's model.tar.gz.
    manifest["drift_baseline"] = write_baseline(out, training, model, config.settings.seed, held_out=test)
    return finish(out, model, test, selection, started)


def _knowledge_release() -> str:
    from ml.knowledge import ANNOTATIONS_PATH  # noqa: PLC0415

    return hashlib.sha256(ANNOTATIONS_PATH.read_bytes()).hexdigest()[:16]


def evaluate_split(model: DiagnosisModel, test: pd.DataFrame, counts: dict[str, int]) -> dict[str, Any]:
    """Metrics of the model on the test split, with the supervised model alone beside it."""
    scored = score_rows(model, test, seed=int(model.manifest.get("seed", 0)))
    alone = model.supervised.predict_proba(conform(test, model.roles))
    supervised_only = classification_metrics(scored.truth, alone, model.classes, rare=scored.rare, top_k=(1, 3))
    few = {label for label in scored.rare if counts.get(label, 0) <= 5}
    return {
        "test": scored.metrics,
        "intervals": scored.intervals,
        "supervised_only": _headline(supervised_only),
        "rare_few_cases_recall": _group_recall(scored.metrics, few),
        "rare_few_cases_classes": len(few & set(scored.truth)),
    }


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    keys = ("accuracy", "macro_f1", "top3_accuracy")
    return {**{key: metrics[key] for key in keys}, "rare_recall": rare_recall(metrics)}


def _group_recall(metrics: dict[str, Any], labels: set[str]) -> float | None:
    recalls = [
        metrics["per_class"][label]["recall"]
        for label in labels
        if label in metrics["per_class"] and metrics["per_class"][label]["support"] > 0
    ]
    return round(float(np.mean(recalls)), 6) if recalls else None


# -- entry points -------------------------------------------------------------------------------
def _container_paths() -> tuple[Path, Path, dict[str, Any]] | None:
    """(data, model dir, hyperparameters) under the SageMaker training contract, else None."""
    if "SM_MODEL_DIR" not in os.environ:
        return None
    data = Path(os.environ.get("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train"))
    hyperparameters = json.loads(os.environ.get("SM_HPS", "{}"))
    return data, Path(os.environ["SM_MODEL_DIR"]), hyperparameters


def _table_in(folder: Path) -> Path:
    """A channel folder holds Parquet files (read as one dataset) or one CSV file."""
    if not folder.is_dir():
        return folder
    csvs = sorted(folder.glob("*.csv"))
    return csvs[0] if len(csvs) == 1 and not any(folder.rglob("*.parquet")) else folder


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dxops-train", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, help="the table: Parquet file or folder, or CSV")
    parser.add_argument("--out", type=Path, help="the model directory to write")
    parser.add_argument("--hyperparameters", type=Path, help="JSON object of hyperparameters")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="one hyperparameter")
    # Script mode passes the hyperparameters as arguments too (--candidates x ...), as the
    # sagemaker-training toolkit does; in a container they are read from SM_HPS instead.
    args, extra = parser.parse_known_args(argv)
    container = _container_paths() if args.data is None else None
    if container is None and (args.data is None or args.out is None):
        parser.error("--data and --out are required outside a SageMaker training container")
    if container is None and extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    data, out, hyperparameters = container or (args.data, args.out, {})
    if args.hyperparameters:
        hyperparameters.update(json.loads(args.hyperparameters.read_text(encoding="utf-8")))
    hyperparameters.update(dict(item.split("=", 1) for item in args.set))
    try:
        config = TrainConfig.from_hyperparameters(hyperparameters)
        cluster = cluster_from_environment() if container is not None else None
        if cluster is None:
            train(_table_in(data), out, config)
        else:
            train_distributed(_table_in(data), out, config, cluster)
    except (TableError, ConfigError, ValueError) as error:
        # Our own messages name columns and counts; a library's may quote cell values: withheld.
        known = isinstance(error, (TableError, ConfigError))
        message = (
            f"dxops-train: {error}"
            if known
            else f"dxops-train: the table could not be read ({type(error).__name__}; details withheld)"
        )
        print(message, file=sys.stderr)
        if container is not None:
            failure = Path(os.environ.get("SM_OUTPUT_DIR", "/opt/ml/output")) / "failure"
            failure.parent.mkdir(parents=True, exist_ok=True)
            failure.write_text(message, encoding="utf-8")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
