"""The drift and quality monitor's documents: a run's plan (what PrepareMonitoringRun decided), and
the summary of its results that the metrics, the alarms' evidence and the dashboard read.

The monitor itself (ml/monitor.py, a SageMaker Processing job) writes monitoring.json; its shape is
documented there and in docs/monitoring.md. Summaries carry aggregates only: feature names, test
statistics, counts; never a record, a pseudonym or a value of one patient.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field

from dxops.schemas.models import LifecycleDocument


class MonitoringRunRequest(LifecycleDocument):
    """PrepareMonitoringRun's payload: the execution (one per schedule firing) and when it started."""

    run_name: str = Field(min_length=1, max_length=80)
    started_at: dt.datetime


class MonitoringPlan(LifecycleDocument):
    run_name: str
    window_start: dt.datetime
    window_end: dt.datetime
    action: Literal["monitor", "skip"]
    reason: str
    package_version: int | None = None
    model_version: str | None = None
    prediction_objects: int = Field(default=0, ge=0, description="objects of the drift window")
    quality_prediction_objects: int = Field(default=0, ge=0, description="objects of the quality window")
    diagnosis_objects: int = Field(default=0, ge=0)
    output_uri: str | None = None
    processing_job: dict[str, Any] | None = None


class DriftedFeature(LifecycleDocument):
    name: str
    test: str
    statistic: float | None
    p_value: float | None
    threshold: float | None
    summary: dict[str, Any] = Field(default_factory=dict, description="e.g. reference and current mean or share")


class MonitoringSummary(LifecycleDocument):
    """monitoring/latest.json: the last run's verdicts, the report's address and the figures the
    metrics publish. An alarm's retraining trigger carries it as evidence."""

    run_name: str
    window_start: dt.datetime
    window_end: dt.datetime
    package_version: int | None
    model_version: str | None
    report_uri: str | None
    drift_status: Literal["ok", "drift", "insufficient_data", "not-run"]
    drift_samples: int = 0
    drift_share: float | None = Field(default=None, description="share of the tested features that drifted")
    share_threshold: float | None = None
    presentation_drifted: int = Field(default=0, description="(predicted class, term) pairs whose prevalence drifted")
    features_tested: int = 0
    drifted_features: list[DriftedFeature] = Field(default_factory=list)
    feature_drift: dict[str, bool] = Field(default_factory=dict, description="every tested feature: drifted?")
    prediction_drift: bool | None = None
    quality_status: Literal["ok", "drop", "insufficient_labels", "not-run"]
    labelled: int = 0
    quality: dict[str, float | None] = Field(
        default_factory=dict, description="live macro_f1, rare_recall, ece, accuracy and macro_f1_drop"
    )
    reference_quality: dict[str, float | None] = Field(default_factory=dict)
