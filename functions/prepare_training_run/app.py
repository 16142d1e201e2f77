"""Training step 1: the dataset version, the champion to beat, and the training and comparison jobs
(dxops.domain.training_runs.prepare_training_run). Invoked by the training state machine."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from dxops.adapters.model_versions import DynamoDbModelVersions
from dxops.adapters.s3 import S3JsonDocuments
from dxops.domain.training_runs import prepare_training_run
from dxops.observability import logger, tracer
from dxops.schemas.models import PrepareTrainingRequest
from dxops.settings import TrainingRunSettings, load_settings

settings = load_settings(TrainingRunSettings)
documents = S3JsonDocuments()
versions = DynamoDbModelVersions(settings.model_versions_table)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@event_parser(model=PrepareTrainingRequest)
def lambda_handler(event: PrepareTrainingRequest, context: LambdaContext) -> dict[str, Any]:
    plan = prepare_training_run(
        event.request,
        name=event.run_name,
        now=event.started_at,
        settings=settings,
        documents=documents,
        versions=versions,
    )
    logger.info(
        "training run prepared",
        extra={
            "run": plan.run_name,
            "dataset_version": plan.dataset.dataset_version,
            "training_job": plan.training_job["TrainingJobName"],
            "champion": plan.champion.package_version if plan.champion else None,
        },
    )
    return plan.model_dump(mode="json")
