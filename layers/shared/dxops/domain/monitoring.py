"""The drift and quality monitor's runs (statemachines/monitoring.asl.json, started by EventBridge
Scheduler every MonitoringPeriodSeconds).

  prepare_monitoring_run   the window (the period that ends when the run starts), the champion
                           (the model whose traffic is judged, and whose baseline profile is inside
                           its model.tar.gz), and the processing job of ml/monitor.py with its inputs:
                           the captured predictions of the quality window (which contains the drift
                           window) and the late diagnoses, listed in manifests (a job takes at most
                           10 inputs; a day is 24 hour partitions). No champion, or neither
                           predictions in the window nor late diagnoses: the job is skipped.
  summarise_monitoring_run monitoring.json -> MonitoringSummary: what the metrics publish (and so
                           what the drift and quality alarms judge), kept as monitoring/latest.json
                           for an alarm's retraining trigger to carry as evidence.

The thresholds are the template's parameters, passed to the job as flags: the job's verdicts and
the alarms use the same numbers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from dxops.adapters.ports import JsonDocuments, KeyListing, ModelVersions
from dxops.domain.errors import DomainError
from dxops.domain.prediction import PREDICTIONS_PREFIX, hour_partition
from dxops.domain.processing_jobs import ProcessingJob, processing_input
from dxops.domain.training_runs import MONITORING_SUMMARY_KEY, code_uri
from dxops.schemas.monitoring import DriftedFeature, MonitoringPlan, MonitoringRunRequest, MonitoringSummary
from dxops.settings import MonitoringSettings

MONITOR_ENTRY = "dxops_monitor.py"  # ml/build_source_dir.py
DIAGNOSES_PREFIX = "diagnoses/"
RUNS_PREFIX = "monitoring/runs/"
MONITORING_JSON, MONITORING_MD = "monitoring.json", "monitoring.md"


class MonitoringResultMissing(DomainError):
    """The monitor's job succeeded but wrote no monitoring.json."""


def _days(start: dt.datetime, end: dt.datetime) -> list[dt.date]:
    day, days = start.date(), []
    while day <= end.date():
        days.append(day)
        day += dt.timedelta(days=1)
    return days


def _hours(start: dt.datetime, end: dt.datetime) -> set[str]:
    """The hour partitions that overlap [start, end)."""
    hour = start.replace(minute=0, second=0, microsecond=0)
    partitions = set()
    while hour < end:
        partitions.add(hour_partition(hour))
        hour += dt.timedelta(hours=1)
    return partitions


def _job_name(environment: str, run_name: str, end: dt.datetime) -> str:
    """dxops-<env>-monitor-<window end>-<run digest>: unique per run, under SageMaker's 63 characters."""
    return f"dxops-{environment}-monitor-{end:%Y%m%d%H%M%S}-{hashlib.sha256(run_name.encode()).hexdigest()[:8]}"


def _manifest(bucket: str, prefix: str, keys: list[str]) -> list[Any]:
    """A SageMaker manifest: the common prefix, then the keys relative to it."""
    return [{"prefix": f"s3://{bucket}/{prefix}"}, *(key[len(prefix) :] for key in keys)]


