"""Device readings, as a device publishes them over MQTT and as the raw zone stores them.

A device publishes to ``dxops/devices/<thing name>/readings``: one reading or a batch of
readings, no patient identity. The IoT topic rule wraps each message with ``device_id`` (from the
topic, so a device cannot speak for another) and ``received_at`` (epoch milliseconds). The device
function resolves the device's binding to a patient pseudonym and site.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar

from pydantic import AwareDatetime, ConfigDict, Field, model_validator

from dxops.schemas.common import Measurement, PatientIdentifier, Pseudonym, SiteId, StrictModel

MAX_READINGS_PER_MESSAGE = 1000
MAX_CLOCK_SKEW = dt.timedelta(minutes=5)
# An IoT thing name (the topic rule takes it from the topic).
DEVICE_ID_PATTERN = r"^[A-Za-z0-9:_\-]+$"
DEVICE_ID_MAX_LENGTH = 128
DeviceId = Annotated[str, Field(min_length=1, max_length=DEVICE_ID_MAX_LENGTH, pattern=DEVICE_ID_PATTERN)]


class DeviceReading(StrictModel):
    """Measurements a device took at one moment."""

    timestamp: AwareDatetime
    measurements: list[Measurement] = Field(min_length=1, max_length=32)

    @model_validator(mode="after")
    def _not_in_future(self) -> DeviceReading:
        if self.timestamp > dt.datetime.now(dt.UTC) + MAX_CLOCK_SKEW:
            raise ValueError("timestamp is in the future")
        return self


class DevicePublication(StrictModel):
    """What a device publishes: a reading or a batch of readings, and nothing about the patient.

    Devices never send patient identifiers (they could be stolen, and a device could claim any
    patient): the patient is whoever the device is bound to (PUT /devices/{device_id}/binding).
    """

    readings: list[DeviceReading] = Field(min_length=1, max_length=MAX_READINGS_PER_MESSAGE)

    @model_validator(mode="before")
    @classmethod
    def _single_reading_form(cls, data: Any) -> Any:
        # A device may publish a single reading flat: {"timestamp": ..., "measurements": [...]}.
        if isinstance(data, dict) and "readings" not in data and "measurements" in data:
            data = dict(data)
            data["readings"] = [{"timestamp": data.pop("timestamp", None), "measurements": data.pop("measurements")}]
        return data


class RuleEnvelope(StrictModel):
    """What the IoT topic rule queues for each MQTT message: the payload untouched (base64, so a
    payload that is not JSON still reaches the function and its quarantine), the device id taken
    from the topic and the receive time."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    payload: str = Field(description="base64 of the MQTT payload")
    device_id: DeviceId
    received_at: int = Field(ge=0, lt=10**13, description="IoT Core receive time, epoch milliseconds")


class DeviceBindingRequest(StrictModel):
    """Body of PUT /devices/{device_id}/binding: the patient a device measures from now on."""

    refuses_direct_identifiers: ClassVar[bool] = True
    source: SiteId
    patient_id: PatientIdentifier


class DeviceBinding(StrictModel):
    """A device's binding as stored and returned: the patient's pseudonym, never the identifier."""

    device_id: DeviceId
    source: SiteId
    patient_pseudonym: Pseudonym
    pseudonym_key_id: str
    bound_at: dt.datetime


class PseudonymisedReading(StrictModel):
    """A reading as stored in the raw zone, one NDJSON line per reading."""

    reading_id: str = Field(
        max_length=160, description="<device id>:<epoch ms>: deterministic, so replays collapse in ETL"
    )
    device_id: DeviceId
    source: SiteId
    patient_pseudonym: Pseudonym
    pseudonym_key_id: str
    timestamp: AwareDatetime
    received_at: AwareDatetime
    ingested_at: dt.datetime
    measurements: list[Measurement]
    schema_version: str
