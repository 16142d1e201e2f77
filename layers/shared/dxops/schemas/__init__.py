"""Pydantic schemas: the single source of truth for the API contract and the stored formats."""

from dxops.schemas.clinical import ClinicalRecord, PseudonymisedRecord
from dxops.schemas.device import DeviceBinding, DeviceBindingRequest, DevicePublication, PseudonymisedReading
from dxops.schemas.prediction import (
    DiagnosesAccepted,
    DiagnosesRequest,
    PredictRequest,
    PredictResponse,
    StoredDiagnosis,
    StoredPrediction,
)

__all__ = [
    "ClinicalRecord",
    "DeviceBinding",
    "DeviceBindingRequest",
    "DevicePublication",
    "DiagnosesAccepted",
    "DiagnosesRequest",
    "PredictRequest",
    "PredictResponse",
    "PseudonymisedReading",
    "PseudonymisedRecord",
    "StoredDiagnosis",
    "StoredPrediction",
]