def prepare_monitoring_run(
    request: MonitoringRunRequest,
    *,
    settings: MonitoringSettings,
    versions: ModelVersions,
    monitoring_keys: KeyListing,
    documents: JsonDocuments,
) -> MonitoringPlan:
    end = request.started_at.astimezone(dt.UTC)  # exact: a prediction served a moment before counts
    start = end - dt.timedelta(seconds=settings.period_seconds)
    window = {"run_name": request.run_name, "window_start": start, "window_end": end}
    champion = versions.champion()
    if champion is None:
        return MonitoringPlan(**window, action="skip", reason="no model serves yet")
    quality_start = end - dt.timedelta(days=settings.quality_window_days)
    predictions = [
        key
        for day in _days(quality_start, end)
        for key in monitoring_keys.list_keys(f"{PREDICTIONS_PREFIX}date={day.isoformat()}/")
    ]
    in_window = _hours(start, end)
    drift_window = [key for key in predictions if key[len(PREDICTIONS_PREFIX) :].startswith(tuple(in_window))]
    diagnoses = [
        key
        for day in _days(quality_start, end)
        for key in monitoring_keys.list_keys(f"{DIAGNOSES_PREFIX}date={day.isoformat()}/")
    ]
    counts = {
        "package_version": champion.package_version,
        "model_version": champion.model_version,
        "prediction_objects": len(drift_window),
        "quality_prediction_objects": len(predictions),
        "diagnosis_objects": len(diagnoses),
    }
    if not drift_window and not diagnoses:
        return MonitoringPlan(**window, **counts, action="skip", reason="no predictions in the window and no diagnoses")
    name = _job_name(settings.dxops_environment, request.run_name, end)
    run_uri = f"s3://{settings.monitoring_bucket}/{RUNS_PREFIX}{name}/"
    inputs = [processing_input("model", champion.model_data_url)]
    for kind, prefix, keys in (
        ("predictions", PREDICTIONS_PREFIX, predictions),
        ("diagnoses", DIAGNOSES_PREFIX, diagnoses),
    ):
        if keys:  # an input must list objects; the monitor reads a missing one as none
            documents.write(f"{run_uri}{kind}.manifest", _manifest(settings.monitoring_bucket, prefix, keys))
            inputs.append(processing_input(kind, f"{run_uri}{kind}.manifest", "ManifestFile"))
    output_uri = f"{run_uri}output/"
    job = ProcessingJob(
        name=name,
        entry_point=MONITOR_ENTRY,
        code_uri=code_uri(settings.training_code_uri, documents),
        inputs=inputs,
        output_name="monitoring",
        output_uri=output_uri,
        arguments=[
            "--model-version",
            champion.model_version,
            "--window-start",
            start.isoformat(),
            "--window-end",
            end.isoformat(),
            "--false-alarm-rate",
            str(settings.drift_false_alarm_rate),
            "--min-samples",
            str(settings.drift_min_samples),
            "--share-threshold",
            str(settings.drift_share_threshold),
            "--min-labels",
            str(settings.quality_min_labels),
            "--quality-tolerance",
            str(settings.quality_drop_tolerance),
        ],
        environment={"DXOPS_MODEL_PACKAGE_VERSION": str(champion.package_version)},
    )
    return MonitoringPlan(
        **window,
        **counts,
        action="monitor",
        reason=f"{len(drift_window)} prediction objects in the window, {len(diagnoses)} diagnosis objects",
        output_uri=output_uri,
        processing_job=job.request(settings.processing_host),
    )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def summarise_monitoring_run(
    plan: MonitoringPlan, documents: JsonDocuments, monitoring_bucket: str
) -> MonitoringSummary:
    """The run's summary (also for a skipped run: nothing judged), kept as monitoring/latest.json."""
    base: dict[str, Any] = {
        "run_name": plan.run_name,
        "window_start": plan.window_start,
        "window_end": plan.window_end,
        "package_version": plan.package_version,
        "model_version": plan.model_version,
    }
    if plan.action == "skip" or plan.output_uri is None:
        summary = MonitoringSummary(**base, report_uri=None, drift_status="not-run", quality_status="not-run")
    else:
        result = documents.read(f"{plan.output_uri}{MONITORING_JSON}")
        if result is None:
            raise MonitoringResultMissing(f"the monitor wrote no {MONITORING_JSON} under {plan.output_uri}")
        summary = _summary(base, result, f"{plan.output_uri}{MONITORING_MD}")
    documents.write(f"s3://{monitoring_bucket}/{MONITORING_SUMMARY_KEY}", summary.model_dump(mode="json"))
    return summary


def _summary(base: dict[str, Any], result: dict[str, Any], report_uri: str) -> MonitoringSummary:
    drift = result.get("drift") or {}
    quality = result.get("quality") or {}
    features = [f for f in drift.get("features") or [] if isinstance(f, dict)]
    tested = [f for f in features if f.get("status", "tested") == "tested" and f.get("test")]
    reference = quality.get("reference") or {}
    measures = ("macro_f1", "rare_recall", "ece", "accuracy")
    return MonitoringSummary(
        **base,
        report_uri=report_uri,
        drift_status=drift.get("status", "insufficient_data"),
        drift_samples=int(drift.get("samples") or 0),
        drift_share=_number(drift.get("share_drifted")),
        share_threshold=_number(drift.get("share_threshold")),
        presentation_drifted=int(drift.get("presentation_drifted") or 0),
        features_tested=len(tested),
        drifted_features=[
            DriftedFeature(
                name=str(f["name"]),
                test=str(f.get("test")),
                statistic=_number(f.get("statistic")),
                p_value=_number(f.get("p_value")),
                threshold=_number(f.get("threshold")),
                summary=f.get("summary") if isinstance(f.get("summary"), dict) else {},
            )
            for f in tested
            if f.get("drifted")
        ],
        feature_drift={str(f["name"]): bool(f.get("drifted")) for f in tested},
        prediction_drift=(drift.get("prediction") or {}).get("drifted"),
        quality_status=quality.get("status", "insufficient_labels"),
        labelled=int(quality.get("labelled") or 0),
        quality={
            **{m: _number(quality.get(m)) for m in measures},
            "macro_f1_drop": _number(quality.get("macro_f1_drop")),
        },
        reference_quality={m: _number(reference.get(m)) for m in measures},
    )
