"""Domain: a queue poll of device messages becomes one raw object per site plus a quarantine."""

from __future__ import annotations

import datetime as dt
import json

from dxops.domain.device_ingestion import QueuedMessage, ingest_device_messages
from tests.fakes import InMemoryObjectStore, StaticKeyProvider
from tests.records import PATIENT_IDS, device_message, with_change

NOW = dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC)


def queued(i: int, body: object) -> QueuedMessage:
    return QueuedMessage(message_id=f"msg-{i}", body=body if isinstance(body, str) else json.dumps(body))


def test_messages_reconcile_readings_and_quarantine() -> None:
    store = InMemoryObjectStore()
    messages = [
        queued(0, device_message("monitor-1", 0, readings=3)),
        queued(1, "{not json"),
        queued(2, with_change(device_message("monitor-2", 1), "readings.0.measurements.1.value", 20)),
        queued(3, {**device_message("monitor-3", 2, readings=2), "source": "site-b"}),
    ]
    result = ingest_device_messages(messages, store=store, keys=StaticKeyProvider(), now=NOW)
    assert (result.messages, result.accepted_messages, result.rejected_messages) == (4, 2, 2)
    assert result.readings_stored == 5 == len(store.lines("raw/device/"))
    assert len(result.raw_objects) == 2  # site-a and site-b
    quarantined = store.lines("quarantine/device/")
    assert [(q["index"], q["errors"][0]["type"]) for q in quarantined] == [(1, "json_invalid"), (2, "value_error")]
    text = b"".join(store.objects.values()).decode()
    assert not any(pid in text for pid in PATIENT_IDS)


def test_reading_ids_are_deterministic_so_replays_collapse() -> None:
    store = InMemoryObjectStore()
    messages = [queued(0, device_message(readings=2))]
    first = ingest_device_messages(messages, store=store, keys=StaticKeyProvider(), now=NOW)
    ids = [line["reading_id"] for line in store.lines("raw/")]
    second = ingest_device_messages(messages, store=store, keys=StaticKeyProvider(), now=NOW)
    assert first.raw_objects == second.raw_objects and len(store.objects) == 1
    start_ms = int(dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC).timestamp() * 1000)
    assert ids == [f"monitor-0001:{start_ms}", f"monitor-0001:{start_ms + 30_000}"]
