"""A model's metrics on labelled rows, as dxops-train (test split), dxops-evaluate and the bench
report them: ranking metrics from its decisions (the order it shows, threshold correction
included), calibration and AUC from its calibrated probabilities."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ml.metrics import bootstrap_intervals, classification_metrics, is_rare_code
from ml.model import DiagnosisModel
from ml.table import LABEL

DECISION_INTERVALS = ("accuracy", "balanced_accuracy", "macro_f1", "top3_accuracy")
CALIBRATION = ("ece", "brier", "log_loss", "auc_macro_ovr")


@dataclass(frozen=True)
class Scored:
    """The scored rows and their metrics."""

    truth: list[str]
    classes: list[str]  # the model's classes, the rows' labels and each row's 10 best-ranked diseases
    calibrated: NDArray[np.float64]
    decisions: NDArray[np.float64]
    rare: set[str]
    metrics: dict[str, Any]
    intervals: dict[str, Any]


def score_rows(model: DiagnosisModel, rows: pd.DataFrame, seed: int = 0) -> Scored:
    truth = rows[LABEL].astype(str).tolist()
    classes, calibrated, decisions = model.metric_matrices(rows, truth)
    rare = {label for label in classes if is_rare_code(label)}
    metrics = classification_metrics(truth, decisions, classes, rare=rare)
    calibration = classification_metrics(truth, calibrated, classes, rare=rare, top_k=(1,))
    metrics.update({key: calibration[key] for key in CALIBRATION})
    intervals = bootstrap_intervals(truth, decisions, classes, metrics=DECISION_INTERVALS, seed=seed)
    intervals.update(bootstrap_intervals(truth, calibrated, classes, metrics=("auc_macro_ovr", "ece"), seed=seed))
    return Scored(truth, classes, calibrated, decisions, rare, metrics, intervals)
