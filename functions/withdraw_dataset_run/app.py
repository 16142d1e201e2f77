"""Data-processing step 3 (quality failed, or content unchanged): publish nothing. A failed run's
reports join its failing rows in the quarantine; the run's table is removed
(dxops.domain.dataset_versions.withdraw_run). Returns what the alert says."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from dxops.adapters.s3 import S3DatasetFiles
from dxops.domain.dataset_versions import withdraw_run
from dxops.observability import logger, tracer
from dxops.schemas.datasets import WithdrawRunRequest
from dxops.settings import DatasetPipelineSettings, load_settings

settings = load_settings(DatasetPipelineSettings)
files = S3DatasetFiles(settings.curated_bucket)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@event_parser(model=WithdrawRunRequest)
def lambda_handler(event: WithdrawRunRequest, context: LambdaContext) -> dict[str, Any]:
    withdrawal = withdraw_run(event.run, event.quality, files)
    logger.info(
        "dataset run withdrawn",
        extra={
            "dataset_version": withdrawal.dataset_version,
            "reason": withdrawal.reason,
            "objects_removed": withdrawal.objects_removed,
            "failed_rules": withdrawal.failed_rules,
        },
    )
    return withdrawal.model_dump(mode="json")
