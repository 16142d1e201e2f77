"""Device -> MQTT broker -> topic rule, over real MQTT on 127.0.0.1 (embedded amqtt broker)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices.simulator import (
    MqttEndpoint,
    PublishError,
    SimulatedMessage,
    SimulationConfig,
    generate_fleet_messages,
    main,
    make_devices,
    publish_messages,
)
from dxops.schemas import DevicePublication
from localcloud.iot_rules import IotRulesBridge, decode_original_payload
from localcloud.mqtt_broker import LocalMqttBroker

pytestmark = pytest.mark.integration

# A generic rule for the bridge's own semantics (SELECT * needs a JSON object, errors go to the
# error action). dxops's deployed rule is tested end to end in test_device_path_end_to_end.py.
RULE_NAME = "bridge_semantics_rule"
RULE_SQL = "SELECT *, topic(3) AS device_id, timestamp() AS received_at FROM 'dxops/devices/+/readings'"
START = dt.datetime(2025, 6, 1, 8, 0, tzinfo=dt.UTC)


class Collector:
    """Thread-safe sink for the bridge's callbacks (they run on paho's network thread)."""

    def __init__(self) -> None:
        self.outputs: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self._changed = threading.Condition()

    def on_output(self, rule_name: str, output: dict[str, Any]) -> None:
        assert rule_name == RULE_NAME
        with self._changed:
            self.outputs.append(output)
            self._changed.notify_all()

    def on_error(self, rule_name: str, error: dict[str, Any]) -> None:
        assert rule_name == RULE_NAME
        with self._changed:
            self.errors.append(error)
            self._changed.notify_all()

    def wait_for(self, outputs: int, errors: int = 0, timeout: float = 5.0) -> None:
        with self._changed:
            reached = self._changed.wait_for(
                lambda: len(self.outputs) >= outputs and len(self.errors) >= errors, timeout
            )
        assert reached, f"got {len(self.outputs)}/{outputs} outputs and {len(self.errors)}/{errors} errors"


@pytest.fixture(scope="module")
def broker() -> Iterator[LocalMqttBroker]:
    with LocalMqttBroker() as running:
        yield running


@pytest.fixture
def collector() -> Collector:
    return Collector()


@pytest.fixture
def bridge(broker: LocalMqttBroker, collector: Collector) -> Iterator[IotRulesBridge]:
    with IotRulesBridge(
        broker.host,
        broker.port,
        {RULE_NAME: RULE_SQL},
        collector.on_output,
        collector.on_error,
        client_id_topic_level=3,
    ) as running:
        yield running


def publish_raw(broker: LocalMqttBroker, topic: str, payload: bytes) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-{uuid.uuid4().hex[:8]}")
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        info = client.publish(topic, payload, qos=1)
        info.wait_for_publish(5)
        assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def strip_rule_fields(output: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in output.items() if key not in {"device_id", "received_at"}}


def test_every_simulated_message_comes_out_of_the_rule_with_device_id_and_receive_time(
    broker: LocalMqttBroker, bridge: IotRulesBridge, collector: Collector
) -> None:
    devices = make_devices(3, "site-a", seed=11)
    messages = generate_fleet_messages(devices, SimulationConfig(start=START, readings=10, batch=4, seed=11))
    progress: list[tuple[int, int]] = []

    before_ms = time.time_ns() // 1_000_000
    result = publish_messages(
        messages, MqttEndpoint(broker.host, broker.port), timeout=10, on_progress=lambda *p: progress.append(p)
    )
    collector.wait_for(outputs=len(messages))
    after_ms = time.time_ns() // 1_000_000

    # 3 devices x 10 readings in batches of 4: 4 + 4 + 2 per device.
    assert (result.devices, result.messages, result.readings, result.invalid) == (3, 9, 30, 0)
    assert progress[-1] == (9, 9)
    assert len(collector.outputs) == 9
    assert collector.errors == []
    assert bridge.stats.received == bridge.stats.outputs == 9

    per_device = Counter(output["device_id"] for output in collector.outputs)
    assert per_device == {device.device_id: 3 for device in devices}
    for output in collector.outputs:
        assert before_ms <= output["received_at"] <= after_ms
        DevicePublication.model_validate(strip_rule_fields(output))
    # Nothing lost, duplicated or altered on the way: the payloads reconcile exactly.
    sent = sorted(json.dumps(m.document, sort_keys=True) for m in messages)
    received = sorted(json.dumps(strip_rule_fields(o), sort_keys=True) for o in collector.outputs)
    assert received == sent
    assert sum(len(output["readings"]) for output in collector.outputs) == 30


def test_invalid_messages_split_between_the_rule_error_action_and_ingest(
    broker: LocalMqttBroker, bridge: IotRulesBridge, collector: Collector
) -> None:
    devices = make_devices(3, "site-b", seed=5)
    config = SimulationConfig(start=START, readings=20, batch=2, seed=5, invalid_rate=0.5)
    messages = generate_fleet_messages(devices, config)
    malformed = [m for m in messages if m.defect == "malformed_json"]
    assert malformed, "the seed must produce at least one malformed message"

    result = publish_messages(messages, MqttEndpoint(broker.host, broker.port), timeout=10)
    collector.wait_for(outputs=len(messages) - len(malformed), errors=len(malformed))

    assert result.messages == 30
    assert len(collector.outputs) + len(collector.errors) == 30
    assert len(collector.errors) == len(malformed)
    assert sorted(decode_original_payload(e) for e in collector.errors) == sorted(m.payload for m in malformed)
    # JSON that is wrong for the schema still passes the rule: ingest quarantines it.
    rejected_by_schema = [m for m in messages if not m.valid and m.document is not None]
    schema_invalid_outputs = [o for o in collector.outputs if not _valid(o)]
    assert len(schema_invalid_outputs) == len(rejected_by_schema) == result.invalid - len(malformed)


def _valid(output: dict[str, Any]) -> bool:
    try:
        DevicePublication.model_validate(strip_rule_fields(output))
    except ValueError:
        return False
    return True


def test_a_non_json_payload_reaches_the_error_action(
    broker: LocalMqttBroker, bridge: IotRulesBridge, collector: Collector
) -> None:
    payload = b"\x00not json{"
    publish_raw(broker, "dxops/devices/dev-9/readings", payload)
    publish_raw(broker, "dxops/devices/dev-9/status", b"{}")  # another topic: not this rule's business
    collector.wait_for(outputs=0, errors=1)

    (error,) = collector.errors
    assert error["ruleName"] == RULE_NAME
    assert error["topic"] == "dxops/devices/dev-9/readings"
    assert error["clientId"] == "dev-9"
    assert base64.b64decode(error["base64OriginalPayload"]) == payload
    assert uuid.UUID(error["cloudwatchTraceId"])
    (failure,) = error["failures"]
    assert failure["failedAction"] == "RuleEvaluation"
    assert "not valid JSON" in failure["errorMessage"]
    assert collector.outputs == []
    time.sleep(0.2)  # the status message, had it been delivered, would have arrived by now
    assert bridge.stats.received == 1


def test_an_action_that_raises_goes_to_the_error_action(broker: LocalMqttBroker, collector: Collector) -> None:
    def failing_action(_rule: str, _output: dict[str, Any]) -> None:
        raise RuntimeError("queue unavailable")

    with IotRulesBridge(broker.host, broker.port, {RULE_NAME: RULE_SQL}, failing_action, collector.on_error) as bridge:
        publish_raw(broker, "dxops/devices/dev-3/readings", b'{"x": 1}')
        collector.wait_for(outputs=0, errors=1)
    (failure,) = collector.errors[0]["failures"]
    assert failure == {
        "failedAction": "LocalAction",
        "failedResource": "failing_action",
        "errorMessage": "RuntimeError: queue unavailable",
    }
    assert "clientId" not in collector.errors[0]  # unknown without client_id_topic_level
    assert bridge.stats.errors == 1


def test_the_cli_publishes_to_the_local_broker_and_prints_counts_only(
    broker: LocalMqttBroker, bridge: IotRulesBridge, collector: Collector, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "--broker",
            broker.address,
            "--devices",
            "2",
            "--patients",
            "MRN-CLI-1,MRN-CLI-2",
            "--readings",
            "6",
            "--batch",
            "3",
            "--seed",
            "3",
            "--site",
            "site-c",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0
    assert json.loads(out) == {"dry_run": False, "devices": 2, "messages": 4, "readings": 12, "invalid": 0}
    assert "acknowledged 4/4 messages" in err
    assert "MRN-CLI" not in out + err
    collector.wait_for(outputs=4)
    assert {o["device_id"] for o in collector.outputs} == {"sim-site-c-001", "sim-site-c-002"}


def test_the_broker_keeps_acknowledged_messages_of_a_publisher_that_disconnects_at_once(
    broker: LocalMqttBroker, collector: Collector
) -> None:
    # amqtt 0.12.1 alone drops about 1 in 5 of these (see localcloud.mqtt_broker._DrainingBroker).
    rounds, burst = 5, 30
    with IotRulesBridge(broker.host, broker.port, {RULE_NAME: RULE_SQL}, collector.on_output, collector.on_error):
        for round_index in range(rounds):
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"burst-{round_index}")
            client.connect(broker.host, broker.port)
            client.loop_start()
            infos = [
                client.publish(f"dxops/devices/dev-{round_index}/readings", json.dumps({"n": n}).encode(), qos=1)
                for n in range(burst)
            ]
            for info in infos:
                info.wait_for_publish(5)
            assert all(info.is_published() for info in infos)
            client.disconnect()  # immediately after the last PUBACK
            client.loop_stop()
        collector.wait_for(outputs=rounds * burst)
    assert Counter(o["device_id"] for o in collector.outputs) == {f"dev-{i}": burst for i in range(rounds)}


def test_publishing_to_a_closed_port_fails_with_a_clear_error() -> None:
    with LocalMqttBroker() as short_lived:
        endpoint = MqttEndpoint(short_lived.host, short_lived.port)
    messages: list[SimulatedMessage] = generate_fleet_messages(
        make_devices(1, "site-a"), SimulationConfig(start=START, readings=1)
    )
    with pytest.raises(PublishError, match="cannot connect"):
        publish_messages(messages, endpoint, timeout=2)
