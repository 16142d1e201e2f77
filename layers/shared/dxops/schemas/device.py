"""Device readings, as a device publishes them over MQTT and as the raw zone stores them.

A device publishes to ``dxops/devices/<thing name>/readings``. The IoT topic rule adds
``device_id`` (from the topic, so a device cannot speak for another) and ``received_at``
(epoch milliseconds). One message holds one reading or a batch of readings.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar

from pydantic import AwareDatetime, Field, model_validator

from dxops.schemas.common import Measurement, PatientIdentifier, Pseudonym, SiteId, StrictModel

MAX_READINGS_PER_MESSAGE = 1000
MAX_CLOCK_SKEW = dt.timedelta(minutes=5)
DeviceId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9:_\-]+$")]


class DeviceReading(StrictModel):
    """Measurements a device took at one moment."""

    timestamp: AwareDatetime
    measurements: list[Measurement] = Field(min_length=1, max_length=32)

    @model_validator(mode="after")
    def _not_in_future(self) -> DeviceReading:
        if self.timestamp > dt.datetime.now(dt.UTC) + MAX_CLOCK_SKEW:
            raise ValueError("timestamp is in the future")
        return self


class DeviceMessage(StrictModel):
    """One MQTT message after the topic rule: a device's reading or batch of readings."""

    refuses_direct_identifiers: ClassVar[bool] = True

    device_id: DeviceId
    received_at: int = Field(ge=0, lt=10**13, description="IoT Core receive time, epoch milliseconds")
    source: SiteId
    patient_id: PatientIdentifier = Field(description="Identifier of the patient the device is bound to")
    readings: list[DeviceReading] = Field(min_length=1, max_length=MAX_READINGS_PER_MESSAGE)

    @model_validator(mode="before")
    @classmethod
    def _single_reading_form(cls, data: Any) -> Any:
        # A device may publish a single reading flat: {"timestamp": ..., "measurements": [...]}.
        if isinstance(data, dict) and "readings" not in data and "measurements" in data:
            data = dict(data)
            data["readings"] = [{"timestamp": data.pop("timestamp", None), "measurements": data.pop("measurements")}]
        return data


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
