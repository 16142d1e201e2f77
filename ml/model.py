"""The trained model: supervised model + knowledge model + their combination, saved as a directory.

MODEL_DIR/
  model.json        manifest: format version, classes and their training counts, column roles,
                    combination weights, hyperparameters, seed, dataset and code versions, and the
                    SHA-256 of supervised.joblib (checked before it is unpickled)
  supervised.joblib the fitted SupervisedModel (ml/candidates.py)
  evaluation.json   metrics of the held-out test split, cross-validation of every candidate
  model_card.md     intended use, data, metrics per group, limitations

`DiagnosisModel.predict` is what the endpoint (ml/inference.py), dxops-evaluate and dxops-rank run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ml.candidates import SupervisedModel
from ml.combine import (
    KNOWLEDGE_CANDIDATES,
    CandidateTable,
    Weights,
    candidate_table,
    decision_scores,
    probabilities,
)
from ml.knowledge import KnowledgeModel, default_model
from ml.knowledge_scorer import KnowledgeScorer, TopK
from ml.records import records_frame
from ml.table import ColumnRoles, conform

FORMAT_VERSION = 1
MANIFEST, SUPERVISED = "model.json", "supervised.joblib"
RARE_CANDIDATES = 5


class ModelError(ValueError):
    """The model directory is missing, incomplete or altered."""


@dataclass(frozen=True)
class Diagnosis:
    disease_id: str
    name: str | None
    probability: float


@dataclass(frozen=True)
class Prediction:
    diagnoses: list[Diagnosis]  # best first, calibrated probabilities over all diseases
    rare_candidates: list[Diagnosis]  # the knowledge model's best annotated diseases (its posterior)
    contributions: list[tuple[str, float]]  # features behind the top supervised class


def phenotype_cases(frame: pd.DataFrame, phenotypes: tuple[str, ...], knowledge: KnowledgeModel) -> list[Any]:
    """(observed, excluded) per row for the knowledge model. Observed terms that are ancestors of
    another observed term of the row are left out: a table expanded along the ontology (the Glue
    ETL's) and one that is not (a hospital export) then give the same evidence, counted once."""
    if not phenotypes:
        return [((), ())] * len(frame)
    values = frame[list(phenotypes)].to_numpy(dtype=np.int8)
    cases = []
    for row in values:
        observed = [phenotypes[j] for j in np.flatnonzero(row == 1)]
        implied = {ancestor for term in observed for ancestor in knowledge.ancestors(term)}
        excluded = [phenotypes[j] for j in np.flatnonzero(row == -1)]
        cases.append(([term for term in observed if term not in implied], excluded))
    return cases


def _by_column(table: CandidateTable, proba: NDArray[np.float64], columns: list[str]) -> NDArray[np.float64]:
    """Each row's probabilities of the listed diseases, renormalised to sum to 1."""
    position = {disease: j for j, disease in enumerate(columns)}
    result = np.zeros((len(table.diseases), len(columns)))
    for i, diseases in enumerate(table.diseases):
        for j, disease in enumerate(diseases):
            if disease in position:
                result[i, position[disease]] = proba[i, j]
    return np.asarray(result / result.sum(axis=1, keepdims=True), dtype=np.float64)


def knowledge_candidates(
    scorer: KnowledgeScorer, cases: list[Any], classes: Sequence[str]
) -> tuple[list[list[str]], list[dict[str, float]], TopK]:
    """Per case, the knowledge model's top KNOWLEDGE_CANDIDATES diseases and the knowledge scores
    of those and of the annotated ones among `classes` (training, evaluation and serving alike).
    A case with no phenotype has no knowledge candidate: every disease would tie."""
    top = scorer.top(cases, KNOWLEDGE_CANDIDATES)
    annotated = [disease for disease in classes if scorer.knows(disease)]
    known = scorer.scores(cases, diseases=annotated) if annotated else np.zeros((len(cases), 0))
    ids: list[list[str]] = []
    scores: list[dict[str, float]] = []
    for (observed, excluded), row, row_scores, k in zip(cases, top.indices, top.scores, known, strict=True):
        informative = bool(observed) or bool(excluded)
        ids.append([scorer.diseases[j].id for j in row] if informative else [])
        scores.append(
            {
                **(dict(zip(ids[-1], map(float, row_scores), strict=False)) if informative else {}),
                **dict(zip(annotated, map(float, k), strict=True)),
            }
        )
    return ids, scores, top


class DiagnosisModel:
    def __init__(
        self,
        supervised: SupervisedModel,
        classes: list[str],
        counts: dict[str, int],
        weights: Weights,
        manifest: dict[str, Any],
        *,
        knowledge: KnowledgeModel | None = None,
    ) -> None:
        self.supervised = supervised
        self.classes = classes
        self.counts = counts
        self.weights = weights
        self.manifest = manifest
        self._knowledge = knowledge

    @property
    def roles(self) -> ColumnRoles:
        return self.supervised.roles

    @property
    def version(self) -> str:
        return str(self.manifest.get("model_version", "unversioned"))

    @cached_property
    def knowledge(self) -> KnowledgeModel:
        return self._knowledge or default_model()

    @cached_property
    def scorer(self) -> KnowledgeScorer:
        return self.knowledge.scorer()

    @cached_property
    def names(self) -> dict[str, str]:
        return {disease.id: disease.name for disease in self.knowledge.diseases}

    def candidates(self, frame: pd.DataFrame) -> tuple[CandidateTable, Any, NDArray[np.float64]]:
        """The candidate table of each row, the knowledge top-k and the supervised features."""
        table = conform(frame, self.roles)
        matrix = self.supervised.features(table)
        proba = self.supervised.predict_proba_features(matrix)
        cases = phenotype_cases(table, self.roles.phenotypes, self.knowledge)
        ids, scores, top = knowledge_candidates(self.scorer, cases, self.classes)
        return candidate_table(self.classes, proba, ids, scores, counts=self.counts), top, matrix

    def predict(self, frame: pd.DataFrame, top_k: int = 10, explain: bool = True) -> list[Prediction]:
        table, top, matrix = self.candidates(frame)
        proba = probabilities(table, self.weights)
        decisions = decision_scores(table, self.weights)
        best_supervised = np.argmax(table.log_supervised[:, : len(self.classes)], axis=1)
        contributions = self.supervised.contributions(matrix, best_supervised) if explain else [[]] * len(frame)
        predictions = []
        for i, diseases in enumerate(table.diseases):
            order = np.argsort(-decisions[i, : len(diseases)], kind="stable")[:top_k]
            rare = [
                Diagnosis(self.scorer.diseases[j].id, self.scorer.diseases[j].name, round(float(p), 6))
                for j, p in zip(top.indices[i][:RARE_CANDIDATES], top.probabilities[i][:RARE_CANDIDATES], strict=True)
                if len(diseases) > len(self.classes)  # knowledge candidates (none without phenotypes)
            ]
            predictions.append(
                Prediction(
                    [Diagnosis(diseases[j], self.names.get(diseases[j]), round(float(proba[i, j]), 6)) for j in order],
                    rare,
                    contributions[i],
                )
            )
        return predictions

    def predict_records(
        self, records: Sequence[Mapping[str, Any]], top_k: int = 10, explain: bool = True
    ) -> list[Prediction]:
        """ClinicalRecord JSON objects in (ml/records.py), predictions out."""
        expanded = bool(self.manifest.get("phenotypes_expanded"))
        frame = records_frame(records, self.roles, self.knowledge.ancestors if expanded else None)
        return self.predict(frame, top_k=top_k, explain=explain)

    def metric_matrices(
        self, frame: pd.DataFrame, labels: Sequence[str], listed: int = 10
    ) -> tuple[list[str], NDArray[np.float64], NDArray[np.float64]]:
        """(columns, calibrated, decisions) for the metrics. Columns: the model's classes, the
        given labels and every row's `listed` best-ranked diseases, so that each row's top
        `listed` are columns in their true order (accuracy, F1, top-k <= `listed` are exact).
        `calibrated`: the probabilities, renormalised over the columns (the diseases left out
        hold the small rest); `decisions`: the ranking's scores (threshold correction), as
        probabilities over the columns."""
        table, _top, _matrix = self.candidates(frame)
        calibrated = probabilities(table, self.weights)
        decision = decision_scores(table, self.weights)
        decision = np.exp(decision - decision.max(axis=1, keepdims=True))
        best = np.argsort(-decision, axis=1, kind="stable")[:, :listed]
        columns = sorted(
            {
                *self.classes,
                *labels,
                *(table.diseases[i][j] for i, row in enumerate(best) for j in row if j < len(table.diseases[i])),
            }
        )
        return columns, _by_column(table, calibrated, columns), _by_column(table, decision, columns)

    # -- the directory ------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        joblib.dump(self.supervised, directory / SUPERVISED, compress=3)
        digest = hashlib.sha256((directory / SUPERVISED).read_bytes()).hexdigest()
        manifest = {
            **self.manifest,
            "format_version": FORMAT_VERSION,
            "classes": self.classes,
            "class_counts": self.counts,
            "combination": self.weights.__dict__,
            "column_roles": self.roles.to_json(),
            "supervised_sha256": digest,
        }
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> DiagnosisModel:
        try:
            manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
            packed = (directory / SUPERVISED).read_bytes()
        except FileNotFoundError as error:
            raise ModelError(f"{directory}: not a model directory (missing {Path(error.filename).name})") from None
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ModelError(f"{directory}: model format {manifest.get('format_version')}, expected {FORMAT_VERSION}")
        if hashlib.sha256(packed).hexdigest() != manifest["supervised_sha256"]:
            raise ModelError(f"{directory}: {SUPERVISED} does not match its SHA-256 in {MANIFEST}")
        supervised = joblib.load(directory / SUPERVISED)
        weights = Weights(**manifest["combination"])
        return cls(supervised, list(manifest["classes"]), dict(manifest["class_counts"]), weights, manifest)
