"""Devices over real MQTT through the template's IoT rule, its SQS action, the event source
mapping and the real device function, into S3: what a hospital's monitors do on AWS."""

from __future__ import annotations

import datetime as dt
import json
import time

from devices.simulator import (
    MqttEndpoint,
    SimulationConfig,
    bindings,
    generate_fleet_messages,
    make_devices,
    publish_messages,
)
from localcloud.cloud import LocalCloud
from localcloud.event_sources import drain
from localcloud.iot import start_rules_bridge
from localcloud.mqtt_broker import LocalMqttBroker
from tests.integration.api_events import put_binding
from tests.integration.raw_zone import stored_lines


def test_readings_reconcile_from_mqtt_to_s3(cloud: LocalCloud) -> None:
    devices = make_devices(4, "site-a", seed=11)
    bound, unbound = devices[:3], devices[3]
    for device_id, body in bindings(bound).items():
        assert cloud.invoke("IngestApiFunction", put_binding(device_id, body))["statusCode"] == 200
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=2)
    config = SimulationConfig(start=start, readings=12, batch=3, seed=11, invalid_rate=0.3)
    messages = generate_fleet_messages(devices, config)
    defective = [m for m in messages if not m.valid]
    assert any(m.defect == "malformed_json" for m in defective), "the seed must include a non-JSON payload"
    with LocalMqttBroker() as broker:
        bridge, actions = start_rules_bridge(cloud, broker.host, broker.port)
        try:
            published = publish_messages(messages, MqttEndpoint(broker.host, broker.port), timeout=20)
            deadline = time.monotonic() + 20
            while sum(a.delivered + a.errors for a in actions.values()) < published.messages:
                assert time.monotonic() < deadline, "the rule did not take every message"
                time.sleep(0.05)
        finally:
            bridge.stop()
    assert sum(a.errors for a in actions.values()) == 0  # the rule passes every payload on (base64)
    stats = drain(cloud)["IngestDeviceFunctionDeviceReadings"]
    assert stats.deleted == published.messages and stats.failed_invocations == 0
    stored, quarantined = stored_lines(cloud, "raw/device/"), stored_lines(cloud, "quarantine/device/")
    from_bound = [m for m in messages if m.valid and m.device_id != unbound.device_id]
    assert len(stored) == sum(m.readings for m in from_bound)
    assert len(quarantined) == published.messages - len(from_bound)  # defects + the unbound device's messages
    assert {line["device_id"] for line in stored} == {d.device_id for d in bound}
    kinds = {q["errors"][0]["type"] for q in quarantined}
    assert {"json_invalid", "unbound_device"} <= kinds
    text = json.dumps(stored + quarantined)
    assert not any(device.patient_id in text for device in devices)
