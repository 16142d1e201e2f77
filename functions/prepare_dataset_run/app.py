"""Data-processing step 1: allocate the dataset version and the Glue job's arguments
(dxops.domain.dataset_versions.prepare_run). Invoked by the data-processing state machine."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from dxops.adapters.s3 import S3DatasetFiles
from dxops.domain.dataset_versions import prepare_run
from dxops.observability import logger, tracer
from dxops.schemas.datasets import PrepareRunRequest
from dxops.settings import DatasetPipelineSettings, load_settings

settings = load_settings(DatasetPipelineSettings)
files = S3DatasetFiles(settings.curated_bucket)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@event_parser(model=PrepareRunRequest)
def lambda_handler(event: PrepareRunRequest, context: LambdaContext) -> dict[str, Any]:
    run = prepare_run(
        event.trigger,
        execution_name=event.execution_name,
        started_at=event.execution_started_at,
        raw_bucket=settings.raw_bucket,
        files=files,
    )
    logger.info(
        "dataset run prepared",
        extra={
            "dataset_version": run.dataset_version,
            "trigger": run.trigger.trigger,
            "previous_version": run.previous.dataset_version if run.previous else None,
        },
    )
    return run.model_dump(mode="json")
