"""SQS event source mappings: poll the template's queues and invoke their functions with SQS events.

Same contract as Lambda's poller: up to BatchSize messages per invocation, the function's
batchItemFailures (ReportBatchItemFailures) stay on the queue, a handler error leaves the whole
batch on the queue, and the queue's redrive policy (moto applies maxReceiveCount) moves messages
that keep failing to the dead-letter queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3

from localcloud.background import Periodic
from localcloud.runtime import FunctionError

if TYPE_CHECKING:
    from localcloud.cloud import LocalCloud

SQS_RECEIVE_MAX = 10  # the SQS API's limit per ReceiveMessage call


@dataclass
class PollStats:
    invocations: int = 0
    delivered: int = 0
    deleted: int = 0
    failed_invocations: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SqsMapping:
    logical_id: str
    function: str  # logical id of the function
    queue_arn: str
    queue_url: str
    batch_size: int
    reports_item_failures: bool


def sqs_mappings(cloud: LocalCloud) -> list[SqsMapping]:
    """The template's SQS -> Lambda event source mappings, resolved."""
    by_name = {fn.name: logical for logical, fn in cloud.functions.items()}
    mappings = []
    for logical_id, kind in cloud.stack.types.items():
        if kind != "AWS::Lambda::EventSourceMapping":
            continue
        props = cloud.stack.properties[logical_id]
        arn = props["EventSourceArn"]
        if ":sqs:" not in arn:
            continue
        queue_name = arn.rsplit(":", 1)[1]
        url = boto3.client("sqs").get_queue_url(QueueName=queue_name)["QueueUrl"]
        mappings.append(
            SqsMapping(
                logical_id=logical_id,
                function=by_name[props["FunctionName"]],
                queue_arn=arn,
                queue_url=url,
                batch_size=int(props.get("BatchSize", 10)),
                reports_item_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
            )
        )
    return mappings


def _event_record(message: dict[str, Any], mapping: SqsMapping, region: str) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": mapping.queue_arn,
        "awsRegion": region,
    }


def poll_once(cloud: LocalCloud, mapping: SqsMapping, stats: PollStats) -> int:
    """One poll: gather up to BatchSize messages, invoke once. Returns the number delivered."""
    sqs = boto3.client("sqs")
    messages: list[Any] = []
    while len(messages) < mapping.batch_size:
        received = sqs.receive_message(
            QueueUrl=mapping.queue_url,
            MaxNumberOfMessages=min(SQS_RECEIVE_MAX, mapping.batch_size - len(messages)),
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not received:
            break
        messages.extend(received)
    if not messages:
        return 0
    region = sqs.meta.region_name
    event = {"Records": [_event_record(m, mapping, region) for m in messages]}
    stats.invocations += 1
    stats.delivered += len(messages)
    try:
        response = cloud.invoke(mapping.function, event)
    except FunctionError as exc:
        stats.failed_invocations += 1
        stats.errors.append(exc.error_type)
        # The whole batch becomes visible again (Lambda waits for the visibility timeout).
        for message in messages:
            sqs.change_message_visibility(
                QueueUrl=mapping.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        return len(messages)
    failed = set()
    if mapping.reports_item_failures and isinstance(response, dict):
        failed = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
    for message in messages:
        if message["MessageId"] in failed:
            sqs.change_message_visibility(
                QueueUrl=mapping.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        else:
            sqs.delete_message(QueueUrl=mapping.queue_url, ReceiptHandle=message["ReceiptHandle"])
            stats.deleted += 1
    return len(messages)


def drain(cloud: LocalCloud, max_polls: int = 1000) -> dict[str, PollStats]:
    """Poll every SQS mapping until its queue is empty (or max_polls); returns stats per mapping."""
    result = {}
    for mapping in sqs_mappings(cloud):
        stats = PollStats()
        for _ in range(max_polls):
            if poll_once(cloud, mapping, stats) == 0:
                break
        result[mapping.logical_id] = stats
    return result


class Pollers(Periodic):
    """Background polling of every SQS mapping, as Lambda's pollers do (for servers and the demo)."""

    name = "sqs-pollers"

    def __init__(self, cloud: LocalCloud, interval_seconds: float = 1.0) -> None:
        super().__init__(interval_seconds)
        self.cloud = cloud
        self.stats: dict[str, PollStats] = {}
        self._mappings: list[SqsMapping] | None = None

    def tick(self) -> bool:
        if self._mappings is None:
            self._mappings = sqs_mappings(self.cloud)
        delivered = 0
        for mapping in self._mappings:
            delivered += poll_once(self.cloud, mapping, self.stats.setdefault(mapping.logical_id, PollStats()))
        return delivered > 0
