"""The model on a default simulated cohort of 100,000 records: quality, imbalance and knowledge
ablations, training time, inference latency (writes artifacts/bench/model.json).

1. The cohort: `python -m cohorts generate --records 100000 --seed 7 --curated` (the simulator's
   defaults: 26 common diseases, 200 rare ones drawn by Orphanet prevalence), cached under
   artifacts/bench/cache/model/.
2. dxops-train's `train` with BENCH_HYPERPARAMETERS: wall and CPU seconds; from its
   evaluation.json (held-out test split, grouped by patient): macro-F1, top-3 accuracy, and the mean
   recall over the rare diseases with 5 or fewer training cases.
3. Imbalance ablation: XGBoost with no treatment, class weights, SMOTE and focal loss, each fitted on
   the training run's selection sample and scored on the same test split, alone and plus knowledge
   transfer (the trained model's combination weights over that supervised model).
4. Rare-case ablation: the rare diseases with at least 5 training cases in the sample, cut to 0, 1,
   3 and 5 cases each; the selected candidate refitted; their test recall with the supervised model
   alone and plus knowledge transfer.
5. Latency, in-process: ml.inference's input_fn -> predict_fn -> output_fn on 1 and on 100 records
   (ClinicalRecord JSON made from test rows), p50 and p99, with the contributing features (the
   default) and without ("explain": false), next to raw XGBoost inplace_predict of the same rows'
   feature matrix with the XGBoost booster of step 3 (no treatment), and their ratios. Ours does
   more: JSON, record -> features, the knowledge model over 12,632 diseases, the combination, the
   explanation (one batch prediction per recorded feature).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.report import ARTIFACTS, write_result
from ml import inference
from ml.candidates import Candidate, SupervisedModel
from ml.metrics import classification_metrics, is_rare_code
from ml.model import DiagnosisModel
from ml.scoring import score_rows
from ml.table import LABEL, PATIENT_ID, conform, labelled, read_table
from ml.train import TrainConfig, encode, train
from ml.validation import holdout_split, selection_sample

ROOT = Path(__file__).resolve().parents[1]
RECORDS, SEED = 100_000, 7
CACHE = ARTIFACTS / "cache" / "model"
BENCH_HYPERPARAMETERS = {"repeats": "1", "seed": "0"}
ARMS = ("xgboost+none", "xgboost+class_weights", "xgboost+smote", "xgboost+focal")
CASES = (0, 1, 3, 5)
LATENCY_REPEATS = {1: 200, 100: 30}


def progress(message: str) -> None:
    print(f"  model: {message}", file=sys.stderr, flush=True)


def cohort() -> Path:
    folder = CACHE / f"cohort-{RECORDS}-s{SEED}"
    table = folder / "curated.csv"
    if not table.exists():
        progress(f"generating {RECORDS:,} records (cached in {folder})")
        partial = folder.with_name(folder.name + ".partial")  # an interrupted run leaves no cache
        shutil.rmtree(partial, ignore_errors=True)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "shared"), str(ROOT)])}
        command = [sys.executable, "-m", "cohorts", "generate", "--records", str(RECORDS), "--seed", str(SEED)]
        run = [*command, "--out", str(partial), "--curated"]
        subprocess.run(run, env=env, check=True, stdout=subprocess.DEVNULL)  # noqa: S603 - our own module
        partial.replace(folder)
    return table


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def summary(metrics: dict[str, Any], few: set[str]) -> dict[str, Any]:
    recalls = [metrics["per_class"][label]["recall"] for label in few if label in metrics["per_class"]]
    return {
        "macro_f1": metrics["macro_f1"],
        "top3_accuracy": metrics["top3_accuracy"],
        "rare_recall": metrics["groups"]["rare"]["macro_recall"],
        "rare_le5_recall": round(float(np.mean(recalls)), 4) if recalls else None,
    }


class Split:
    """The training run's split and selection sample, rebuilt from the same seed."""

    def __init__(self, table: pd.DataFrame, config: TrainConfig) -> None:
        rows = labelled(table)
        labels, groups = rows[LABEL].to_numpy(dtype=str), rows[PATIENT_ID].to_numpy(dtype=str)
        train_rows, test_rows = holdout_split(labels, groups, config.test_fraction, config.settings.seed)
        self.training = rows.iloc[train_rows].reset_index(drop=True)
        self.test = rows.iloc[test_rows].reset_index(drop=True)
        sample = selection_sample(
            self.training[LABEL].to_numpy(dtype=str),
            self.training[PATIENT_ID].to_numpy(dtype=str),
            config.selection_rows,
            config.settings.seed,
        )
        self.sample = self.training.iloc[sample].reset_index(drop=True)
        self.counts = Counter(self.training[LABEL].astype(str))
        self.truth = self.test[LABEL].astype(str).tolist()


