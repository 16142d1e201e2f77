"""Candidate models: logistic regression, random forest, XGBoost, each with an imbalance strategy.

A candidate is a `SupervisedModel`: fitted on a prepared table (ml.table.conform) and integer
labels 0..K-1, it prepares features, resamples (SMOTE) or weights rows, and fits the classifier;
`predict_proba` gives (n, K) probabilities; `contributions` the features behind a prediction.
Everything is fitted on training rows only, so it can be cross-validated as one piece.
"""

from __future__ import annotations

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
    def fit(self, frame: pd.DataFrame, labels: NDArray[np.int64]) -> SupervisedModel:
        """labels: 0..K-1, every class present at least once."""
        self.n_classes = int(labels.max()) + 1
        prepared = self._preparer.fit(frame).transform(frame)
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
            weights = class_weights(labels, self.settings.class_weight_power)
        self._expander = CategoricalExpander(
            self._preparer.categorical_indices, self._preparer.feature_names(), self._preparer.category_labels()
        ).fit(prepared)
        matrix = self._expander.transform(prepared)
        self.feature_names = self._expander.feature_names()
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

        XGBoost: exact TreeSHAP values (pred_contribs). Logistic regression: coefficient x value.
        Random forest: the row's non-zero features weighted by the forest's impurity importance
        (an approximation: sklearn has no per-prediction attribution for forests).
        """
        if self.candidate.model == "xgboost":
            shap = self._estimator.predict(xgb.DMatrix(matrix), pred_contribs=True)
            per_row = shap[np.arange(matrix.shape[0]), classes, :-1]  # (n, features); last = bias
        elif self.candidate.model == "logreg":
            dense = matrix.toarray()
            per_row = dense * _coefficients(self._estimator)[classes]
        else:
            dense = np.abs(matrix.toarray())
            per_row = dense * self._estimator.feature_importances_[None, :]
        result = []
        for row in per_row:
            order = np.argsort(-row)[:TOP_CONTRIBUTIONS]
            result.append([(self.feature_names[i], round(float(row[i]), 4)) for i in order if row[i] > 0])
        return result


def _coefficients(estimator: LogisticRegression) -> NDArray[np.float64]:
    """One row of coefficients per class (a two-class model stores only the second's)."""
    coef = np.asarray(estimator.coef_, dtype=np.float64)
    return np.vstack([-coef, coef]) if coef.shape[0] == 1 else coef
