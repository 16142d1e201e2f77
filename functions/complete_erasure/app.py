"""Erasure step 4: manifests amended, older versions of rewritten curated data purged, catalog
figures updated, audit record "completed" (dxops.domain.erasure.complete_erasure)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from dxops.adapters.glue_catalog import GlueDatasetCatalog
from dxops.adapters.s3 import S3DatasetFiles, S3ErasureAuditLog
from dxops.domain.erasure import complete_erasure
from dxops.observability import logger, metrics, tracer
from dxops.schemas.erasure import CompleteErasureRequest
from dxops.settings import CompleteErasureSettings, load_settings

settings = load_settings(CompleteErasureSettings)
audit = S3ErasureAuditLog(settings.audit_bucket)
files = S3DatasetFiles(settings.curated_bucket)
catalog = GlueDatasetCatalog(settings.catalog_database, settings.catalog_table)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=CompleteErasureRequest)
def lambda_handler(event: CompleteErasureRequest, context: LambdaContext) -> dict[str, Any]:
    record = complete_erasure(event, now=dt.datetime.now(dt.UTC), audit=audit, files=files, catalog=catalog)
    raw_lines = record.raw.lines_removed if record.raw else 0
    curated_rows = sum(c.rows_removed for c in record.curated)
    metrics.add_metric(name="ErasuresCompleted", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="ErasedRawLines", unit=MetricUnit.Count, value=raw_lines)
    metrics.add_metric(name="ErasedCuratedRows", unit=MetricUnit.Count, value=curated_rows)
    logger.info(
        "erasure completed",
        extra={
            "request_id": record.request_id,
            "raw_lines_removed": raw_lines,
            "curated_rows_removed": curated_rows,
            "versions_amended": record.versions_amended,
        },
    )
    return record.model_dump(mode="json")
