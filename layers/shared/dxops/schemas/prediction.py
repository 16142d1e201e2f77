"""Predictions and late diagnoses: the prediction API's contract, what its endpoint receives and
answers, and what the monitoring bucket stores.

POST /predict takes one ClinicalRecord or a PredictRequest. Before anything leaves the function,
each record becomes an EndpointRecord: no patient identifier, pseudonym, site, dates or
diagnosis, only what the model reads (ml/records.py) with the age capped as ingestion caps it.
The endpoint answers an EndpointAnswer (ml/inference.py); the API answers a PredictResponse and
stores one StoredPrediction per record. POST /diagnoses takes confirmed diagnoses that arrive
after the prediction (late labels) and stores one StoredDiagnosis each.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from dxops.schemas.clinical import ClinicalCode, ClinicalRecord, Diagnosis, PseudonymisedRecord
from dxops.schemas.common import Identifier, PatientIdentifier, Pseudonym, SiteId, StrictModel

DEFAULT_TOP_K, MAX_TOP_K = 10, 50
MAX_RECORDS = 1000  # the endpoint's own limit (ml/inference.py); the API's is lower (MAX_PREDICT_RECORDS)
MAX_DIAGNOSES = 500
PredictionId = Annotated[
    str,
    Field(
        max_length=140,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*:[0-9]{1,4}$",
        description="<request_id>:<index of the record in the request>: stable, deterministic",
    ),
]


# --- POST /predict ---------------------------------------------------------------------------


class PredictRequest(StrictModel):
    """Body of POST /predict for a batch (a single ClinicalRecord is accepted as the whole body too)."""

    records: list[ClinicalRecord] = Field(min_length=1, max_length=MAX_RECORDS)
    top_k: int = Field(default=DEFAULT_TOP_K, ge=1, le=MAX_TOP_K, description="diagnoses per record")
    explain: bool = Field(default=True, description="include the features behind the top diagnosis")


class EndpointPhenotype(BaseModel):
    hpo_id: str
    status: Literal["observed", "excluded"]


class EndpointLab(BaseModel):
    loinc: str
    value: float
    unit: str


class EndpointVital(BaseModel):
    name: str
    value: float
    unit: str


class EndpointRecord(BaseModel):
    """What the endpoint receives (and its data capture keeps) of one record: the fields the model
    reads, nothing that identifies the patient. record_id is the client's own id, which must not
    be a medical record number; the encounter date is left out (the age is already computed)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    record_id: str
    sex: str
    age_years: float | None
    phenotypes: list[EndpointPhenotype]
    history: list[str]
    labs: list[EndpointLab]
    vitals: list[EndpointVital]

    @classmethod
    def from_pseudonymised(cls, record: PseudonymisedRecord) -> EndpointRecord:
        return cls(
            record_id=record.record_id,
            sex=record.sex,
            age_years=record.age_years,
            phenotypes=[EndpointPhenotype(hpo_id=p.hpo_id, status=p.status) for p in record.phenotypes],
            history=list(record.history),
            labs=[EndpointLab(loinc=lab.loinc, value=lab.value, unit=lab.unit) for lab in record.labs],
            vitals=[EndpointVital(name=v.name, value=v.value, unit=v.unit) for v in record.vitals],
        )


class PredictedDiagnosis(BaseModel):
    """One ranked disease. The endpoint calls the code disease_id; the API calls it code."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    code: str = Field(
        validation_alias=AliasChoices("code", "disease_id"),
        description="ORPHA:, OMIM: or ICD10: code of the disease",
    )
    name: str | None = Field(default=None, description="the disease's name, when the model knows it")
    probability: float = Field(ge=0, le=1)


class FeatureContribution(BaseModel):
    model_config = ConfigDict(frozen=True)

    feature: str = Field(description="a feature of the model: an HPO term, a LOINC code, hx_<code>, age_years, sex")
    contribution: float = Field(description="drop of the top diagnosis's log-probability without this feature")


class EndpointPrediction(BaseModel):
    """One prediction as ml/inference.py answers it."""

    record_id: str | None = None
    diagnoses: list[PredictedDiagnosis]
    rare_candidates: list[PredictedDiagnosis] = Field(default_factory=list)
    contributions: list[FeatureContribution] = Field(default_factory=list)


class EndpointAnswer(BaseModel):
    """The endpoint's response body: predictions in request order."""

    model_version: str = Field(min_length=1, max_length=256)
    predictions: list[EndpointPrediction]


