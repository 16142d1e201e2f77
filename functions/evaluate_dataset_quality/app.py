"""Data-processing step 2, the quality gate: read the Glue job's DQ report and run summary, decide
pass / fail / unchanged (dxops.domain.dataset_versions.evaluate_run) and publish the figures as
CloudWatch metrics (EMF): one per rule (dimension rule: 1 passed, 0 failed), row counts, status."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from dxops.adapters.s3 import S3DatasetFiles
from dxops.domain.dataset_versions import evaluate_run
from dxops.observability import logger, metrics, tracer
from dxops.schemas.datasets import EvaluateRunRequest, QualityVerdict
from dxops.settings import DatasetPipelineSettings, load_settings

settings = load_settings(DatasetPipelineSettings)
files = S3DatasetFiles(settings.curated_bucket)

ROW_METRICS = {
    "curated": "CuratedRows",
    "clinical_quarantined": "QuarantinedRecords",
    "clinical_duplicates": "DuplicateRecords",
    "readings_quarantined": "QuarantinedReadings",
    "dq_failing_rows": "DataQualityFailingRows",
}


def publish_metrics(verdict: QualityVerdict) -> None:
    metrics.add_metric(name="DataQualityPassed", unit=MetricUnit.Count, value=int(verdict.status == "pass"))
    metrics.add_metric(name="DataQualityFailedRules", unit=MetricUnit.Count, value=len(verdict.failed_rules))
    metrics.add_metric(name="LabelledRows", unit=MetricUnit.Count, value=sum(verdict.class_counts.values()))
    metrics.add_metric(name="SourceObjects", unit=MetricUnit.Count, value=verdict.source_objects)
    for field, name in ROW_METRICS.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=verdict.rows.get(field, 0))
    for rule in verdict.rules:
        if rule.status == "skipped":
            continue
        # One EMF document per rule: a metric with its own dimension (Powertools single metric).
        with single_metric(
            name="DataQualityRulePassed",
            unit=MetricUnit.Count,
            value=int(rule.status == "pass"),
            namespace=metrics.namespace,
            default_dimensions={"service": str(metrics.service)},
        ) as metric:
            metric.add_dimension(name="rule", value=rule.id)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=EvaluateRunRequest)
def lambda_handler(event: EvaluateRunRequest, context: LambdaContext) -> dict[str, Any]:
    verdict = evaluate_run(event.run, files)
    publish_metrics(verdict)
    logger.info(
        "dataset quality evaluated",
        extra={
            "dataset_version": verdict.dataset_version,
            "status": verdict.status,
            "unchanged": verdict.unchanged,
            "failed_rules": verdict.failed_rules,
            "curated_rows": verdict.rows.get("curated", 0),
        },
    )
    return verdict.model_dump(mode="json")
