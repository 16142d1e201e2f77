"""Simulated vital-sign devices that publish readings over real MQTT, locally or to AWS IoT Core.

Each device is bound to one patient at one site (the binding is registered through the API,
PUT /devices/{device_id}/binding: see `bindings`) and publishes to
``dxops/devices/<device id>/readings`` what a real device would: a JSON object with ``readings``
(or one reading in the flat form) and nothing about the patient. It does not send ``device_id``
or ``received_at``: the IoT topic rule adds them (see dxops.schemas.device).

Generation is pure and deterministic (same seed and start, same bytes), separate from
publishing, so tests can check the data without a broker. Values follow a per-patient
baseline, a mean-reverting random walk, measurement noise and a circadian cycle, and always
stay inside the plausible ranges of dxops.vocab.measurements; ``invalid_rate`` asks for some
deliberately bad messages (out of range, wrong unit, a patient identifier sent by the device,
malformed JSON...) to exercise the quarantine.

Patient identifiers are PHI by contract: nothing here logs or prints them.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import math
import random
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import TypeAdapter, ValidationError

from dxops.schemas.common import SiteId
from dxops.schemas.device import MAX_READINGS_PER_MESSAGE, DeviceId
from dxops.vocab.measurements import MEASUREMENTS

__all__ = [
    "DEFECTS",
    "IOT_MAX_PAYLOAD_BYTES",
    "TOPIC_TEMPLATE",
    "VITAL_SIGNS",
    "DeviceSpec",
    "MqttEndpoint",
    "PublishError",
    "PublishResult",
    "SimulatedMessage",
    "SimulationConfig",
    "TlsFiles",
    "VitalSign",
    "generate_device_messages",
    "generate_fleet_messages",
    "main",
    "make_devices",
    "publish_messages",
    "summarize",
]

TOPIC_TEMPLATE: Final = "dxops/devices/{device_id}/readings"
AWS_IOT_ALPN: Final = "x-amzn-mqtt-ca"  # lets MQTT with client certificates use port 443
IOT_MAX_PAYLOAD_BYTES: Final = 128 * 1024  # IoT Core refuses larger messages; enforced locally too

# --------------------------------------------------------------------------------------------
# Physiology
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VitalSign:
    """How one measurement behaves in a resting adult, in its UCUM unit.

    ``low``/``high`` bound what the simulator emits (an unwell but living patient); they must
    lie inside the vocabulary's plausible range, which is checked at import.
    """

    name: str
    unit: str
    mean: float  # population mean of the per-patient baseline
    spread: float  # SD of baselines between patients
    low: float
    high: float
    walk_sd: float  # per-reading step of the slow random walk
    reversion: float  # pull of the walk back to the baseline, per reading (0..1)
    noise_sd: float  # measurement noise
    circadian_amplitude: float
    circadian_peak_hour: float  # local hour of the daily maximum
    decimals: int


VITAL_SIGNS: Final[tuple[VitalSign, ...]] = (
    VitalSign("heart_rate", "/min", 74, 8, 42, 160, 1.2, 0.05, 2.0, 5, 16, 0),
    VitalSign("spo2", "%", 97.5, 1.0, 88, 100, 0.15, 0.10, 0.6, 0.4, 15, 0),
    VitalSign("body_temperature", "Cel", 36.8, 0.25, 35.0, 39.8, 0.03, 0.05, 0.06, 0.35, 17, 1),
    VitalSign("systolic_bp", "mm[Hg]", 121, 11, 82, 200, 1.0, 0.05, 4.0, 6, 11, 0),
    VitalSign("diastolic_bp", "mm[Hg]", 77, 7, 45, 120, 0.7, 0.05, 3.0, 4, 11, 0),
    VitalSign("respiratory_rate", "/min", 15, 2, 9, 30, 0.25, 0.08, 0.8, 1, 15, 0),
)
GLUCOSE: Final = VitalSign("glucose", "mg/dL", 104, 14, 60, 280, 2.0, 0.08, 5.0, 12, 13, 0)
MIN_PULSE_PRESSURE: Final = 20  # systolic - diastolic, mmHg


def _check_vital_signs_against_vocab() -> None:
    # Fail at import, not in a downstream quarantine, if the vocabulary ever narrows a range.
    for sign in (*VITAL_SIGNS, GLUCOSE):
        units = MEASUREMENTS[sign.name].units
        if sign.unit not in units:
            raise ValueError(f"{sign.name}: unit {sign.unit!r} is not accepted by the vocabulary")
        low, high = units[sign.unit]
        if not low <= sign.low < sign.high <= high:
            raise ValueError(f"{sign.name}: [{sign.low}, {sign.high}] is not inside plausible [{low}, {high}]")


_check_vital_signs_against_vocab()

# --------------------------------------------------------------------------------------------
# Devices, configuration and messages
# --------------------------------------------------------------------------------------------

_DEVICE_ID: Final = TypeAdapter(DeviceId)
_SITE_ID: Final = TypeAdapter(SiteId)


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """A device bound to one patient at one site. The patient id never appears in repr()."""

    device_id: str
    patient_id: str = field(repr=False)
    site: str
    glucose: bool = False

    def __post_init__(self) -> None:
        try:
            _DEVICE_ID.validate_python(self.device_id)
            _SITE_ID.validate_python(self.site)
        except ValidationError as exc:
            raise ValueError(f"invalid device id or site: {exc.errors()[0]['msg']}") from None
        if not self.patient_id.strip():
            raise ValueError(f"device {self.device_id}: empty patient id")

    @property
    def topic(self) -> str:
        return TOPIC_TEMPLATE.format(device_id=self.device_id)


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """What to generate for every device; the seed and start fix the output."""

    start: dt.datetime
    readings: int = 20  # per device
    batch: int = 1  # readings per message
    interval: dt.timedelta = dt.timedelta(minutes=1)
    seed: int = 0
    invalid_rate: float = 0.0
    flat: bool = False  # single-reading messages in the flat form (needs batch == 1)
    tz: dt.tzinfo = dt.UTC  # timestamps' offset and the circadian clock

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if self.readings < 1:
            raise ValueError("readings must be >= 1")
        if not 1 <= self.batch <= MAX_READINGS_PER_MESSAGE:
            raise ValueError(f"batch must be between 1 and {MAX_READINGS_PER_MESSAGE}")
        if self.interval <= dt.timedelta(0):
            raise ValueError("interval must be positive")
        if not 0.0 <= self.invalid_rate <= 1.0:
            raise ValueError("invalid_rate must be between 0 and 1")
        if self.flat and self.batch != 1:
            raise ValueError("the flat form holds one reading: use batch=1")


@dataclass(frozen=True, slots=True)
class SimulatedMessage:
    """One MQTT message as the device publishes it (payload) plus what the tests need to know."""

    device_id: str
    topic: str
    payload: bytes = field(repr=False)
    document: dict[str, Any] | None = field(repr=False)  # the JSON object sent; None if malformed
    readings: int
    defect: str | None = None  # None for a valid message, else one of DEFECTS

    @property
    def valid(self) -> bool:
        return self.defect is None


def make_devices(
    count: int,
    site: str,
    *,
    seed: int = 0,
    patient_ids: Sequence[str] | None = None,
    device_ids: Sequence[str] | None = None,
    glucose: bool = False,
) -> list[DeviceSpec]:
    """``count`` devices, one patient each; ids default to ``sim-<site>-NNN`` and ``MRN-<n>``."""
    if count < 1:
        raise ValueError("at least one device is needed")
    if device_ids is None:
        device_ids = [f"sim-{site}-{index:03d}" for index in range(1, count + 1)]
    if patient_ids is None:
        rng = _rng(seed, "patients")
        generated: dict[str, None] = {}
        while len(generated) < count:
            generated[f"MRN-{rng.randrange(100_000, 1_000_000)}"] = None
        patient_ids = list(generated)
    if len(device_ids) != count or len(patient_ids) != count:
        raise ValueError(
            f"{count} devices need {count} device ids and {count} patient ids "
            f"(got {len(device_ids)} and {len(patient_ids)})"
        )
    if len(set(device_ids)) != count:
        raise ValueError("device ids must be unique")
    return [
        DeviceSpec(device_id, patient_id, site, glucose)
        for device_id, patient_id in zip(device_ids, patient_ids, strict=True)
    ]


# --------------------------------------------------------------------------------------------
# Generation (pure)
# --------------------------------------------------------------------------------------------


def _rng(seed: int, *stream: str) -> random.Random:
    # One independent, reproducible stream per purpose (string seeds hash the same in every
    # process). Simulation needs reproducibility, not unpredictability.
    return random.Random(":".join(("dxops-sim", str(seed), *stream)))


def _round(value: float, decimals: int) -> float | int:
    return round(value) if decimals == 0 else round(value, decimals)


def _local_hour(timestamp: dt.datetime, tz: dt.tzinfo) -> float:
    local = timestamp.astimezone(tz)
    return local.hour + local.minute / 60 + local.second / 3600


class _VitalSeries:
    """One patient's trajectory for one sign: baseline + walk + circadian + noise, clamped."""

    def __init__(self, sign: VitalSign, rng: random.Random) -> None:
        self.sign = sign
        inner_low = sign.low + (sign.high - sign.low) * 0.1
        inner_high = sign.high - (sign.high - sign.low) * 0.1
        self.baseline = min(max(rng.gauss(sign.mean, sign.spread), inner_low), inner_high)
        self.offset = 0.0

    def next(self, rng: random.Random, local_hour: float) -> float:
        sign = self.sign
        self.offset = self.offset * (1 - sign.reversion) + rng.gauss(0, sign.walk_sd)
        phase = 2 * math.pi * (local_hour - sign.circadian_peak_hour) / 24
        value = self.baseline + self.offset + sign.circadian_amplitude * math.cos(phase) + rng.gauss(0, sign.noise_sd)
        return min(max(value, sign.low), sign.high)


