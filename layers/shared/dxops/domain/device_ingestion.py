"""Ingestion of device readings delivered by the IoT topic rule through SQS.

Each queued message is the rule's envelope (the MQTT payload in base64, the device id from the
topic, the receive time). All messages of one queue poll become one NDJSON object per site in the
raw zone (readings are small and many: one object per reading would make the ETL slow and S3
costly). A message is quarantined, with its reason, when its envelope or payload is invalid or
its device is not bound to a patient. Delivery is at least once: a reading's id is its device and
timestamp, so replays collapse in the ETL.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from dxops import SCHEMA_VERSION
from dxops.adapters.ports import DeviceBindingStore, KeyProvider, ObjectStore
from dxops.domain.quarantine import FieldError, RejectedItem, reject, safe_item_id, write_quarantine
from dxops.domain.raw_zone import batch_id_for, write_accepted
from dxops.schemas.device import DeviceBinding, DevicePublication, PseudonymisedReading, RuleEnvelope

_envelope_adapter: TypeAdapter[RuleEnvelope] = TypeAdapter(RuleEnvelope)
_publication_adapter: TypeAdapter[DevicePublication] = TypeAdapter(DevicePublication)


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


class _Refused(Exception):
    """A message refused before schema validation (not JSON, not base64, device not bound)."""

    def __init__(self, path: str, message: str, kind: str) -> None:
        super().__init__(message)
        self.error = FieldError(path=path, message=message, type=kind)


def _json(text: str | bytes, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Refused(
            "(root)", f"{what} is not valid JSON at line {exc.lineno} column {exc.colno}", "json_invalid"
        ) from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _Refused("(root)", f"{what} is not valid JSON", "json_invalid") from None


def _envelope(queued: QueuedMessage) -> RuleEnvelope:
    try:
        return _envelope_adapter.validate_python(_json(queued.body, "queue message"))
    except ValidationError:
        # Not what the topic rule produces: nothing in it can be trusted as a reading.
        raise _Refused("(envelope)", "queue message is not a topic rule envelope", "envelope_invalid") from None


def _payload(envelope: RuleEnvelope) -> Any:
    try:
        raw = base64.b64decode(envelope.payload, validate=True)
    except binascii.Error:
        raise _Refused("(envelope).payload", "payload is not base64", "envelope_invalid") from None
    return _json(raw, "device payload")


def _readings(
    envelope: RuleEnvelope, publication: DevicePublication, binding: DeviceBinding, now: dt.datetime
) -> list[PseudonymisedReading]:
    received_at = dt.datetime.fromtimestamp(envelope.received_at / 1000, tz=dt.UTC)
    return [
        PseudonymisedReading(
            reading_id=f"{envelope.device_id}:{int(reading.timestamp.timestamp() * 1000)}",
            device_id=envelope.device_id,
            source=binding.source,
            patient_pseudonym=binding.patient_pseudonym,
            pseudonym_key_id=binding.pseudonym_key_id,
            timestamp=reading.timestamp,
            received_at=received_at,
            ingested_at=now,
            measurements=reading.measurements,
            schema_version=SCHEMA_VERSION,
        )
        for reading in publication.readings
    ]


def _bindings_for(messages: Sequence[QueuedMessage], bindings: DeviceBindingStore) -> dict[str, DeviceBinding]:
    device_ids = set()
    for queued in messages:
        try:
            device_ids.add(_envelope(queued).device_id)
        except _Refused:
            continue
    return bindings.get_many(device_ids) if device_ids else {}


def ingest_device_messages(
    messages: Sequence[QueuedMessage],
    *,
    store: ObjectStore,
    keys: KeyProvider,
    bindings: DeviceBindingStore,
    now: dt.datetime | None = None,
) -> DeviceIngestResult:
    now = now or dt.datetime.now(dt.UTC)
    key = keys.current_key()  # for the pseudonyms of the quarantine's redaction
    batch_id = batch_id_for("device", *sorted(m.message_id for m in messages))
    bound = _bindings_for(messages, bindings)  # one batched look-up per poll
    readings: list[PseudonymisedReading] = []
    rejected: list[tuple[RejectedItem, Any]] = []
    for index, queued in enumerate(messages):
        payload: Any = None
        try:
            envelope = _envelope(queued)
            payload = _payload(envelope)
            publication = _publication_adapter.validate_python(payload)
            binding = bound.get(envelope.device_id)
            if binding is None:
                raise _Refused(
                    "(device)", "device is not bound to a patient (PUT /devices/{device_id}/binding)", "unbound_device"
                )
            message_readings = _readings(envelope, publication, binding, now)
        except _Refused as exc:
            reason = RejectedItem(index=index, item_id=safe_item_id(queued.message_id), errors=[exc.error])
            rejected.append((reason, payload))
            continue
        except ValidationError as exc:
            rejected.append((reject(index, queued.message_id, exc, payload), payload))
            continue
        readings.extend(message_readings)
    raw_objects = write_accepted(store, "device", readings, day=now.date(), batch_id=batch_id)
    quarantine_object = write_quarantine(
        store, "device", DevicePublication, rejected, key=key, day=now.date(), batch_id=batch_id, received_at=now
    )
    return DeviceIngestResult(
        batch_id=batch_id,
        messages=len(messages),
        accepted_messages=len(messages) - len(rejected),
        rejected_messages=len(rejected),
        readings_stored=len(readings),
        raw_objects=raw_objects,
        quarantine_object=quarantine_object,
    )
