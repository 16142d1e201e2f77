"""The model card (model_card.md in the model directory): intended use, data, metrics per group,
limitations. Written from model.json and evaluation.json only: aggregates, never identifiers."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _interval(evaluation: dict[str, Any], key: str) -> str:
    bounds = evaluation.get("intervals", {}).get(key)
    return f" ({_fmt(bounds['low'])} to {_fmt(bounds['high'])})" if bounds else ""


def _row(*cells: Any) -> str:
    return "| " + " | ".join(_fmt(cell) for cell in cells) + " |"


def write_model_card(directory: Path, manifest: dict[str, Any], evaluation: dict[str, Any]) -> Path:
    test = evaluation["test"]
    groups = test.get("groups", {})
    roles = manifest.get("column_roles", {})
    rows = manifest.get("rows", {})
    candidates = evaluation.get("cross_validation", {}).get("candidates", [])
    lines = [
        f"# Model card: dxops diagnosis model {manifest.get('model_version')}",
        "",
        "## Intended use",
        "Decision support for clinicians and rare-disease teams: a ranked list of diagnoses to consider, with",
        "calibrated probabilities, for a clinical record (phenotypes as HPO terms, labs, vitals, history).",
        "Not a diagnosis: every suggestion needs a clinician's confirmation. Not for triage or for deciding",
        "care without review. Diseases are ranked even with no training case (the knowledge model over the",
        "HPO annotations), with lower confidence that the probabilities show.",
        "",
        "## Data",
        f"- Dataset version `{manifest.get('dataset_version')}`, data SHA-256 `{manifest.get('data_sha256')}`.",
        f"- Rows: {rows.get('table')} in the table, {rows.get('labelled')} labelled; {rows.get('train')} training, "
        f"{rows.get('test')} held-out test (split by patient), {rows.get('selection')} used for model selection.",
        f"- Classes: {len(manifest.get('classes', []))} with training cases; features: "
        f"{len(roles.get('phenotypes', []))} phenotypes, {len(roles.get('numeric', []))} numeric, "
        f"{len(roles.get('categorical', []))} categorical.",
    ]
    for column, reason in sorted(roles.get("ignored", {}).items()):
        lines.append(f"- Column `{column}` not used: {reason}.")
    lines += [
        "",
        "## Model",
        f"- Selected by {evaluation.get('cross_validation', {}).get('folds')}-fold cross-validation grouped by patient "
        f"(repeats: {evaluation.get('cross_validation', {}).get('repeats')}): `{manifest.get('candidate')}`.",
        "- Combined with the HPO knowledge model by a conditional logit fitted on out-of-fold predictions.",
        f"- Seed {manifest.get('seed')}, code `{manifest.get('code_version')}`, libraries {manifest.get('libraries')}.",
        "",
        "| candidate | macro-F1 (CV) | rare recall (CV) | score | seconds |",
        "|---|---|---|---|---|",
        *(_row(c["name"], c["macro_f1"], c["rare_recall"], c["score"], c["seconds"]) for c in candidates),
        "",
        "## Metrics (held-out test split, 95% bootstrap intervals)",
        "| metric | value |",
        "|---|---|",
        *(
            f"| {key} | {_fmt(test.get(key))}{_interval(evaluation, key)} |"
            for key in (
                "accuracy",
                "macro_f1",
                "weighted_f1",
                "balanced_accuracy",
                "auc_macro_ovr",
                "top3_accuracy",
                "ece",
                "brier",
            )
        ),
        "",
        "| group | cases | accuracy | top-3 accuracy | mean recall |",
        "|---|---|---|---|---|",
        *(
            _row(name, g.get("n"), g.get("accuracy"), g.get("top3_accuracy"), g.get("macro_recall"))
            for name, g in groups.items()
        ),
        _row(
            "rare, <= 5 training cases",
            f"{evaluation.get('rare_few_cases_classes')} classes",
            None,
            None,
            evaluation.get("rare_few_cases_recall"),
        ),
        "",
        "## Limitations",
        "- Trained on the sites and the population of the dataset above: performance elsewhere must be checked",
        "  (a new site, a new lab calibration, a disease outbreak shift the inputs; dxops monitors drift).",
        "- Rare diseases with few or no cases rest on the HPO annotations: their frequencies are approximate",
        "  and some diseases are poorly annotated; such candidates are hypotheses for a specialist.",
        "- Per-class metrics of classes with a handful of test cases are noisy (see the support column of the",
        "  evaluation report); classes with fewer than 2 patients were not tested at all.",
        "- Probabilities are calibrated on this dataset's class frequencies; a population with other",
        "  prevalences needs recalibration.",
        "",
    ]
    path = directory / "model_card.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