def _readings(device: DeviceSpec, config: SimulationConfig) -> Iterator[dict[str, Any]]:
    rng = _rng(config.seed, device.device_id, "values")
    series = [_VitalSeries(sign, rng) for sign in (*VITAL_SIGNS, GLUCOSE)]
    for index in range(config.readings):
        timestamp = config.start + index * config.interval
        hour = _local_hour(timestamp, config.tz)
        # Every series advances even when glucose is off, so that turning it on changes nothing else.
        values = {s.sign.name: s.next(rng, hour) for s in series}
        values["diastolic_bp"] = min(values["diastolic_bp"], values["systolic_bp"] - MIN_PULSE_PRESSURE)
        measurements = [
            {"name": s.sign.name, "value": _round(values[s.sign.name], s.sign.decimals), "unit": s.sign.unit}
            for s in series
            if s.sign is not GLUCOSE or device.glucose
        ]
        yield {"timestamp": timestamp.astimezone(config.tz).isoformat(), "measurements": measurements}


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _message_document(readings: list[dict[str, Any]], flat: bool) -> dict[str, Any]:
    if flat:
        (reading,) = readings
        return dict(reading)
    return {"readings": readings}


def bindings(devices: Sequence[DeviceSpec]) -> dict[str, dict[str, str]]:
    """Body of PUT /devices/{device_id}/binding for each device (contains patient identifiers)."""
    return {device.device_id: {"source": device.site, "patient_id": device.patient_id} for device in devices}


