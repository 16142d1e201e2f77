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
from dxops.domain.training_runs import start_training, training_request_for_event
from dxops.observability import logger, metrics, tracer
from dxops.settings import TrainingTriggerSettings, load_settings

settings = load_settings(TrainingTriggerSettings)
runs = StepFunctionsExecutions(settings.training_state_machine_arn)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=EventBridgeModel)
def lambda_handler(event: EventBridgeModel, context: LambdaContext) -> dict[str, Any]:
    request = training_request_for_event(
        source=event.source, detail_type=event.detail_type, detail=event.detail, event_id=event.id, time=event.time
    )
    name, started = start_training(request, runs)
    metrics.add_metric(name="TrainingRunsStarted", unit=MetricUnit.Count, value=int(started))
    logger.info("training requested", extra={"run": name, "reason": request.reason, "started": started})
    return {"run_name": name, "started": started}
