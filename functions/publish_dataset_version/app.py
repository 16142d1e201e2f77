"""Data-processing step 3 (quality passed, content changed): write the version's manifest once and
point the Glue Data Catalog table at it (dxops.domain.dataset_versions.publish_version). Returns
the DatasetReady event's detail; the state machine puts the event on the bus."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from dxops.adapters.glue_catalog import GlueDatasetCatalog
from dxops.adapters.s3 import S3DatasetFiles
from dxops.domain.dataset_versions import publish_version
from dxops.observability import logger, tracer
from dxops.schemas.datasets import PublishVersionRequest
from dxops.settings import DatasetPipelineSettings, load_settings

settings = load_settings(DatasetPipelineSettings)
files = S3DatasetFiles(settings.curated_bucket)
catalog = GlueDatasetCatalog(settings.catalog_database, settings.catalog_table)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@event_parser(model=PublishVersionRequest)
def lambda_handler(event: PublishVersionRequest, context: LambdaContext) -> dict[str, Any]:
    detail = publish_version(
        event.run,
        event.quality,
        glue_job_run_id=event.glue_job_run_id,
        now=dt.datetime.now(dt.UTC),
        files=files,
        catalog=catalog,
    )
    logger.info(
        "dataset version published",
        extra={"dataset_version": detail.dataset_version, "rows": detail.rows, "classes": detail.classes},
    )
    return detail.model_dump(mode="json")