def generate_device_messages(device: DeviceSpec, config: SimulationConfig) -> list[SimulatedMessage]:
    """One device's messages, oldest first: ``config.readings`` readings in batches."""
    defect_rng = _rng(config.seed, device.device_id, "defects")
    readings = list(_readings(device, config))
    messages: list[SimulatedMessage] = []
    for index, offset in enumerate(range(0, len(readings), config.batch)):
        chunk = readings[offset : offset + config.batch]
        document = _message_document(chunk, config.flat)
        # Two draws per message whatever the rate, and a separate stream to damage a message:
        # a message invalid at one rate is invalid, the same way, at any higher rate.
        draw, defect = defect_rng.random(), defect_rng.choice(DEFECTS)
        if draw < config.invalid_rate:
            damage_rng = _rng(config.seed, device.device_id, "damage", str(index))
            messages.append(_defective(device, document, len(chunk), defect, damage_rng))
        else:
            messages.append(SimulatedMessage(device.device_id, device.topic, _encode(document), document, len(chunk)))
    return messages


def generate_fleet_messages(devices: Sequence[DeviceSpec], config: SimulationConfig) -> list[SimulatedMessage]:
    """All devices' messages in publishing order: round robin, as concurrent devices would send."""
    per_device = [generate_device_messages(device, config) for device in devices]
    ordered: list[SimulatedMessage] = []
    for round_index in range(max((len(messages) for messages in per_device), default=0)):
        ordered.extend(messages[round_index] for messages in per_device if round_index < len(messages))
    return ordered


