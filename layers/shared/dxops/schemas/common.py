"""Field types shared by the clinical and device schemas."""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator

from dxops.vocab.identifiers import DIRECT_IDENTIFIER_KEYS, FREE_TEXT_KEYS
from dxops.vocab.measurements import MeasurementName, UcumUnit, check_measurement

Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")]
SITE_ID_PATTERN = r"^[a-z0-9][a-z0-9\-]*$"
SiteId = Annotated[str, Field(min_length=1, max_length=64, pattern=SITE_ID_PATTERN)]
PatientIdentifier = Annotated[
    SecretStr,
    Field(
        min_length=1,
        max_length=256,
        description="The patient's identifier at the source site. Pseudonymised (keyed HMAC) "
        "before anything is stored; never stored, logged or returned.",
    ),
]
Pseudonym = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]

# Keys that would carry free text or direct identifiers (dxops.vocab.identifiers): refused by name
# with a specific reason (PHI risk), before the generic "extra fields forbidden" error, so that a
# client learns why; and erased from anything quarantined.


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("value must be a finite number")
    return value


FiniteFloat = Annotated[float, AfterValidator(_finite)]


class StrictModel(BaseModel):
    """Base for inbound schemas: unknown fields are errors, free text is refused by name.

    Top-level documents (a record, a device message) also refuse direct identifiers by name.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)
    refuses_direct_identifiers: ClassVar[bool] = False

    @model_validator(mode="before")
    @classmethod
    def _refuse_free_text(cls, data: Any) -> Any:
        if isinstance(data, dict):
            free_text = sorted(FREE_TEXT_KEYS.intersection(data))
            if free_text:
                raise ValueError(f"free-text fields are not accepted (PHI risk): {', '.join(free_text)}")
            identifiers = sorted(DIRECT_IDENTIFIER_KEYS.intersection(data))
            if identifiers and cls.refuses_direct_identifiers:
                raise ValueError(f"direct identifiers are not accepted (PHI risk): {', '.join(identifiers)}")
        return data


class Measurement(StrictModel):
    """One vital sign or device measurement, in a UCUM unit and within a plausible range."""

    name: MeasurementName
    value: FiniteFloat
    unit: UcumUnit = Field(description="UCUM unit accepted for the measurement (see vocab/measurements.py)")

    @model_validator(mode="after")
    def _plausible(self) -> Measurement:
        check_measurement(self.name, self.value, self.unit)
        return self
