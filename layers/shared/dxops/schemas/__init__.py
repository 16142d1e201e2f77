"""Pydantic schemas: the single source of truth for the API contract and the stored formats."""

from dxops.schemas.clinical import ClinicalRecord, PseudonymisedRecord
from dxops.schemas.device import DeviceBinding, DeviceBindingRequest, DevicePublication, PseudonymisedReading

__all__ = [
    "ClinicalRecord",
    "DeviceBinding",
    "DeviceBindingRequest",
    "DevicePublication",
    "PseudonymisedReading",
    "PseudonymisedRecord",
]
