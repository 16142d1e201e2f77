"""Erasure step 2, one Distributed Map batch of raw-bucket objects: the patient's lines removed,
objects rewritten, their older versions purged, the batch's result recorded in the curated bucket
(dxops.domain.erasure.erase_raw_batch)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from dxops.adapters.s3 import S3DatasetFiles, S3RewritableObjects
from dxops.domain.erasure import erase_raw_batch
from dxops.observability import logger, tracer
from dxops.schemas.erasure import RawErasureBatch
from dxops.settings import EraseRawObjectsSettings, load_settings

settings = load_settings(EraseRawObjectsSettings)
objects = S3RewritableObjects(settings.raw_bucket)
files = S3DatasetFiles(settings.curated_bucket)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@event_parser(model=RawErasureBatch)
def lambda_handler(event: RawErasureBatch, context: LambdaContext) -> dict[str, Any]:
    result = erase_raw_batch(event, objects=objects, files=files)
    logger.info(
        "raw objects erased",
        extra={"request_id": event.erasure.request_id, "batch": event.batch, **result.model_dump()},
    )
    return {"batch": event.batch}  # the result is in S3 (the Map's state would cap the batches)