# --------------------------------------------------------------------------------------------
# Defects (invalid messages on purpose)
# --------------------------------------------------------------------------------------------

_WRONG_UNITS: Final = {
    "heart_rate": "bpm",
    "spo2": "percent",
    "body_temperature": "C",
    "systolic_bp": "mmHg",
    "diastolic_bp": "mmHg",
    "respiratory_rate": "breaths/min",
    "glucose": "mg/dl",
}


def _reading_list(document: dict[str, Any]) -> list[dict[str, Any]]:
    readings: list[dict[str, Any]] = document.get("readings", [document])
    return readings


def _pick_measurement(document: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    reading = rng.choice(_reading_list(document))
    measurement: dict[str, Any] = rng.choice(reading["measurements"])
    return measurement


def _out_of_range(document: dict[str, Any], rng: random.Random) -> None:
    measurement = _pick_measurement(document, rng)
    low, high = MEASUREMENTS[measurement["name"]].units[measurement["unit"]]
    measurement["value"] = high + (high - low) / 2  # e.g. heart_rate 440 /min, spo2 125 %


def _wrong_unit(document: dict[str, Any], rng: random.Random) -> None:
    measurement = _pick_measurement(document, rng)
    measurement["unit"] = _WRONG_UNITS[measurement["name"]]


def _unknown_measurement(document: dict[str, Any], rng: random.Random) -> None:
    _pick_measurement(document, rng)["name"] = "blood_alcohol"


def _identifier_sent(document: dict[str, Any], _rng: random.Random) -> None:
    # A misconfigured device that sends a patient identifier: refused, never stored.
    document["patient_id"] = "MRN-SENT-BY-DEVICE"


def _future_timestamp(document: dict[str, Any], rng: random.Random) -> None:
    reading = rng.choice(_reading_list(document))
    reading["timestamp"] = (dt.datetime.fromisoformat(reading["timestamp"]) + dt.timedelta(days=36525)).isoformat()


def _free_text(document: dict[str, Any], _rng: random.Random) -> None:
    document["notes"] = "simulated free text"


_DEFECT_EDITS: Final[dict[str, Callable[[dict[str, Any], random.Random], None]]] = {
    "out_of_range": _out_of_range,
    "wrong_unit": _wrong_unit,
    "unknown_measurement": _unknown_measurement,
    "identifier_sent": _identifier_sent,
    "future_timestamp": _future_timestamp,
    "free_text": _free_text,
}
DEFECTS: Final[tuple[str, ...]] = (*_DEFECT_EDITS, "malformed_json")


def _defective(
    device: DeviceSpec, document: dict[str, Any], readings: int, defect: str, rng: random.Random
) -> SimulatedMessage:
    if defect == "malformed_json":
        # A truncated upload: not JSON at all; the rule passes it on (base64) to the quarantine.
        encoded = _encode(document)
        return SimulatedMessage(device.device_id, device.topic, encoded[: len(encoded) // 2], None, readings, defect)
    broken = copy.deepcopy(document)
    _DEFECT_EDITS[defect](broken, rng)
    return SimulatedMessage(device.device_id, device.topic, _encode(broken), broken, readings, defect)


# --------------------------------------------------------------------------------------------
# Publishing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """A device's X.509 credentials for AWS IoT Core, and the CA that signs the endpoint."""

    cert: Path
    key: Path
    ca: Path


@dataclass(frozen=True, slots=True)
class MqttEndpoint:
    """Where to publish: a local broker (no TLS) or AWS IoT Core (TLS with a client cert)."""

    host: str
    port: int
    tls: TlsFiles | None = None
    keepalive: int = 60

    @property
    def alpn(self) -> bool:
        # IoT Core accepts certificate-authenticated MQTT on 443 only with this ALPN protocol.
        return self.tls is not None and self.port == 443


@dataclass(frozen=True, slots=True)
class PublishResult:
    """Counts of a run. ``readings`` counts readings in valid messages only."""

    devices: int
    messages: int
    readings: int
    invalid: int


class PublishError(RuntimeError):
    """Connecting or publishing failed; the message says how far it got."""


def summarize(messages: Sequence[SimulatedMessage]) -> PublishResult:
    """The counts a successful publish of ``messages`` returns."""
    return PublishResult(
        devices=len({message.device_id for message in messages}),
        messages=len(messages),
        readings=sum(message.readings for message in messages if message.valid),
        invalid=sum(1 for message in messages if not message.valid),
    )


def _tls_context(tls: TlsFiles, alpn: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=str(tls.cert), keyfile=str(tls.key))
    if alpn:
        context.set_alpn_protocols([AWS_IOT_ALPN])
    return context


class _DeviceConnection:
    """One device's MQTT session; records a broker-side disconnect so publishing fails fast."""

    def __init__(self, client_id: str, endpoint: MqttEndpoint) -> None:
        self.client_id = client_id
        self._endpoint = endpoint
        self._connected = threading.Event()
        self._closing = False
        self.refused: str | None = None
        self.lost: str | None = None
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv311,
            clean_session=True,
        )
        if endpoint.tls is not None:
            self.client.tls_set_context(_tls_context(endpoint.tls, endpoint.alpn))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect

    def _on_connect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Properties | None
    ) -> None:
        if reason.is_failure:
            self.refused = str(reason)
        self._connected.set()

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Properties | None
    ) -> None:
        if not self._connected.is_set():
            # IoT Core closes the connection (no CONNACK) when the certificate or policy refuses it.
            self.refused = f"closed before CONNACK ({reason})"
            self._connected.set()
        elif not self._closing:
            self.lost = str(reason)

    def connect(self, timeout: float) -> None:
        try:
            self.client.connect(self._endpoint.host, self._endpoint.port, keepalive=self._endpoint.keepalive)
        except (OSError, ssl.SSLError) as exc:
            raise PublishError(f"{self.client_id}: cannot connect to {self._endpoint.host}: {exc}") from exc
        self.client.loop_start()
        if not self._connected.wait(timeout):
            raise PublishError(f"{self.client_id}: no CONNACK from {self._endpoint.host} within {timeout}s")
        if self.refused is not None:
            raise PublishError(
                f"{self.client_id}: connection refused: {self.refused}; on AWS IoT Core check that the "
                "certificate is active, attached to the thing and to the device policy, and that the "
                "client id is the thing name"
            )

    def close(self) -> None:
        self._closing = True
        self.client.disconnect()
        self.client.loop_stop()


