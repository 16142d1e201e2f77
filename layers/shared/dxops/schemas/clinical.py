"""ClinicalRecord: one encounter of one patient, as clients send it and as the raw zone stores it.

FHIR-inspired but flat JSON: phenotypes are HPO terms (observed or excluded), labs are LOINC
codes with UCUM units, vitals reuse the device measurement table, diagnoses and history are
ICD-10, ORPHA or OMIM codes. Free text is refused. Dates of birth are never accepted: age or
birth year only.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, model_validator

from dxops.schemas.common import (
    FiniteFloat,
    Identifier,
    Measurement,
    PatientIdentifier,
    Pseudonym,
    SiteId,
    StrictModel,
)
from dxops.vocab.codes import CODE_REGEX, LOINC_REGEX, check_code, check_loinc
from dxops.vocab.hpo import canonical_hpo_id
from dxops.vocab.identifiers import HIPAA_AGE_CAP

HpoTermId = Annotated[
    str,
    Field(pattern=r"^HP:[0-9]{7}$", description="HPO term id; alternative ids map to their primary"),
    AfterValidator(canonical_hpo_id),
]
ClinicalCode = Annotated[
    str,
    Field(pattern=CODE_REGEX, description="ICD10:E11.9, ORPHA:558 or OMIM:154700"),
    AfterValidator(check_code),
]
LoincCode = Annotated[str, Field(pattern=LOINC_REGEX), AfterValidator(check_loinc)]

MAX_PHENOTYPES = 500
MAX_LABS = 500
MAX_HISTORY = 200
MAX_VITALS = 100
MIN_ENCOUNTER_DATE = dt.date(1900, 1, 1)


class Phenotype(StrictModel):
    hpo_id: HpoTermId
    status: Literal["observed", "excluded"] = "observed"
    onset_age_years: Annotated[float, Field(ge=0, le=130)] | None = None


class LabResult(StrictModel):
    loinc: LoincCode
    value: FiniteFloat
    unit: str = Field(min_length=1, max_length=32, pattern=r"^[\x21-\x7e]+$", description="UCUM unit")
    reference_low: FiniteFloat | None = None
    reference_high: FiniteFloat | None = None

    @model_validator(mode="after")
    def _range_ordered(self) -> LabResult:
        low, high = self.reference_low, self.reference_high
        if low is not None and high is not None and low > high:
            raise ValueError("reference_low is greater than reference_high")
        return self


class Diagnosis(StrictModel):
    code: ClinicalCode
    status: Literal["confirmed", "suspected"] = "confirmed"


class ClinicalRecordBody(StrictModel):
    """Every field of a record except the patient's identity."""

    refuses_direct_identifiers: ClassVar[bool] = True

    record_id: Identifier = Field(description="Client-generated record id; must not be a medical record number")
    source: SiteId = Field(description="Site or system the record comes from")
    encounter_date: dt.date
    sex: Literal["female", "male", "other", "unknown"] = "unknown"
    age_years: Annotated[float, Field(ge=0, le=130)] | None = None
    birth_year: Annotated[int, Field(ge=1890)] | None = None
    phenotypes: list[Phenotype] = Field(default_factory=list, max_length=MAX_PHENOTYPES)
    history: list[ClinicalCode] = Field(default_factory=list, max_length=MAX_HISTORY)
    labs: list[LabResult] = Field(default_factory=list, max_length=MAX_LABS)
    vitals: list[Measurement] = Field(default_factory=list, max_length=MAX_VITALS)
    diagnosis: Diagnosis | None = None

    @model_validator(mode="after")
    def _dates_consistent(self) -> ClinicalRecordBody:
        today = dt.datetime.now(dt.UTC).date()
        if not MIN_ENCOUNTER_DATE <= self.encounter_date <= today + dt.timedelta(days=1):
            raise ValueError("encounter_date must lie between 1900-01-01 and today")
        if self.birth_year is not None and self.birth_year > self.encounter_date.year:
            raise ValueError("birth_year is after the encounter")
        return self


class ClinicalRecord(ClinicalRecordBody):
    """A record as a client sends it to POST /records."""

    patient_id: PatientIdentifier


class PseudonymisedRecord(ClinicalRecordBody):
    """A record as stored in the raw zone: identity replaced by a keyed pseudonym.

    Birth year is turned into age at the encounter and ages over 89 are capped at 90
    (HIPAA Safe Harbor), so neither reaches storage.
    """

    birth_year: None = Field(default=None, exclude=True)  # replaced by age_years at the encounter
    patient_pseudonym: Pseudonym
    pseudonym_key_id: str
    ingested_at: dt.datetime
    schema_version: str

    @classmethod
    def from_record(
        cls,
        record: ClinicalRecord,
        *,
        pseudonym: str,
        key_id: str,
        ingested_at: dt.datetime,
        schema_version: str,
    ) -> PseudonymisedRecord:
        body = record.model_dump(exclude={"patient_id", "birth_year", "age_years"})
        age = record.age_years
        if age is None and record.birth_year is not None:
            age = float(record.encounter_date.year - record.birth_year)
        if age is not None:
            age = min(age, HIPAA_AGE_CAP)
        return cls(
            **body,
            age_years=age,
            patient_pseudonym=pseudonym,
            pseudonym_key_id=key_id,
            ingested_at=ingested_at,
            schema_version=schema_version,
        )
