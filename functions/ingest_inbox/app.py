"""Bulk drops (raw bucket inbox/ -> S3 event -> EventBridge rule -> SQS -> this function): files of
GA4GH Phenopackets or FHIR Bundles, ingested as the API ingests them (dxops.domain.inbox_ingestion).

Thin handler: Powertools batch processing of the SQS messages, each an S3 "Object Created" event
parsed with Powertools parser; the domain function ingests the file chunk by chunk, each chunk made
idempotent with Powertools and DynamoDB, as POST /phenopackets is. The file's report is written and
the file deleted; a failure fails that message only (SQS redelivers it; the DLQ keeps it after 5).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
)
from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from dxops.adapters.idempotent_ingestion import idempotent_ingestion, ingestion_idempotency
from dxops.adapters.s3 import InboxFileGone, S3Inbox, S3ObjectStore
from dxops.adapters.secrets import SecretsManagerKeyProvider
from dxops.domain.clinical_ingestion import IngestLimits
from dxops.domain.inbox_ingestion import InboxObject, ingest_inbox_file
from dxops.observability import logger, metrics, tracer
from dxops.settings import IngestInboxSettings, load_settings

settings = load_settings(IngestInboxSettings)
store = S3ObjectStore(settings.raw_bucket)
inbox = S3Inbox(settings.raw_bucket)
keys = SecretsManagerKeyProvider(settings.pseudonym_secret_id, settings.pseudonym_key_max_age_seconds)
limits = IngestLimits(max_items=settings.max_batch_items, max_body_bytes=settings.max_inbox_object_bytes)
idempotency_config = ingestion_idempotency(settings.idempotency_expiry_seconds)
persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table)
ingest = idempotent_ingestion(persistence, idempotency_config, store=store, keys=keys)
processor = BatchProcessor(event_type=EventType.SQS)


class InboxFileFailed(Exception):
    """A file could not be ingested (SQS redelivers it). Names the error's type only: the messages of
    a parser or an SDK may hold the file's name or content, which the runtime would log."""


def ingest_file(record: SQSRecord) -> None:
    try:
        _ingest_file(record)
    except InboxFileGone:
        # Deleted after its ingestion: this is a redelivered event; the report was written then.
        metrics.add_metric(name="InboxFilesAlreadyIngested", unit=MetricUnit.Count, value=1)
        logger.info("inbox file already ingested", extra={"message_id": record.message_id})
    except Exception as error:
        logger.error("inbox file failed", extra={"message_id": record.message_id, "error_type": type(error).__name__})
        raise InboxFileFailed(type(error).__name__) from None


def _ingest_file(record: SQSRecord) -> None:
    event = S3EventNotificationEventBridgeModel.model_validate_json(record.body)
    detail = event.detail.object
    obj = InboxObject(
        key=detail.key,
        version=detail.version_id or detail.etag,
        size=int(detail.size or 0),
        version_id=detail.version_id,
    )
    report = ingest_inbox_file(
        obj,
        inbox=inbox,
        ingest=ingest,
        store=store,
        keys=keys,
        limits=limits,
        max_object_bytes=settings.max_inbox_object_bytes,
        now=dt.datetime.now(dt.UTC),
    )
    metrics.add_metric(name="InboxFilesIngested", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="DocumentsReceived", unit=MetricUnit.Count, value=report.documents)
    metrics.add_metric(name="RecordsAccepted", unit=MetricUnit.Count, value=report.accepted)
    metrics.add_metric(name="RecordsRejected", unit=MetricUnit.Count, value=report.rejected)
    # The file's name may be PHI (a patient's name): logs name it by its report id only.
    logger.info(
        "inbox file ingested",
        extra={
            "report_id": report.report_id,
            "format": report.document_format,
            "source": report.source,
            "documents": report.documents,
            "accepted": report.accepted,
            "rejected": report.rejected,
            "refused": report.refused is not None,
        },
    )


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    idempotency_config.register_lambda_context(context)
    return process_partial_response(event=event, record_handler=ingest_file, processor=processor, context=context)
