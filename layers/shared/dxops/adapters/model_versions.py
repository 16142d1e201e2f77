"""DynamoDB adapter of the model versions table (created by template.yaml, key `pk`).

Items: `version#<n>` (a registered version: the document, plus the attributes conditions need:
approval_status, task_token, last_event_status, deployment_run), `rejected#<run>` (a rejected
candidate), `registered#<training job>` (which version a job's candidate became) and `champion`
(the version the endpoint serves). Documents are the pydantic models'
JSON in the `doc` attribute; the state that conditional updates guard lives next to it.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.exceptions import ClientError

from dxops.domain.approvals import NotPending
from dxops.schemas.models import ApprovalRecord, ChampionRecord, ModelVersionRecord, RejectedCandidate

CHAMPION = "champion"


def _version_key(package_version: int) -> dict[str, Any]:
    return {"pk": {"S": f"version#{package_version}"}}


def _failed_condition(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class DynamoDbModelVersions:
    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table_name = table_name
        self._client = client or boto3.client("dynamodb")

    def _record(self, item: dict[str, Any]) -> ModelVersionRecord:
        record = ModelVersionRecord.model_validate_json(item["doc"]["S"])
        # Fields a conditional update changed after the document was written:
        updates: dict[str, Any] = {}
        if "approval_status" in item:
            updates["approval_status"] = item["approval_status"]["S"]
        if "approval" in item:
            updates["approval"] = ApprovalRecord.model_validate_json(item["approval"]["S"])
        if "deployment_status" in item:
            updates["deployment_status"] = item["deployment_status"]["S"]
        return record.model_copy(update=updates)

    def put_version(self, record: ModelVersionRecord) -> None:
        values: dict[str, Any] = {":doc": {"S": record.model_dump_json()}, ":status": {"S": record.approval_status}}
        expression = "SET doc = :doc, approval_status = :status"
        if record.approval is not None:
            expression += ", approval = :approval"
            values[":approval"] = {"S": record.approval.model_dump_json()}
        self._client.update_item(
            TableName=self.table_name,
            Key=_version_key(record.package_version),
            UpdateExpression=expression,
            ExpressionAttributeValues=values,
        )

    def get(self, package_version: int) -> ModelVersionRecord | None:
        item = self._client.get_item(
            TableName=self.table_name, Key=_version_key(package_version), ConsistentRead=True
        ).get("Item")
        return self._record(item) if item and "doc" in item else None

    def list_versions(self) -> list[ModelVersionRecord]:
        items = [
            item
            for page in self._client.get_paginator("scan").paginate(
                TableName=self.table_name,
                FilterExpression="begins_with(pk, :v)",
                ExpressionAttributeValues={":v": {"S": "version#"}},
            )
            for item in page.get("Items", [])
            if "doc" in item
        ]
        return sorted((self._record(item) for item in items), key=lambda r: r.package_version)

    def put_rejection(self, rejected: RejectedCandidate) -> None:
        self._client.put_item(
            TableName=self.table_name,
            Item={"pk": {"S": f"rejected#{rejected.run_name}"}, "doc": {"S": rejected.model_dump_json()}},
        )

    def registration(self, training_job: str) -> tuple[str, int] | None:
        item = self._client.get_item(
            TableName=self.table_name, Key={"pk": {"S": f"registered#{training_job}"}}, ConsistentRead=True
        ).get("Item")
        return (item["package_arn"]["S"], int(item["package_version"]["N"])) if item else None

    def record_registration(self, training_job: str, package_arn: str, package_version: int) -> None:
        self._client.put_item(
            TableName=self.table_name,
            Item={
                "pk": {"S": f"registered#{training_job}"},
                "package_arn": {"S": package_arn},
                "package_version": {"N": str(package_version)},
            },
        )

    def set_task_token(self, package_version: int, token: str) -> None:
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key=_version_key(package_version),
                UpdateExpression="SET task_token = :t",
                ConditionExpression="approval_status = :pending",
                ExpressionAttributeValues={":t": {"S": token}, ":pending": {"S": "PendingManualApproval"}},
            )
        except ClientError as error:
            if _failed_condition(error):
                raise NotPending(f"model version {package_version} is not waiting for approval") from None
            raise

    def decide(self, package_version: int, approval: ApprovalRecord) -> None:
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key=_version_key(package_version),
                UpdateExpression="SET approval_status = :s, approval = :a",
                ConditionExpression="approval_status = :pending",
                ExpressionAttributeValues={
                    ":s": {"S": approval.status},
                    ":a": {"S": approval.model_dump_json()},
                    ":pending": {"S": "PendingManualApproval"},
                },
            )
        except ClientError as error:
            if _failed_condition(error):
                raise NotPending(f"model version {package_version} was decided already") from None
            raise

    def task_token(self, package_version: int) -> str | None:
        item = self._client.get_item(
            TableName=self.table_name, Key=_version_key(package_version), ConsistentRead=True
        ).get("Item", {})
        return str(item["task_token"]["S"]) if "task_token" in item else None

    def clear_task_token(self, package_version: int) -> None:
        self._client.update_item(
            TableName=self.table_name, Key=_version_key(package_version), UpdateExpression="REMOVE task_token"
        )

    def observe_status(self, package_version: int, status: str, deployment_run: str) -> str | None:
        key = _version_key(package_version)
        if status != "Approved":
            self._client.update_item(
                TableName=self.table_name,
                Key=key,
                UpdateExpression="SET last_event_status = :s",
                ExpressionAttributeValues={":s": {"S": status}},
            )
            return None
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key=key,
                UpdateExpression="SET last_event_status = :s, deployment_run = :run",
                ConditionExpression="attribute_not_exists(last_event_status) OR last_event_status <> :s",
                ExpressionAttributeValues={":s": {"S": status}, ":run": {"S": deployment_run}},
            )
            return deployment_run
        except ClientError as error:
            if not _failed_condition(error):
                raise
        item = self._client.get_item(TableName=self.table_name, Key=key, ConsistentRead=True).get("Item", {})
        return str(item["deployment_run"]["S"]) if "deployment_run" in item else None

    def deployment_started(self, package_version: int, deployment_run: str) -> None:
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key=_version_key(package_version),
                UpdateExpression="REMOVE deployment_run",
                ConditionExpression="deployment_run = :run",
                ExpressionAttributeValues={":run": {"S": deployment_run}},
            )
        except ClientError as error:
            if not _failed_condition(error):  # cleared already (a retry), or another change since
                raise

    def set_deployment_status(self, package_version: int, status: str) -> None:
        self._client.update_item(
            TableName=self.table_name,
            Key=_version_key(package_version),
            UpdateExpression="SET deployment_status = :s",  # also for packages registered by hand
            ExpressionAttributeValues={":s": {"S": status}},
        )

    def champion(self) -> ChampionRecord | None:
        item = self._client.get_item(TableName=self.table_name, Key={"pk": {"S": CHAMPION}}, ConsistentRead=True).get(
            "Item"
        )
        return ChampionRecord.model_validate_json(item["doc"]["S"]) if item else None

    def set_champion(self, champion: ChampionRecord) -> None:
        self._client.put_item(
            TableName=self.table_name, Item={"pk": {"S": CHAMPION}, "doc": {"S": champion.model_dump_json()}}
        )
