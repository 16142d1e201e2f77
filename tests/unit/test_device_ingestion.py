"""Domain: a queue poll of rule envelopes becomes one raw object per site plus a quarantine, and
readings are attributed through device bindings, never through anything a device sends."""

from __future__ import annotations

import datetime as dt
import json

from dxops.domain.device_binding import bind_device, unbind_device
from dxops.domain.device_ingestion import QueuedMessage, ingest_device_messages
from dxops.schemas.device import DeviceBindingRequest
from tests.fakes import InMemoryDeviceBindings, InMemoryObjectStore, StaticKeyProvider
from tests.records import PATIENT_IDS, binding_request, device_publication, rule_envelope, with_change

NOW = dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC)
KEYS = StaticKeyProvider()


def queued(i: int, body: object) -> QueuedMessage:
    return QueuedMessage(message_id=f"msg-{i}", body=body if isinstance(body, str) else json.dumps(body))


def bound(*devices: tuple[str, int, str]) -> InMemoryDeviceBindings:
    store = InMemoryDeviceBindings()
    for device, patient, site in devices:
        bind_device(
            device, DeviceBindingRequest.model_validate(binding_request(patient, site)), store=store, keys=KEYS, now=NOW
        )
    return store


def test_binding_stores_only_the_pseudonym() -> None:
    store = bound(("monitor-1", 0, "site-a"))
    binding = store.bindings["monitor-1"]
    assert PATIENT_IDS[0] not in binding.model_dump_json()
    assert len(binding.patient_pseudonym) == 64 and binding.source == "site-a"
    assert unbind_device("monitor-1", store=store) and not unbind_device("monitor-1", store=store)


def test_messages_reconcile_readings_and_quarantine() -> None:
    store = InMemoryObjectStore()
    bindings = bound(("monitor-1", 0, "site-a"), ("monitor-2", 1, "site-a"), ("monitor-3", 2, "site-b"))
    messages = [
        queued(0, rule_envelope(device_publication(readings=3), "monitor-1")),
        queued(1, rule_envelope(b"{not json", "monitor-1")),
        queued(2, rule_envelope(with_change(device_publication(), "readings.0.measurements.1.value", 20), "monitor-2")),
        queued(3, rule_envelope(device_publication(readings=2), "monitor-3")),
        queued(4, rule_envelope(device_publication(), "monitor-unbound")),
        queued(5, rule_envelope({**device_publication(), "patient_id": PATIENT_IDS[0]}, "monitor-1")),
        queued(6, "not an envelope"),
        queued(7, {"device_id": "monitor-1"}),
    ]
    result = ingest_device_messages(messages, store=store, keys=KEYS, bindings=bindings, now=NOW)
    assert (result.messages, result.accepted_messages, result.rejected_messages) == (8, 2, 6)
    assert result.readings_stored == 5 == len(store.lines("raw/device/"))
    assert len(result.raw_objects) == 2  # site-a and site-b, from the bindings
    assert bindings.lookups == 1  # one batched look-up per poll
    quarantined = store.lines("quarantine/device/")
    assert [(q["index"], q["errors"][0]["type"]) for q in quarantined] == [
        (1, "json_invalid"),
        (2, "value_error"),
        (4, "unbound_device"),
        (5, "extra_forbidden"),
        (6, "json_invalid"),
        (7, "envelope_invalid"),
    ]
    assert quarantined[2]["item"]["readings"], "an unbound device's readings are kept for a replay after binding"
    text = b"".join(store.objects.values()).decode()
    assert not any(pid in text for pid in PATIENT_IDS)


def test_reading_ids_are_deterministic_so_replays_collapse() -> None:
    store = InMemoryObjectStore()
    bindings = bound(("monitor-0001", 0, "site-a"))
    messages = [queued(0, rule_envelope(device_publication(readings=2)))]
    first = ingest_device_messages(messages, store=store, keys=KEYS, bindings=bindings, now=NOW)
    ids = [line["reading_id"] for line in store.lines("raw/")]
    second = ingest_device_messages(messages, store=store, keys=KEYS, bindings=bindings, now=NOW)
    assert first.raw_objects == second.raw_objects and len(store.objects) == 1
    start_ms = int(dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC).timestamp() * 1000)
    assert ids == [f"monitor-0001:{start_ms}", f"monitor-0001:{start_ms + 30_000}"]


def test_readings_carry_the_binding_pseudonym_and_site() -> None:
    store = InMemoryObjectStore()
    bindings = bound(("monitor-1", 1, "site-c"))
    ingest_device_messages(
        [queued(0, rule_envelope(device_publication(), "monitor-1"))],
        store=store,
        keys=KEYS,
        bindings=bindings,
        now=NOW,
    )
    lines = store.lines("raw/device/source=site-c/")
    assert {line["patient_pseudonym"] for line in lines} == {bindings.bindings["monitor-1"].patient_pseudonym}
