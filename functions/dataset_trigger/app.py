"""Raw objects landing in S3 (S3 -> EventBridge rule -> SQS -> this) start data-processing runs:
one run per trigger window, duplicates and replays start nothing (dxops.domain.dataset_trigger).

Thin handler: parse the SQS batch and each message's S3 event with Powertools parser, call the
domain function once, record metrics. Messages claimed concurrently by another invocation are
returned as batch item failures (SQS redelivers them); a failure to start a run fails the batch.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel, SqsModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from dxops.adapters.claims import IdempotentObjectClaims
from dxops.adapters.stepfunctions import StepFunctionsRunStarter
from dxops.domain.dataset_trigger import RawObjectEvent, schedule_processing
from dxops.observability import logger, metrics, tracer
from dxops.settings import DatasetTriggerSettings, load_settings

settings = load_settings(DatasetTriggerSettings)
claims = IdempotentObjectClaims(settings.idempotency_table, settings.claim_expiry_seconds)
runs = StepFunctionsRunStarter(settings.state_machine_arn)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    claims.register_lambda_context(context)
    batch = parse(event=event, model=SqsModel)
    events: list[RawObjectEvent] = []
    unreadable = 0
    for record in batch.Records:
        try:
            s3 = S3EventNotificationEventBridgeModel.model_validate_json(str(record.body))
        except ValidationError:
            unreadable += 1  # not an S3 event: a misrouted message, dropped with a metric and a warning
            logger.warning("message is not an S3 event", extra={"message_id": record.messageId})
            continue
        obj = s3.detail.object
        events.append(
            RawObjectEvent(
                message_id=record.messageId,
                bucket=s3.detail.bucket.name,
                key=obj.key,
                version=obj.version_id or obj.sequencer or obj.etag,
            )
        )
    outcome = schedule_processing(
        events,
        now=dt.datetime.now(dt.UTC),
        window_seconds=settings.window_seconds,
        settle_seconds=settings.settle_seconds,
        claims=claims,
        runs=runs,
    )
    metrics.add_metric(name="RawObjectsClaimed", unit=MetricUnit.Count, value=outcome.claimed)
    metrics.add_metric(name="RawObjectEventsReplayed", unit=MetricUnit.Count, value=outcome.replayed)
    metrics.add_metric(name="TriggerEventsIgnored", unit=MetricUnit.Count, value=outcome.ignored + unreadable)
    metrics.add_metric(name="ProcessingRunsStarted", unit=MetricUnit.Count, value=len(outcome.started))
    logger.info(
        "raw objects scheduled",
        extra={
            "claimed": outcome.claimed,
            "replayed": outcome.replayed,
            "ignored": outcome.ignored,
            "unreadable": unreadable,
            "runs_started": outcome.started,
            "redelivered": len(outcome.retry_message_ids),
        },
    )
    return {"batchItemFailures": [{"itemIdentifier": i} for i in outcome.retry_message_ids]}
