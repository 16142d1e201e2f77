"""DynamoDB adapter of the training triggers table (template.yaml TrainingTriggersTable: `pk`, `sk`,
TTL on `expires_at`).

Items: the guard's state (pk `guard`, sk `state`; `revision` next to the document for the
conditional write) and one item per trigger (pk `day#<UTC date>`, sk `<time>#<run>#<trigger
digest>`), kept for `retention` (TTL): a day's triggers are one Query.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import boto3
from botocore.exceptions import ClientError

from dxops.schemas.training_triggers import GuardState, TriggerRecord

GUARD_KEY = {"pk": {"S": "guard"}, "sk": {"S": "state"}}


class DynamoDbTrainingTriggers:
    def __init__(self, table_name: str, retention: dt.timedelta, client: Any | None = None) -> None:
        self.table_name = table_name
        self.retention = retention
        self._client = client or boto3.client("dynamodb")

    def guard_state(self) -> GuardState:
        item = self._client.get_item(TableName=self.table_name, Key=GUARD_KEY, ConsistentRead=True).get("Item")
        return GuardState.model_validate_json(item["doc"]["S"]) if item else GuardState()

    def replace_guard_state(self, state: GuardState, *, expected_revision: int) -> bool:
        condition = "attribute_not_exists(pk)" if expected_revision == 0 else "revision = :expected"
        values: dict[str, Any] = {":expected": {"N": str(expected_revision)}} if expected_revision else {}
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item={**GUARD_KEY, "doc": {"S": state.model_dump_json()}, "revision": {"N": str(state.revision)}},
                ConditionExpression=condition,
                **({"ExpressionAttributeValues": values} if values else {}),
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def record(self, trigger: TriggerRecord) -> None:
        at = trigger.at.astimezone(dt.UTC)
        digest = hashlib.sha256(trigger.trigger_id.encode()).hexdigest()[:12]
        self._client.put_item(
            TableName=self.table_name,
            Item={
                "pk": {"S": f"day#{at.date().isoformat()}"},
                "sk": {"S": f"{at.isoformat()}#{trigger.run_name}#{digest}"},
                "doc": {"S": trigger.model_dump_json()},
                "expires_at": {"N": str(int((at + self.retention).timestamp()))},
            },
        )

    def recent(self, since: dt.datetime) -> list[TriggerRecord]:
        since = since.astimezone(dt.UTC)
        today = dt.datetime.now(dt.UTC).date()
        found: list[TriggerRecord] = []
        day = since.date()
        while day <= today:
            pages = self._client.get_paginator("query").paginate(
                TableName=self.table_name,
                KeyConditionExpression="pk = :day AND sk >= :since",
                ExpressionAttributeValues={":day": {"S": f"day#{day.isoformat()}"}, ":since": {"S": since.isoformat()}},
            )
            found += [TriggerRecord.model_validate_json(item["doc"]["S"]) for page in pages for item in page["Items"]]
            day += dt.timedelta(days=1)
        return found
