"""DynamoDB adapter for device bindings (table keyed by device_id, created by template.yaml)."""

from __future__ import annotations

from typing import Any

import boto3

from dxops.schemas.device import DeviceBinding

_BATCH_GET_LIMIT = 100  # BatchGetItem's limit per call


class DynamoDbDeviceBindings:
    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table_name = table_name
        self._client = client or boto3.client("dynamodb")

    def get_many(self, device_ids: set[str]) -> dict[str, DeviceBinding]:
        found: dict[str, DeviceBinding] = {}
        ids = sorted(device_ids)
        for start in range(0, len(ids), _BATCH_GET_LIMIT):
            request: dict[str, Any] = {
                self.table_name: {"Keys": [{"device_id": {"S": i}} for i in ids[start : start + _BATCH_GET_LIMIT]]}
            }
            while request:
                response = self._client.batch_get_item(RequestItems=request)
                for item in response["Responses"].get(self.table_name, []):
                    binding = DeviceBinding.model_validate({k: next(iter(v.values())) for k, v in item.items()})
                    found[binding.device_id] = binding
                request = response.get("UnprocessedKeys") or {}
        return found

    def put(self, binding: DeviceBinding) -> None:
        item = {k: {"S": str(v)} for k, v in binding.model_dump(mode="json").items()}
        self._client.put_item(TableName=self.table_name, Item=item)

    def delete(self, device_id: str) -> bool:
        response = self._client.delete_item(
            TableName=self.table_name, Key={"device_id": {"S": device_id}}, ReturnValues="ALL_OLD"
        )
        return "Attributes" in response

    def delete_for_patient(self, patient_pseudonym: str) -> int:
        # A scan: bindings are one item per device (thousands, not millions), and erasures are rare.
        devices = [
            item["device_id"]["S"]
            for page in self._client.get_paginator("scan").paginate(
                TableName=self.table_name,
                FilterExpression="patient_pseudonym = :p",
                ExpressionAttributeValues={":p": {"S": patient_pseudonym}},
                ProjectionExpression="device_id",
            )
            for item in page.get("Items", [])
        ]
        return sum(self.delete(device_id) for device_id in devices)