class Prediction(BaseModel):
    prediction_id: PredictionId
    record_id: str
    diagnoses: list[PredictedDiagnosis] = Field(description="best first, calibrated probabilities (top_k)")
    rare_candidates: list[PredictedDiagnosis] = Field(
        description="the knowledge model's best rare (orphan) diseases for the phenotypes, best first"
    )
    contributions: list[FeatureContribution] = Field(
        description="features behind the top diagnosis (empty when explain is false)"
    )


class PredictResponse(BaseModel):
    """200 response of POST /predict: one prediction per record, in request order."""

    request_id: str
    model_version: str
    predictions: list[Prediction]


class StoredPrediction(BaseModel):
    """One NDJSON line of predictions/date=YYYY-MM-DD/hour=HH/<request_id>.ndjson (monitoring
    bucket): the data capture of one served prediction, whatever the endpoint's hosting (serverless
    endpoints have no SageMaker data capture). `inputs` is exactly what the endpoint received for
    the record (no identity); the drift monitor compares it with the model's training baseline."""

    prediction_id: PredictionId
    request_id: str
    record_id: str
    source: SiteId
    patient_pseudonym: Pseudonym
    pseudonym_key_id: str
    model_version: str
    predicted: list[PredictedDiagnosis] = Field(description="the top_k diagnoses served")
    rare_candidates: list[PredictedDiagnosis]
    served_at: dt.datetime
    inputs: EndpointRecord = Field(description="what the model read of the record (its data capture)")


# --- POST /diagnoses -------------------------------------------------------------------------


class LateDiagnosis(StrictModel):
    """A confirmed diagnosis for a record a prediction was made for (a late label)."""

    refuses_direct_identifiers: ClassVar[bool] = True
    prediction_id: PredictionId | None = None
    record_id: Identifier | None = None
    patient_id: PatientIdentifier | None = None
    source: SiteId
    diagnosis: Diagnosis
    confirmed_at: dt.date

    @model_validator(mode="after")
    def _joinable_and_confirmed(self) -> LateDiagnosis:
        if self.prediction_id is None and self.record_id is None:
            raise ValueError("give prediction_id or record_id (or both) to join the diagnosis to its prediction")
        if self.diagnosis.status != "confirmed":
            raise ValueError("only confirmed diagnoses are accepted as labels")
        today = dt.datetime.now(dt.UTC).date()
        if not dt.date(1900, 1, 1) <= self.confirmed_at <= today + dt.timedelta(days=1):
            raise ValueError("confirmed_at must lie between 1900-01-01 and today")
        return self


class DiagnosesRequest(StrictModel):
    """Body of POST /diagnoses."""

    diagnoses: list[LateDiagnosis] = Field(min_length=1, max_length=MAX_DIAGNOSES)


class DiagnosesAccepted(BaseModel):
    """202 response of POST /diagnoses."""

    batch_id: str = Field(description="derived from the content: the same body always gets the same batch_id")
    received: int
    stored: int = Field(description="diagnoses stored under batch_id (by this request or an identical earlier one)")
    replayed: bool = Field(description="true when an identical earlier request had stored them already")


class StoredDiagnosis(BaseModel):
    """One NDJSON line of diagnoses/date=YYYY-MM-DD/<batch_id>.ndjson (monitoring bucket)."""

    batch_id: str
    prediction_id: PredictionId | None
    record_id: str | None
    source: SiteId
    patient_pseudonym: Pseudonym | None
    pseudonym_key_id: str | None
    code: ClinicalCode
    confirmed_at: dt.date
    received_at: dt.datetime
