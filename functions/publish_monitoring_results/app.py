"""Monitoring step 2: the monitor's results become CloudWatch metrics (EMF) that the drift and
quality alarms judge and the dashboard shows, and monitoring/latest.json, which an alarm's
retraining trigger carries as evidence (dxops.domain.monitoring.summarise_monitoring_run).

Metrics (namespace dxops/<env>, service=monitoring): DriftDetected (0 or 1: the window's verdict, which
the drift alarm judges), DriftShare, DriftedFeatures, FeaturesTested,
DriftWindowPredictions, PredictionDrift, PresentationDrift (drifted class-term pairs), FeatureDrift
(dimension feature, 0 or 1), and with late labels LabelledPredictions, LiveMacroF1, LiveRareRecall,
LiveCalibrationError, LiveAccuracy, MacroF1Drop, QualityDrop (0 or 1). A window without enough
data publishes its counts only: an alarm treats the missing verdict as not breaching.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from dxops.adapters.s3 import S3JsonDocuments
from dxops.domain.monitoring import summarise_monitoring_run
from dxops.observability import logger, metrics, tracer
from dxops.schemas.monitoring import MonitoringPlan, MonitoringSummary
from dxops.settings import MonitoringSettings, load_settings

settings = load_settings(MonitoringSettings)
documents = S3JsonDocuments()
QUALITY_METRICS = {
    "macro_f1": "LiveMacroF1",
    "rare_recall": "LiveRareRecall",
    "ece": "LiveCalibrationError",
    "accuracy": "LiveAccuracy",
    "macro_f1_drop": "MacroF1Drop",
}


def _publish(summary: MonitoringSummary) -> None:
    metrics.add_metric(name="DriftWindowPredictions", unit=MetricUnit.Count, value=summary.drift_samples)
    if summary.drift_status in {"ok", "drift"} and summary.drift_share is not None:
        # The window's verdict (the drift alarm's metric): drifted features above the share
        # threshold, or prediction or presentation drift (ml/drift.py).
        metrics.add_metric(name="DriftDetected", unit=MetricUnit.Count, value=int(summary.drift_status == "drift"))
        metrics.add_metric(name="DriftShare", unit=MetricUnit.NoUnit, value=summary.drift_share)
        metrics.add_metric(name="DriftedFeatures", unit=MetricUnit.Count, value=len(summary.drifted_features))
        metrics.add_metric(name="FeaturesTested", unit=MetricUnit.Count, value=summary.features_tested)
        metrics.add_metric(name="PresentationDrift", unit=MetricUnit.Count, value=summary.presentation_drifted)
        if summary.prediction_drift is not None:
            metrics.add_metric(name="PredictionDrift", unit=MetricUnit.Count, value=int(summary.prediction_drift))
        for feature, drifted in sorted(summary.feature_drift.items()):
            with single_metric(
                name="FeatureDrift",
                unit=MetricUnit.Count,
                value=int(drifted),
                namespace=metrics.namespace,
                default_dimensions={"feature": feature},
            ):
                pass
    metrics.add_metric(name="LabelledPredictions", unit=MetricUnit.Count, value=summary.labelled)
    if summary.quality_status in {"ok", "drop"}:
        metrics.add_metric(name="QualityDrop", unit=MetricUnit.Count, value=int(summary.quality_status == "drop"))
        for key, name in QUALITY_METRICS.items():
            value = summary.quality.get(key)
            if value is not None:
                metrics.add_metric(name=name, unit=MetricUnit.NoUnit, value=value)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=MonitoringPlan)
def lambda_handler(event: MonitoringPlan, context: LambdaContext) -> dict[str, Any]:
    summary = summarise_monitoring_run(event, documents, settings.monitoring_bucket)
    _publish(summary)
    logger.info(
        "monitoring results published",
        extra={
            "run": summary.run_name,
            "drift_status": summary.drift_status,
            "drift_share": summary.drift_share,
            "drifted_features": [f.name for f in summary.drifted_features],
            "quality_status": summary.quality_status,
            "labelled": summary.labelled,
        },
    )
    return summary.model_dump(mode="json")
