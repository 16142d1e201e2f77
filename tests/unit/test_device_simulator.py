"""Device simulator, generation only: deterministic, schema-valid, physiologically plausible."""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import statistics
from collections import Counter, defaultdict
from typing import Any

import pytest
from pydantic import ValidationError

from devices.simulator import (
    DEFECTS,
    DeviceSpec,
    SimulatedMessage,
    SimulationConfig,
    bindings,
    generate_device_messages,
    generate_fleet_messages,
    main,
    make_devices,
    summarize,
)
from dxops.schemas import DevicePublication
from dxops.vocab.measurements import MEASUREMENTS, check_measurement
from localcloud.iot import template_rule_sql
from localcloud.iot_rules import TopicRule
from localcloud.template import load_template

START = dt.datetime(2025, 6, 1, 0, 0, tzinfo=dt.UTC)
RULE = TopicRule(template_rule_sql(load_template())["DeviceTopicRule"])  # the rule template.yaml deploys
RECEIVED_AT = 1_748_736_000_000


def after_rule(message: SimulatedMessage) -> tuple[str, int, DevicePublication]:
    """What the ingest function gets: the payload (base64) with device_id and received_at, as on AWS."""
    output = RULE.apply(message.topic, message.payload, RECEIVED_AT)
    assert output is not None
    payload = json.loads(base64.b64decode(output["payload"]))
    return output["device_id"], output["received_at"], DevicePublication.model_validate(payload)


def fleet(
    devices: int = 3, readings: int = 20, *, seed: int = 7, glucose: bool = False, **config: Any
) -> list[SimulatedMessage]:
    specs = make_devices(devices, "site-a", seed=seed, glucose=glucose)
    return generate_fleet_messages(specs, SimulationConfig(start=START, readings=readings, seed=seed, **config))


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not() -> None:
    first = [m.payload for m in fleet(batch=5)]
    again = [m.payload for m in fleet(batch=5)]
    other = [m.payload for m in fleet(batch=5, seed=8)]
    assert first == again
    assert first != other
    assert len(first) == len(other) == 3 * 4


@pytest.mark.parametrize(("batch", "flat", "messages_per_device"), [(1, False, 20), (1, True, 20), (6, False, 4)])
def test_valid_messages_validate_after_the_topic_rule(batch: int, flat: bool, messages_per_device: int) -> None:
    messages = fleet(batch=batch, flat=flat, glucose=True)
    assert len(messages) == 3 * messages_per_device
    validated = [after_rule(message) for message in messages]
    assert all("device_id" not in (m.document or {}) for m in messages), "the rule, not the device, adds device_id"
    for message, (device_id, received_at, model) in zip(messages, validated, strict=True):
        assert device_id == message.device_id == message.topic.split("/")[2]
        assert received_at == RECEIVED_AT
        assert len(model.readings) == message.readings
        assert {m.name for m in model.readings[0].measurements} == {
            "heart_rate",
            "spo2",
            "body_temperature",
            "systolic_bp",
            "diastolic_bp",
            "respiratory_rate",
            "glucose",
        }
    assert sum(len(model.readings) for _, _, model in validated) == 3 * 20 == summarize(messages).readings
    if flat:
        assert all("readings" not in (m.document or {}) and "timestamp" in (m.document or {}) for m in messages)


def test_each_device_has_one_binding_and_readings_are_evenly_spaced() -> None:
    devices = make_devices(3, "site-a", seed=7)
    assert bindings(devices) == {d.device_id: {"source": "site-a", "patient_id": d.patient_id} for d in devices}
    assert len({b["patient_id"] for b in bindings(devices).values()}) == 3
    messages = fleet(batch=4, interval=dt.timedelta(minutes=5))
    timestamps: dict[str, list[dt.datetime]] = defaultdict(list)
    for message in messages:
        device_id, _, model = after_rule(message)
        timestamps[device_id].extend(reading.timestamp for reading in model.readings)
    for series in timestamps.values():
        assert series[0] == START
        assert {b - a for a, b in itertools.pairwise(series)} == {dt.timedelta(minutes=5)}


