"""Starts training runs from events: DatasetReady (a new dataset version) and the training schedule.

One cause starts one run (dxops.domain.training_runs.start_training): every delivery of the
DatasetReady event of a version names the same run, so duplicates start nothing.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from dxops.adapters.stepfunctions import StepFunctionsExecutions
from dxops.domain.training_runs import start_training
from dxops.observability import logger, metrics, tracer
from dxops.schemas.datasets import DATASET_EVENT_SOURCE, DATASET_READY, DatasetReadyDetail
from dxops.schemas.models import TrainingRequest
from dxops.settings import TrainingTriggerSettings, load_settings

settings = load_settings(TrainingTriggerSettings)
runs = StepFunctionsExecutions(settings.training_state_machine_arn)


def training_request(event: EventBridgeModel) -> TrainingRequest:
    if event.source == DATASET_EVENT_SOURCE and event.detail_type == DATASET_READY:
        detail = DatasetReadyDetail.model_validate(event.detail)
        return TrainingRequest(
            reason="dataset-ready",
            requested_by=f"events:{DATASET_READY}",
            trigger_id=event.id,
            dataset_version=detail.dataset_version,
        )
    # The schedule (EventBridge "Scheduled Event"): the published version, one run per firing.
    return TrainingRequest(
        reason="schedule", requested_by=f"events:{event.detail_type}", trigger_id=event.time.strftime("%Y%m%dT%H%M%SZ")
    )


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=EventBridgeModel)
def lambda_handler(event: EventBridgeModel, context: LambdaContext) -> dict[str, Any]:
    request = training_request(event)
    name, started = start_training(request, runs)
    metrics.add_metric(name="TrainingRunsStarted", unit=MetricUnit.Count, value=int(started))
    logger.info("training requested", extra={"run": name, "reason": request.reason, "started": started})
    return {"run_name": name, "started": started}