def with_knowledge(
    model: DiagnosisModel, supervised: SupervisedModel, classes: list[str], counts: dict[str, int]
) -> DiagnosisModel:
    return DiagnosisModel(supervised, classes, counts, model.weights, model.manifest, knowledge=model.knowledge)


def evaluate_pair(
    model: DiagnosisModel,
    *,
    supervised: SupervisedModel,
    classes: list[str],
    counts: dict[str, int],
    split: Split,
    few: set[str],
) -> dict[str, Any]:
    alone = supervised.predict_proba(conform(split.test, supervised.roles))
    # Rare: every rare label of the test split, known to the supervised model or not.
    rare = {label for label in {*classes, *split.truth} if is_rare_code(label)}
    supervised_only = classification_metrics(split.truth, alone, classes, rare=rare, top_k=(1, 3))
    combined = score_rows(with_knowledge(model, supervised, classes, counts), split.test).metrics
    return {"supervised": summary(supervised_only, few), "plus_knowledge": summary(combined, few)}


def imbalance_ablation(model: DiagnosisModel, split: Split, few: set[str]) -> tuple[dict[str, Any], Any]:
    results, boosters = {}, {}
    roles = model.roles
    for arm in ARMS:
        started = time.perf_counter()
        classes, y = encode(split.sample[LABEL].astype(str).tolist())
        supervised = SupervisedModel(Candidate.parse(arm), roles, model.supervised.settings).fit(
            conform(split.sample, roles), y
        )
        counts = dict(Counter(split.sample[LABEL].astype(str)))
        results[arm] = {
            **evaluate_pair(model, supervised=supervised, classes=classes, counts=counts, split=split, few=few),
            "fit_seconds": round(time.perf_counter() - started, 1),
        }
        boosters[arm] = supervised
        progress(f"{arm}: {results[arm]}")
    return results, boosters["xgboost+none"]


def cases_ablation(model: DiagnosisModel, split: Split) -> dict[str, Any]:
    """The rare diseases with >= 5 sample cases and test cases, cut to n training cases each."""
    sample_counts = Counter(split.sample[LABEL].astype(str))
    tested = set(split.truth)
    diseases = sorted(d for d, n in sample_counts.items() if is_rare_code(d) and n >= max(CASES) and d in tested)
    rng = np.random.default_rng(0)
    candidate = Candidate.parse(model.manifest["candidate"])
    results: dict[str, Any] = {"diseases": len(diseases), "candidate": candidate.name}
    for n in CASES:
        keep = np.ones(len(split.sample), dtype=bool)
        labels = split.sample[LABEL].astype(str).to_numpy()
        for disease in diseases:
            rows = np.flatnonzero(labels == disease)
            keep[rng.permutation(rows)[n:]] = False
        reduced = split.sample[keep].reset_index(drop=True)
        classes, y = encode(reduced[LABEL].astype(str).tolist())
        supervised = SupervisedModel(candidate, model.roles, model.supervised.settings).fit(
            conform(reduced, model.roles), y
        )
        counts = dict(Counter(reduced[LABEL].astype(str)))
        pair = evaluate_pair(
            model, supervised=supervised, classes=classes, counts=counts, split=split, few=set(diseases)
        )
        results[f"{n}_cases"] = {
            "supervised_recall": pair["supervised"]["rare_le5_recall"],
            "plus_knowledge_recall": pair["plus_knowledge"]["rare_le5_recall"],
        }
        progress(f"{n} cases per rare disease: {results[f'{n}_cases']}")
    return results


def as_record(row: pd.Series, roles: Any) -> dict[str, Any]:
    """A ClinicalRecord JSON from a table row (labs in their canonical unit)."""
    from dxops.vocab.units import LABS, VITAL_LOINC, VITALS  # noqa: PLC0415

    names = {loinc: name for name, loinc in VITAL_LOINC.items()}
    phenotypes = [
        {"hpo_id": t, "status": "observed" if row[t] == 1 else "excluded"} for t in roles.phenotypes if row[t] != 0
    ]
    labs = [
        {"loinc": c, "value": float(row[c]), "unit": LABS[c].canonical}
        for c in roles.numeric
        if c in LABS and pd.notna(row[c])
    ]
    vitals = [
        {"name": names[c], "value": float(row[c]), "unit": VITALS[c].canonical}
        for c in roles.numeric
        if c in names and pd.notna(row[c])
    ]
    return {
        "record_id": str(row["record_id"]),
        "sex": row.get("sex", "unknown"),
        "age_years": float(row["age_years"]),
        "phenotypes": phenotypes,
        "labs": labs,
        "vitals": vitals,
    }


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000, 3),
    }


