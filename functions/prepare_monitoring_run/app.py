"""Monitoring step 1: the window, the champion and the drift and quality monitor's processing job
(dxops.domain.monitoring.prepare_monitoring_run). Invoked by the monitoring state machine."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from dxops.adapters.model_versions import DynamoDbModelVersions
from dxops.adapters.s3 import S3JsonDocuments, S3KeyListing
from dxops.domain.monitoring import prepare_monitoring_run
from dxops.observability import logger, tracer
from dxops.schemas.monitoring import MonitoringRunRequest
from dxops.settings import MonitoringSettings, load_settings

settings = load_settings(MonitoringSettings)
versions = DynamoDbModelVersions(settings.model_versions_table)
monitoring_keys = S3KeyListing(settings.monitoring_bucket)
documents = S3JsonDocuments()


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@event_parser(model=MonitoringRunRequest)
def lambda_handler(event: MonitoringRunRequest, context: LambdaContext) -> dict[str, Any]:
    plan = prepare_monitoring_run(
        event, settings=settings, versions=versions, monitoring_keys=monitoring_keys, documents=documents
    )
    logger.info(
        "monitoring run prepared",
        extra={
            "run": plan.run_name,
            "action": plan.action,
            "reason": plan.reason,
            "package_version": plan.package_version,
            "prediction_objects": plan.prediction_objects,
            "diagnosis_objects": plan.diagnosis_objects,
        },
    )
    return plan.model_dump(mode="json")