def test_values_stay_inside_plausible_ranges_over_a_long_run() -> None:
    messages = fleet(devices=8, readings=720, batch=60, glucose=True, interval=dt.timedelta(minutes=10))
    count = 0
    for message in messages:
        assert message.document is not None
        for reading in message.document["readings"]:
            values = {m["name"]: m["value"] for m in reading["measurements"]}
            for measurement in reading["measurements"]:
                check_measurement(measurement["name"], measurement["value"], measurement["unit"])  # raises if not
                count += 1
            assert values["diastolic_bp"] < values["systolic_bp"]
            assert 88 <= values["spo2"] <= 100
    assert count == 8 * 720 * 7


def series_by_device(messages: list[SimulatedMessage], name: str) -> dict[str, list[tuple[dt.datetime, float]]]:
    series: dict[str, list[tuple[dt.datetime, float]]] = defaultdict(list)
    for message in messages:
        assert message.document is not None
        for reading in message.document["readings"]:
            timestamp = dt.datetime.fromisoformat(reading["timestamp"])
            value = next(m["value"] for m in reading["measurements"] if m["name"] == name)
            series[message.device_id].append((timestamp, value))
    return series


def test_series_are_per_patient_smooth_and_circadian() -> None:
    messages = fleet(devices=10, readings=3 * 48, batch=48, interval=dt.timedelta(minutes=30))
    heart = series_by_device(messages, "heart_rate")
    means = [statistics.mean(v for _, v in points) for points in heart.values()]
    assert statistics.pstdev(means) > 3, "patients should have different baselines"
    for points in heart.values():
        values = [v for _, v in points]
        assert len(set(values)) > 5, "values must vary"
        # Independent draws give a mean step of about 1.13 SD; a walk with noise moves less.
        mean_step = statistics.mean(abs(b - a) for a, b in itertools.pairwise(values))
        assert mean_step < 0.65 * 1.13 * statistics.pstdev(values)
    # Body temperature peaks in the late afternoon and is lowest in the early morning.
    temperature = [p for points in series_by_device(messages, "body_temperature").values() for p in points]
    afternoon = statistics.mean(v for t, v in temperature if 15 <= t.hour < 19)
    early = statistics.mean(v for t, v in temperature if 3 <= t.hour < 7)
    assert afternoon - early > 0.3


def test_utc_offset_moves_timestamps_and_the_circadian_clock() -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    messages = fleet(devices=1, readings=2, tz=plus_two)
    assert messages[0].document is not None
    assert messages[0].document["readings"][0]["timestamp"] == "2025-06-01T02:00:00+02:00"
    assert after_rule(messages[0])[2].readings[0].timestamp == START


def test_glucose_and_defects_do_not_change_the_other_valid_data() -> None:
    plain = fleet(batch=2)
    with_glucose = fleet(batch=2, glucose=True)
    for a, b in zip(plain, with_glucose, strict=True):
        assert a.document is not None and b.document is not None
        stripped = [
            [m for m in reading["measurements"] if m["name"] != "glucose"] for reading in b.document["readings"]
        ]
        assert stripped == [reading["measurements"] for reading in a.document["readings"]]
    noisy = fleet(batch=2, invalid_rate=0.4)
    assert any(not m.valid for m in noisy)
    assert [a.payload for a, b in zip(plain, noisy, strict=True) if b.valid] == [b.payload for b in noisy if b.valid]


def test_invalid_messages_fail_validation_and_cover_every_defect() -> None:
    messages = fleet(devices=6, readings=30, batch=3, invalid_rate=1.0)
    assert all(not m.valid for m in messages)
    assert set(Counter(m.defect for m in messages)) == set(DEFECTS)
    for message in messages:
        if message.defect == "malformed_json":
            # The rule passes it on (base64); the ingest function finds it is not JSON.
            assert message.document is None
            output = RULE.apply(message.topic, message.payload, RECEIVED_AT)
            assert output is not None
            with pytest.raises(json.JSONDecodeError):
                json.loads(base64.b64decode(output["payload"]))
            continue
        with pytest.raises(ValidationError):
            after_rule(message)
    assert summarize(messages).readings == 0
    assert summarize(messages).invalid == len(messages)


