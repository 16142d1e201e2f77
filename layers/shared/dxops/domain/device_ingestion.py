"""Ingestion of device readings delivered by the IoT topic rule through SQS.

All messages of one queue poll become one NDJSON object per site in the raw zone (readings are
small and many: one object per reading would make the ETL slow and S3 costly). Invalid messages
go to the quarantine with their reasons. Delivery is at least once: a reading's id is its device
and timestamp, so replays collapse in the ETL.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from dxops import SCHEMA_VERSION
from dxops.adapters.ports import KeyProvider, ObjectStore
from dxops.domain.pseudonymisation import pseudonymise
from dxops.domain.quarantine import FieldError, RejectedItem, reject, safe_item_id, write_quarantine
from dxops.domain.raw_zone import batch_id_for, write_accepted
from dxops.schemas.device import DeviceMessage, PseudonymisedReading

_message_adapter: TypeAdapter[DeviceMessage] = TypeAdapter(DeviceMessage)


class QueuedMessage(BaseModel):
    message_id: str
    body: str


class DeviceIngestResult(BaseModel):
    batch_id: str
    messages: int
    accepted_messages: int
    rejected_messages: int
    readings_stored: int
    raw_objects: list[str]
    quarantine_object: str | None


def _decode(body: str) -> Any:
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise _Undecodable(exc) from None


class _Undecodable(Exception):
    def __init__(self, exc: json.JSONDecodeError) -> None:
        super().__init__(f"message body is not valid JSON at line {exc.lineno} column {exc.colno}")


def _readings(message: DeviceMessage, pseudonym: str, key_id: str, now: dt.datetime) -> list[PseudonymisedReading]:
    received_at = dt.datetime.fromtimestamp(message.received_at / 1000, tz=dt.UTC)
    return [
        PseudonymisedReading(
            reading_id=f"{message.device_id}:{int(reading.timestamp.timestamp() * 1000)}",
            device_id=message.device_id,
            source=message.source,
            patient_pseudonym=pseudonym,
            pseudonym_key_id=key_id,
            timestamp=reading.timestamp,
            received_at=received_at,
            ingested_at=now,
            measurements=reading.measurements,
            schema_version=SCHEMA_VERSION,
        )
        for reading in message.readings
    ]


def ingest_device_messages(
    messages: Sequence[QueuedMessage],
    *,
    store: ObjectStore,
    keys: KeyProvider,
    now: dt.datetime | None = None,
) -> DeviceIngestResult:
    now = now or dt.datetime.now(dt.UTC)
    key = keys.current_key()
    batch_id = batch_id_for("device", *sorted(m.message_id for m in messages))
    readings: list[PseudonymisedReading] = []
    rejected: list[tuple[RejectedItem, Any]] = []
    accepted_messages = 0
    for index, queued in enumerate(messages):
        payload: Any = None
        try:
            payload = _decode(queued.body)
            message = _message_adapter.validate_python(payload)
            pseudonym = pseudonymise(key, message.source, message.patient_id)
            message_readings = _readings(message, pseudonym, key.key_id, now)
        except _Undecodable as exc:
            error = FieldError(path="(root)", message=str(exc), type="json_invalid")
            rejected.append((RejectedItem(index=index, item_id=safe_item_id(queued.message_id), errors=[error]), None))
            continue
        except ValidationError as exc:
            # from the message, or from a reading built of it: either way this message alone is refused
            rejected.append((reject(index, queued.message_id, exc, payload), payload))
            continue
        accepted_messages += 1
        readings.extend(message_readings)
    raw_objects = write_accepted(store, "device", readings, day=now.date(), batch_id=batch_id)
    quarantine_object = write_quarantine(
        store, "device", DeviceMessage, rejected, key=key, day=now.date(), batch_id=batch_id, received_at=now
    )
    return DeviceIngestResult(
        batch_id=batch_id,
        messages=len(messages),
        accepted_messages=accepted_messages,
        rejected_messages=len(rejected),
        readings_stored=len(readings),
        raw_objects=raw_objects,
        quarantine_object=quarantine_object,
    )
