"""Candidate models: logistic regression, random forest, XGBoost, each with an imbalance strategy.

A candidate is a `SupervisedModel`: fitted on a prepared table (ml.table.conform) and integer
labels 0..K-1, it prepares features, resamples (SMOTE) or weights rows, and fits the classifier;
`predict_proba` gives (n, K) probabilities; `contributions` the features behind a prediction.
Everything is fitted on training rows only, so it can be cross-validated as one piece.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xgboost as xgb
from numpy.typing import NDArray
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from ml.features import CategoricalExpander, FeaturePreparer
from ml.focal_loss import FocalObjective
from ml.imbalance import IMBALANCE_STRATEGIES, class_weights, oversample
from ml.table import ColumnRoles

MODELS: tuple[str, ...] = ("logreg", "forest", "xgboost")
TOP_CONTRIBUTIONS = 5


@dataclass(frozen=True)
class Candidate:
    model: str
    imbalance: str

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model {self.model!r}: expected one of {', '.join(MODELS)}")
        if self.imbalance not in IMBALANCE_STRATEGIES:
            raise ValueError(f"imbalance {self.imbalance!r}: expected one of {', '.join(IMBALANCE_STRATEGIES)}")
        if self.imbalance == "focal" and self.model != "xgboost":
            raise ValueError("focal loss is an XGBoost objective: use it with model xgboost")

    @property
    def name(self) -> str:
        return f"{self.model}+{self.imbalance}"

    @classmethod
    def parse(cls, name: str) -> Candidate:
        model, _, imbalance = name.partition("+")
        return cls(model, imbalance or "none")


@dataclass(frozen=True)
class Settings:
    """Hyperparameters of every candidate (recorded in the model; see docs/model.md)."""

    seed: int = 0
    class_weight_power: float = 0.5
    smote_target: int = 50
    focal_gamma: float = 2.0
    logreg_c: float = 1.0
    logreg_max_iter: int = 300
    forest_trees: int = 200
    forest_min_leaf: int = 1
    xgb_rounds: int = 150
    xgb_depth: int = 6
    xgb_eta: float = 0.15
    xgb_min_child_weight: float = 0.5
    xgb_subsample: float = 0.9
    xgb_colsample: float = 0.5
    threads: int = 0  # 0: every core


def _softmax(margins: NDArray[np.float64]) -> NDArray[np.float64]:
    shifted = margins - margins.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return np.asarray(exp / exp.sum(axis=1, keepdims=True), dtype=np.float64)


class SupervisedModel:
    def __init__(self, candidate: Candidate, roles: ColumnRoles, settings: Settings) -> None:
        self.candidate = candidate
        self.roles = roles
        self.settings = settings
        self.n_classes = 0
        self.feature_names: list[str] = []
        self._preparer = FeaturePreparer(roles)
        self._expander: CategoricalExpander | None = None
        self._estimator: Any = None

    # -- fitting ------------------------------------------------------------------------------
    def fit_features(self, frame: pd.DataFrame) -> SupervisedModel:
        """Fits the feature preparation only (a multi-instance job's leader shares it)."""
        prepared = self._preparer.fit(frame).transform(frame)
        self._expander = CategoricalExpander(
            self._preparer.categorical_indices, self._preparer.feature_names(), self._preparer.category_labels()
        ).fit(prepared)
        self.feature_names = self._expander.feature_names()
        return self

    def fit(
        self,
        frame: pd.DataFrame,
        labels: NDArray[np.int64],
        *,
        class_counts: NDArray[np.int64] | None = None,
        features_from: SupervisedModel | None = None,
    ) -> SupervisedModel:
        """labels: 0..K-1, every class present at least once. In a multi-instance job each
        instance fits on its shard with the whole table's `class_counts` (K = their length) and
        the leader's fitted feature preparation (`features_from`), so all fit the same problem."""
        self.n_classes = len(class_counts) if class_counts is not None else int(labels.max()) + 1
        if features_from is None:
            self.fit_features(frame)
        else:
            self._preparer, self._expander = features_from._preparer, features_from._expander
            self.feature_names = features_from.feature_names
        assert self._expander is not None
        prepared = self._preparer.transform(frame)
        weights = None
        if self.candidate.imbalance == "smote":
            prepared, labels = oversample(
                prepared,
                labels,
                target=self.settings.smote_target,
                categorical_indices=self._preparer.categorical_indices,
                seed=self.settings.seed,
            )
        elif self.candidate.imbalance == "class_weights":
            weights = class_weights(labels, self.settings.class_weight_power, class_counts)
        matrix = self._expander.transform(prepared)
        fit = {"logreg": self._fit_logreg, "forest": self._fit_forest, "xgboost": self._fit_xgboost}
        fit[self.candidate.model](matrix, labels, weights)
        return self

    def _fit_logreg(self, matrix: sp.csr_matrix, labels: NDArray[np.int64], weights: Any) -> None:
        s = self.settings
        estimator = LogisticRegression(C=s.logreg_c, max_iter=s.logreg_max_iter, random_state=s.seed)
        self._estimator = estimator.fit(matrix, labels, sample_weight=weights)

    def _fit_forest(self, matrix: sp.csr_matrix, labels: NDArray[np.int64], weights: Any) -> None:
        s = self.settings
        estimator = RandomForestClassifier(
            n_estimators=s.forest_trees,
            min_samples_leaf=s.forest_min_leaf,
            max_features="sqrt",
            n_jobs=s.threads or -1,
            random_state=s.seed,
        )
        self._estimator = estimator.fit(matrix, labels, sample_weight=weights)

    def _fit_xgboost(self, matrix: sp.csr_matrix, labels: NDArray[np.int64], weights: Any) -> None:
        s = self.settings
        params: dict[str, Any] = {
            "num_class": self.n_classes,
            "max_depth": s.xgb_depth,
            "eta": s.xgb_eta,
            "min_child_weight": s.xgb_min_child_weight,
            "subsample": s.xgb_subsample,
            "colsample_bytree": s.xgb_colsample,
            "tree_method": "hist",
            "seed": s.seed,
            "nthread": s.threads,
            "verbosity": 0,
        }
        data = xgb.DMatrix(matrix, label=labels, weight=weights, nthread=s.threads)
        if self.candidate.imbalance == "focal":
            params["disable_default_eval_metric"] = True
            self._estimator = xgb.train(
                params, data, num_boost_round=s.xgb_rounds, obj=FocalObjective(gamma=s.focal_gamma)
            )
        else:
            params["objective"] = "multi:softprob"
            self._estimator = xgb.train(params, data, num_boost_round=s.xgb_rounds)

    def booster_digest(self) -> str:
        """SHA-256 of the fitted XGBoost model (hosts of a multi-instance job compare it)."""
        raw = self._estimator.save_raw(raw_format="ubj") if self.candidate.model == "xgboost" else b""
        return hashlib.sha256(bytes(raw)).hexdigest()

    # -- scoring ------------------------------------------------------------------------------
    def features(self, frame: pd.DataFrame) -> sp.csr_matrix:
        assert self._expander is not None, "fit first"
        return self._expander.transform(self._preparer.transform(frame))

    def predict_proba(self, frame: pd.DataFrame) -> NDArray[np.float64]:
        return self.predict_proba_features(self.features(frame))

    def predict_proba_features(self, matrix: sp.csr_matrix) -> NDArray[np.float64]:
        if self.candidate.model == "xgboost":
            margins = self._estimator.inplace_predict(matrix, predict_type="margin")
            return _softmax(np.asarray(margins, dtype=np.float64).reshape(matrix.shape[0], self.n_classes))
        return np.asarray(self._estimator.predict_proba(matrix), dtype=np.float64)

    def contributions(self, matrix: sp.csr_matrix, classes: NDArray[np.int64]) -> list[list[tuple[str, float]]]:
        """Per row, the features that pushed the given class up most (name, contribution).

        Occlusion, the same for every model: a feature's contribution is how much the class's
        log-probability drops when that one feature is reset to its baseline (a phenotype not
        recorded, a measurement at the training median, a category absent), all other features
        kept. Only the row's non-baseline features are tried: one batch prediction of about
        (features recorded) rows per record. XGBoost's TreeSHAP gives all classes at once and
        costs 150 ms per record over 150 classes, 100x this.
        """
        csr = sp.csr_matrix(matrix)
        csr.eliminate_zeros()
        counts = np.diff(csr.indptr)
        owner = np.repeat(np.arange(csr.shape[0]), counts)  # the record of each perturbed row
        # Perturbed row r = entry r of its record removed: the record's entries, minus that one.
        rows, columns, values = [], [], []
        for record in range(csr.shape[0]):
            start, end = csr.indptr[record], csr.indptr[record + 1]
            k = end - start
            if k == 0:
                continue
            keep = ~np.eye(k, dtype=bool)
            rows.append(np.repeat(np.arange(start, end), k - 1))
            columns.append(np.tile(csr.indices[start:end], k)[keep.ravel()])
            values.append(np.tile(csr.data[start:end], k)[keep.ravel()])
        if not rows:
            return [[] for _ in range(csr.shape[0])]
        perturbed = sp.csr_matrix(
            (np.concatenate(values), (np.concatenate(rows), np.concatenate(columns))),
            shape=(int(counts.sum()), csr.shape[1]),
            dtype=np.float32,
        )
        base = np.log(np.clip(self.predict_proba_features(csr)[np.arange(csr.shape[0]), classes], 1e-12, 1))
        reduced = self.predict_proba_features(perturbed)[np.arange(len(owner)), classes[owner]]
        drop = base[owner] - np.log(np.clip(reduced, 1e-12, 1))
        result = []
        for record in range(csr.shape[0]):
            start, end = csr.indptr[record], csr.indptr[record + 1]
            order = np.argsort(-drop[start:end], kind="stable")[:TOP_CONTRIBUTIONS]
            result.append(
                [
                    (self.feature_names[csr.indices[start + j]], round(float(drop[start + j]), 4))
                    for j in order
                    if drop[start + j] > 0
                ]
            )
        return result