def publish_messages(
    messages: Sequence[SimulatedMessage],
    endpoint: MqttEndpoint,
    *,
    client_id_for: Callable[[str], str] = str,
    timeout: float = 30.0,
    rate: float | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> PublishResult:
    """Publish at QoS 1, one MQTT session per device, and wait for every PUBACK.

    ``client_id_for`` maps a device id to its MQTT client id (IoT Core's device policy wants
    the thing name, which is the device id). ``rate`` caps messages per second overall.
    ``on_progress(acknowledged, total)`` is called about every 10 % and at the end.
    """
    if not messages:
        return summarize(messages)
    largest = max(len(message.payload) for message in messages)
    if largest > IOT_MAX_PAYLOAD_BYTES:
        raise PublishError(
            f"a message is {largest} bytes, over IoT Core's {IOT_MAX_PAYLOAD_BYTES}: publish fewer readings per message"
        )
    connections: dict[str, _DeviceConnection] = {}
    try:
        for device_id in dict.fromkeys(message.device_id for message in messages):
            connection = _DeviceConnection(client_id_for(device_id), endpoint)
            connections[device_id] = connection
            connection.connect(timeout)
        pending = _send_all(messages, connections, rate)
        _await_acks(pending, connections, timeout, on_progress)
    finally:
        for connection in connections.values():
            connection.close()
    return summarize(messages)


def _check_alive(connection: _DeviceConnection, done: int, total: int) -> None:
    if connection.lost is not None:
        raise PublishError(
            f"{connection.client_id} was disconnected ({connection.lost}) after {done}/{total} messages; "
            "on AWS IoT Core this usually means the device policy refused the client id or the topic"
        )


def _send_all(
    messages: Sequence[SimulatedMessage], connections: dict[str, _DeviceConnection], rate: float | None
) -> list[tuple[_DeviceConnection, mqtt.MQTTMessageInfo]]:
    pending: list[tuple[_DeviceConnection, mqtt.MQTTMessageInfo]] = []
    started = time.monotonic()
    for index, message in enumerate(messages):
        connection = connections[message.device_id]
        _check_alive(connection, index, len(messages))
        info = connection.client.publish(message.topic, message.payload, qos=1)
        if info.rc not in {MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN}:
            raise PublishError(f"{connection.client_id}: publish failed: {mqtt.error_string(info.rc)}")
        pending.append((connection, info))
        if rate:
            delay = started + (index + 1) / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    return pending


def _await_acks(
    pending: list[tuple[_DeviceConnection, mqtt.MQTTMessageInfo]],
    connections: dict[str, _DeviceConnection],
    timeout: float,
    on_progress: Callable[[int, int], None] | None,
) -> None:
    total = len(pending)
    step = max(1, total // 10)
    deadline = time.monotonic() + timeout
    for done, (connection, info) in enumerate(pending, start=1):
        while not info.is_published():
            _check_alive(connection, done - 1, total)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishError(f"only {done - 1}/{total} messages were acknowledged within {timeout}s")
            info.wait_for_publish(min(remaining, 0.25))
        if on_progress is not None and (done % step == 0 or done == total):
            on_progress(done, total)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def _utc_offset(value: str) -> dt.tzinfo:
    try:
        parsed = dt.datetime.strptime(value.replace("Z", "+00:00"), "%z")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an offset like +02:00, got {value!r}") from None
    assert parsed.tzinfo is not None
    return parsed.tzinfo


def _aware_datetime(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError("--start needs a timezone, e.g. 2025-01-01T08:00:00+00:00")
    return parsed


def _rate(value: str) -> float:
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise argparse.ArgumentTypeError("--invalid-rate must be between 0 and 1")
    return rate


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devices.simulator",
        description="Publish simulated vital-sign readings over MQTT, to a local broker or AWS IoT Core. "
        "Prints counts only, never patient identifiers.",
    )
    target = parser.add_argument_group("target (one of --broker or --iot-endpoint)")
    where = target.add_mutually_exclusive_group(required=True)
    where.add_argument("--broker", type=_host_port, metavar="HOST:PORT", help="local broker, plain TCP, anonymous")
    where.add_argument("--iot-endpoint", metavar="HOST", help="aws iot describe-endpoint --endpoint-type iot:Data-ATS")
    target.add_argument(
        "--port", type=int, choices=(8883, 443), help="IoT Core port: 8883 (default), or 443 (ALPN x-amzn-mqtt-ca)"
    )
    target.add_argument("--cert", type=Path, help="device certificate (PEM), IoT Core only")
    target.add_argument("--key", type=Path, help="device private key (PEM), IoT Core only")
    target.add_argument("--ca", type=Path, help="Amazon Root CA 1 (PEM), IoT Core only")
    target.add_argument("--thing-name", help="IoT thing name: the MQTT client id and the device id")

    fleet = parser.add_argument_group("devices and data")
    fleet.add_argument("--devices", type=int, default=None, help="number of devices (default 3; 1 on IoT Core)")
    fleet.add_argument("--device-ids", help="comma-separated device ids (default sim-<site>-NNN)")
    patients = fleet.add_mutually_exclusive_group()
    patients.add_argument("--patients", help="comma-separated patient ids, one per device (default MRN-<n>)")
    patients.add_argument(
        "--patients-file", type=Path, help="one patient id per line; keeps ids out of `ps` and shell history"
    )
    fleet.add_argument("--site", default="site-a", help="site id sent as 'source' (default site-a)")
    fleet.add_argument("--readings", type=int, default=20, help="readings per device (default 20)")
    fleet.add_argument("--batch", type=int, default=1, help="readings per message (default 1)")
    fleet.add_argument("--flat", action="store_true", help="single readings in the flat form (needs --batch 1)")
    fleet.add_argument("--interval", type=float, default=60.0, help="seconds between readings (default 60)")
    fleet.add_argument("--start", type=_aware_datetime, help="first reading's time (default: ends about now)")
    fleet.add_argument("--utc-offset", type=_utc_offset, default=dt.UTC, help="timestamps' offset, e.g. +01:00")
    fleet.add_argument("--glucose", action="store_true", help="devices also measure glucose")
    fleet.add_argument("--seed", type=int, default=0, help="same seed and --start, same messages (default 0)")
    fleet.add_argument("--invalid-rate", type=_rate, default=0.0, help="share of deliberately invalid messages")

    run = parser.add_argument_group("run")
    run.add_argument("--rate", type=float, default=None, help="max messages per second (default unlimited)")
    run.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for CONNACKs and PUBACKs")
    run.add_argument("--dry-run", action="store_true", help="generate and count, publish nothing")
    run.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parser


_IOT_OPTIONS: Final = ("cert", "key", "ca", "thing_name", "port")


def _endpoint(args: argparse.Namespace, parser: argparse.ArgumentParser) -> MqttEndpoint:
    if args.broker is not None:
        if any(getattr(args, name) is not None for name in _IOT_OPTIONS):
            parser.error("--cert/--key/--ca/--thing-name/--port are for --iot-endpoint")
        host, port = args.broker
        return MqttEndpoint(host, port)
    missing = [f"--{name.replace('_', '-')}" for name in _IOT_OPTIONS[:4] if not getattr(args, name)]
    if missing:
        parser.error(f"--iot-endpoint needs {', '.join(missing)}")
    unreadable = [str(path) for path in (args.cert, args.key, args.ca) if not path.is_file()]
    if unreadable:
        parser.error(f"not a file: {', '.join(unreadable)}")
    return MqttEndpoint(args.iot_endpoint, args.port or 8883, TlsFiles(args.cert, args.key, args.ca))


def _split(value: str | None) -> list[str] | None:
    return None if value is None else [item.strip() for item in value.split(",") if item.strip()]


def _patient_ids(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str] | None:
    if args.patients_file is None:
        return _split(args.patients)
    try:
        text = args.patients_file.read_text("utf-8")
    except OSError as exc:
        parser.error(f"cannot read --patients-file: {exc.strerror}")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _devices(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[DeviceSpec]:
    if args.iot_endpoint and args.device_ids:
        parser.error("on IoT Core the device id is --thing-name; drop --device-ids")
    device_ids = [args.thing_name] if args.iot_endpoint else _split(args.device_ids)
    patient_ids = _patient_ids(args, parser)
    count = args.devices
    if count is None:
        count = len(device_ids) if device_ids else len(patient_ids) if patient_ids else 3
    if args.iot_endpoint and count != 1:
        parser.error("on IoT Core one run is one device: its certificate belongs to --thing-name")
    try:
        return make_devices(
            count, args.site, seed=args.seed, patient_ids=patient_ids, device_ids=device_ids, glucose=args.glucose
        )
    except ValueError as exc:
        parser.error(str(exc))


def _config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> SimulationConfig:
    interval = dt.timedelta(seconds=args.interval)
    start = args.start
    if start is None:
        now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
        start = now - (args.readings - 1) * interval
    try:
        return SimulationConfig(
            start=start,
            readings=args.readings,
            batch=args.batch,
            interval=interval,
            seed=args.seed,
            invalid_rate=args.invalid_rate,
            flat=args.flat,
            tz=args.utc_offset,
        )
    except ValueError as exc:
        parser.error(str(exc))


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: prints progress to stderr and a JSON line of counts to stdout."""
    parser = _parser()
    args = parser.parse_args(argv)
    endpoint = _endpoint(args, parser)
    devices = _devices(args, parser)
    messages = generate_fleet_messages(devices, _config(args, parser))

    def progress(done: int, total: int) -> None:
        print(f"acknowledged {done}/{total} messages", file=sys.stderr, flush=True)

    if args.dry_run:
        result = summarize(messages)
    else:
        try:
            result = publish_messages(
                messages, endpoint, timeout=args.timeout, rate=args.rate, on_progress=None if args.quiet else progress
            )
        except PublishError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(json.dumps({"dry_run": args.dry_run, **asdict(result)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