def test_a_higher_invalid_rate_only_adds_invalid_messages() -> None:
    low = fleet(batch=2, invalid_rate=0.2)
    high = fleet(batch=2, invalid_rate=0.6)
    damaged_low = {i: m.payload for i, m in enumerate(low) if not m.valid}
    damaged_high = {i: m.payload for i, m in enumerate(high) if not m.valid}
    assert damaged_low
    assert len(damaged_high) > len(damaged_low)
    assert all(damaged_high[i] == payload for i, payload in damaged_low.items())


def test_invalid_rate_is_roughly_honoured() -> None:
    messages = fleet(devices=4, readings=100, invalid_rate=0.25)
    share = sum(not m.valid for m in messages) / len(messages)
    assert 0.17 < share < 0.33
    result = summarize(messages)
    assert result.readings == sum(m.readings for m in messages if m.valid)
    assert result.messages == 400
    assert result.invalid == 400 - result.readings  # one reading per message


def implausible(measurement: dict[str, Any]) -> bool:
    low, high = MEASUREMENTS[measurement["name"]].units[measurement["unit"]]
    return not low <= measurement["value"] <= high


def test_out_of_range_defect_puts_exactly_one_value_outside_the_vocabulary_range() -> None:
    messages = [m for m in fleet(devices=6, readings=30, invalid_rate=1.0) if m.defect == "out_of_range"]
    assert messages
    for message in messages:
        assert message.document is not None
        values = [m for reading in message.document["readings"] for m in reading["measurements"]]
        assert sum(implausible(m) for m in values) == 1


def test_patient_ids_are_generated_unique_and_never_in_repr() -> None:
    devices = make_devices(50, "site-b", seed=1)
    ids = [d.patient_id for d in devices]
    assert len(set(ids)) == 50
    assert all(pid.startswith("MRN-") and pid[4:].isdigit() for pid in ids)
    assert make_devices(50, "site-b", seed=1) == devices
    message = generate_device_messages(devices[0], SimulationConfig(start=START, readings=1))[0]
    assert devices[0].patient_id not in message.payload.decode(), "devices never send patient identity"
    assert devices[0].patient_id not in repr(devices[0]) + repr(message)


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="batch=1"):
        SimulationConfig(start=START, batch=5, flat=True)
    with pytest.raises(ValueError, match="timezone"):
        SimulationConfig(start=START.replace(tzinfo=None))
    with pytest.raises(ValueError, match="invalid_rate"):
        SimulationConfig(start=START, invalid_rate=1.5)
    with pytest.raises(ValueError, match="patient ids"):
        make_devices(3, "site-a", patient_ids=["MRN-1"])
    with pytest.raises(ValueError, match="site"):
        DeviceSpec("dev-1", "MRN-1", "Site A")
    with pytest.raises(ValueError, match="device id"):
        DeviceSpec("dev/1", "MRN-1", "site-a")


def test_cli_dry_run_prints_counts_and_never_patient_ids(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "--broker",
            "127.0.0.1:1",
            "--devices",
            "2",
            "--patients",
            "MRN-SECRET-1,MRN-SECRET-2",
            "--readings",
            "10",
            "--batch",
            "3",
            "--seed",
            "7",
            "--invalid-rate",
            "0.5",
            "--dry-run",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0
    # Which messages are invalid depends on the seed and device ids, not on the start time.
    devices = make_devices(2, "site-a", seed=7, patient_ids=["MRN-SECRET-1", "MRN-SECRET-2"])
    config = SimulationConfig(start=START, readings=10, batch=3, seed=7, invalid_rate=0.5)
    expected = summarize(generate_fleet_messages(devices, config))
    assert json.loads(out) == {
        "dry_run": True,
        "devices": 2,
        "messages": 8,
        "readings": expected.readings,
        "invalid": expected.invalid,
    }
    assert "SECRET" not in out + err


def test_cli_rejects_an_iot_run_without_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--iot-endpoint", "example-ats.iot.eu-west-1.amazonaws.com", "--thing-name", "dev-1"])
    assert exit_info.value.code == 2
    assert "--cert, --key, --ca" in capsys.readouterr().err
