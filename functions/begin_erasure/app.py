"""Erasure step 1: audit record "requested", the Glue job's request, the raw objects to scan,
device bindings removed
(dxops.domain.erasure.begin_erasure). Invoked by the erasure state machine."""

from __future__ import annotations

import dataclasses
from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from dxops.adapters.dynamodb import DynamoDbDeviceBindings
from dxops.adapters.s3 import S3DatasetFiles, S3ErasureAuditLog, S3RewritableObjects
from dxops.domain.erasure import begin_erasure
from dxops.observability import logger, tracer
from dxops.schemas.erasure import ErasureInput
from dxops.settings import BeginErasureSettings, load_settings

settings = load_settings(BeginErasureSettings)
audit = S3ErasureAuditLog(settings.audit_bucket)
files = S3DatasetFiles(settings.curated_bucket)
bindings = DynamoDbDeviceBindings(settings.device_bindings_table)
raw = S3RewritableObjects(settings.raw_bucket)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@event_parser(model=ErasureInput)
def lambda_handler(event: ErasureInput, context: LambdaContext) -> dict[str, Any]:
    begun = begin_erasure(event, audit=audit, files=files, bindings=bindings, raw=raw)
    logger.info(
        "erasure begun",
        extra={
            "request_id": event.request_id,
            "device_bindings_removed": begun.device_bindings_removed,
            "raw_objects": begun.raw_objects,
        },
    )
    return dataclasses.asdict(begun)
