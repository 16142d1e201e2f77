"""API Gateway REST proxy events for the ingestion API, built from the sample in events/."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parents[2] / "events"


def load_event(relative: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / relative).read_text())
    return event


def post_records(
    body: object | bytes | str, headers: dict[str, str] | None = None, signed: bool = True
) -> dict[str, Any]:
    event = load_event("ingest_api/post_record.json")
    event = copy.deepcopy(event)
    event["headers"] = {k: v for k, v in event["headers"].items() if k != "Idempotency-Key"}
    event["headers"].update(headers or {})
    event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
    if isinstance(body, bytes):
        body = body.decode("latin-1")
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    if not signed:
        for key in ("userArn", "caller", "user", "accessKey"):
            event["requestContext"]["identity"][key] = None
    return event


def put_binding(device_id: str, body: object, signed: bool = True) -> dict[str, Any]:
    event = load_event("ingest_api/put_device_binding.json")
    event["path"] = f"/devices/{device_id}/binding"
    event["pathParameters"] = {"device_id": device_id}
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    if not signed:
        for key in ("userArn", "caller", "user", "accessKey"):
            event["requestContext"]["identity"][key] = None
    return event


def sqs_event(bodies: list[object]) -> dict[str, Any]:
    event = load_event("ingest_device/sqs_readings.json")
    template = event["Records"][0]
    event["Records"] = [
        {**template, "messageId": f"msg-{i:04d}", "body": body if isinstance(body, str) else json.dumps(body)}
        for i, body in enumerate(bodies)
    ]
    return event
