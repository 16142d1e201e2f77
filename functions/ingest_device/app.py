"""Device readings (IoT Core topic rule -> SQS -> this function): validate, attribute, store.

Thin handler: parse the SQS event with Powertools parser, call the domain function once for the
whole poll (one NDJSON object per site), record metrics. Invalid messages are quarantined by the
domain, not failed: a failure here means storage is down, and then SQS redelivers the whole batch
(replays are harmless: object keys and reading ids are deterministic).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import SqsModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from dxops.adapters.dynamodb import DynamoDbDeviceBindings
from dxops.adapters.s3 import S3ObjectStore
from dxops.adapters.secrets import SecretsManagerKeyProvider
from dxops.domain.device_ingestion import QueuedMessage, ingest_device_messages
from dxops.observability import logger, metrics, tracer
from dxops.settings import IngestDeviceSettings, load_settings

settings = load_settings(IngestDeviceSettings)
store = S3ObjectStore(settings.raw_bucket)
keys = SecretsManagerKeyProvider(settings.pseudonym_secret_id, settings.pseudonym_key_max_age_seconds)
bindings = DynamoDbDeviceBindings(settings.device_bindings_table)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    sqs = parse(event=event, model=SqsModel)
    messages = [QueuedMessage(message_id=record.messageId, body=record.body) for record in sqs.Records]
    logger.debug("queue poll received", extra={"messages": len(messages)})
    result = ingest_device_messages(messages, store=store, keys=keys, bindings=bindings)
    metrics.add_metric(name="DeviceMessagesReceived", unit=MetricUnit.Count, value=result.messages)
    metrics.add_metric(name="DeviceMessagesRejected", unit=MetricUnit.Count, value=result.rejected_messages)
    metrics.add_metric(name="DeviceReadingsStored", unit=MetricUnit.Count, value=result.readings_stored)
    logger.info(
        "device readings ingested",
        extra={
            "batch_id": result.batch_id,
            "messages": result.messages,
            "rejected_messages": result.rejected_messages,
            "readings_stored": result.readings_stored,
        },
    )
    # Partial batch response (ReportBatchItemFailures): nothing failed item by item; storage
    # failures raise and fail the whole batch.
    return {"batchItemFailures": []}
