"""Starts training runs from events: DatasetReady (a new dataset version), the training schedule
(when enough new labelled rows arrived) and alarms going to ALARM (drift, a quality drop, an SLO
breach: a retraining trigger, with the monitor's latest results as its evidence).

One cause starts one run (dxops.domain.training_runs.start_training), and the retraining guard
(dxops.domain.training_guard) keeps trainings from piling up: one at a time, a cooldown and a
daily cap for automatic triggers. Every trigger is recorded, started or suppressed.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from dxops.adapters.cloudwatch_alarms import CloudWatchFiringAlarms
from dxops.adapters.model_versions import DynamoDbModelVersions
from dxops.adapters.s3 import S3JsonDocuments
from dxops.adapters.stepfunctions import StepFunctionsExecutions
from dxops.adapters.training_triggers import DynamoDbTrainingTriggers
from dxops.domain.training_runs import (
    MONITORING_SUMMARY_KEY,
    TriggerContext,
    start_training,
    training_request_for_event,
)
from dxops.observability import logger, metrics, tracer
from dxops.settings import TrainingTriggerSettings, load_settings

settings = load_settings(TrainingTriggerSettings)
runs = StepFunctionsExecutions(settings.training_state_machine_arn)
triggers = DynamoDbTrainingTriggers(settings.training_triggers_table, settings.trigger_retention)
policy = settings.guard_policy(settings.min_new_labelled_rows)
context = TriggerContext(
    curated_bucket=settings.curated_bucket,
    documents=S3JsonDocuments(),
    versions=DynamoDbModelVersions(settings.model_versions_table),
    monitoring_summary_uri=f"s3://{settings.monitoring_bucket}/{MONITORING_SUMMARY_KEY}",
    alarms=CloudWatchFiringAlarms(settings.retraining_alarms),
)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=EventBridgeModel)
def lambda_handler(event: EventBridgeModel, context_: LambdaContext) -> dict[str, Any]:
    request = training_request_for_event(
        source=event.source, detail_type=event.detail_type, detail=event.detail, event_id=event.id, time=event.time
    )
    trigger = start_training(request, runs=runs, triggers=triggers, policy=policy, context=context)
    metrics.add_metric(name="TrainingRunsStarted", unit=MetricUnit.Count, value=int(trigger.outcome == "started"))
    if trigger.suppressed_because is not None:
        with single_metric(
            name="TrainingTriggersSuppressed",
            unit=MetricUnit.Count,
            value=1,
            namespace=metrics.namespace,
            default_dimensions={"reason": trigger.suppressed_because},
        ):
            pass
    logger.info(
        "training trigger",
        extra={
            "run": trigger.run_name,
            "reason": trigger.reason,
            "outcome": trigger.outcome,
            "suppressed_because": trigger.suppressed_because,
            "detail": trigger.detail,
        },
    )
    return {"run_name": trigger.run_name, "outcome": trigger.outcome, "suppressed_because": trigger.suppressed_because}