def latency(model: DiagnosisModel, raw: SupervisedModel, split: Split) -> dict[str, Any]:
    rows = split.test.head(100)
    records = [as_record(row, model.roles) for _, row in rows.iterrows()]
    matrix = raw.features(conform(rows, raw.roles))
    booster = raw._estimator  # the fitted xgboost.Booster
    result: dict[str, Any] = {}
    for size, repeats in LATENCY_REPEATS.items():
        bodies = {
            "dxops": json.dumps({"records": records[:size]}),
            "dxops_without_explanations": json.dumps({"records": records[:size], "explain": False}),
        }
        samples: dict[str, list[float]] = {name: [] for name in (*bodies, "xgboost_inplace_predict")}
        for _ in range(repeats):
            for name, body in bodies.items():
                started = time.perf_counter()
                inference.output_fn(inference.predict_fn(inference.input_fn(body), model))
                samples[name].append(time.perf_counter() - started)
            started = time.perf_counter()
            booster.inplace_predict(matrix[:size])
            samples["xgboost_inplace_predict"].append(time.perf_counter() - started)
        result[f"{size}_records"] = {name: percentiles(values) for name, values in samples.items()}
        progress(f"latency {size}: {result[f'{size}_records']}")
    return result


def main() -> None:
    started = time.perf_counter()
    table_path = cohort()
    config = TrainConfig.from_hyperparameters(BENCH_HYPERPARAMETERS)
    model_dir = ARTIFACTS / "model"
    progress("training (dxops-train)")
    cpu, wall = cpu_seconds(), time.perf_counter()
    evaluation = train(table_path, model_dir, config)
    train_seconds, train_cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    model = DiagnosisModel.load(model_dir)
    table = read_table(table_path)
    split = Split(table, config)
    few = {label for label in set(split.truth) if is_rare_code(label) and split.counts.get(label, 0) <= 5}
    test = evaluation["test"]
    progress("imbalance ablation")
    arms, raw = imbalance_ablation(model, split, few)
    progress("rare-case ablation")
    cases = cases_ablation(model, split)
    progress("latency")
    timings = latency(model, raw, split)
    metrics = {
        "macro_f1": test["macro_f1"],
        "top3_accuracy": test["top3_accuracy"],
        "rare_le5_recall": evaluation["rare_few_cases_recall"],
        "accuracy": test["accuracy"],
        "ece": test["ece"],
        "train_seconds": round(train_seconds, 1),
        "train_cpu_seconds": round(train_cpu, 1),
        **{f"latency_{size}_p50_ms": timings[f"{size}_records"]["dxops"]["p50_ms"] for size in LATENCY_REPEATS},
        **{f"latency_{size}_p99_ms": timings[f"{size}_records"]["dxops"]["p99_ms"] for size in LATENCY_REPEATS},
        **{
            f"latency_{size}_without_explanations_p50_ms": timings[f"{size}_records"]["dxops_without_explanations"][
                "p50_ms"
            ]
            for size in LATENCY_REPEATS
        },
    }
    baseline = {
        f"xgboost_inplace_{size}_p50_ms": timings[f"{size}_records"]["xgboost_inplace_predict"]["p50_ms"]
        for size in LATENCY_REPEATS
    }
    baseline["supervised_only_macro_f1"] = evaluation["supervised_only"]["macro_f1"]
    ratio = {}
    for size in LATENCY_REPEATS:
        raw = max(baseline[f"xgboost_inplace_{size}_p50_ms"], 1e-6)
        ratio[f"latency_{size}_p50_over_xgboost"] = round(metrics[f"latency_{size}_p50_ms"] / raw, 1)
        ratio[f"latency_{size}_without_explanations_p50_over_xgboost"] = round(
            metrics[f"latency_{size}_without_explanations_p50_ms"] / raw, 1
        )
    path = write_result(
        "model",
        metrics,
        baseline,
        ratio,
        records=RECORDS,
        rows={"test": len(split.test), "training": len(split.training), "selection_sample": len(split.sample)},
        rare_le5_classes_tested=len(few),
        selected=evaluation["cross_validation"]["selected"],
        candidates=evaluation["cross_validation"]["candidates"],
        imbalance_ablation=arms,
        rare_cases_ablation=cases,
        latency=timings,
        hyperparameters=BENCH_HYPERPARAMETERS,
        cpus=os.cpu_count(),
        load_average=os.getloadavg(),
        seconds=round(time.perf_counter() - started, 1),
    )
    progress(f"wrote {path}")
