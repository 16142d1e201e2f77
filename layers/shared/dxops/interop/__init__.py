"""Clinical documents in their own standards (GA4GH Phenopacket v2, FHIR R4), mapped to ClinicalRecord.

A mapper turns one document into ClinicalRecord-shaped dicts (validated afterwards by the same
ingestion as POST /records) and reports, with MappingNotes, every part it did not map and why:
nothing is dropped silently. A document that can't be read at all raises DocumentRejected, with
reasons that name paths in the document, never its values (they may be PHI).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dxops.domain.quarantine import FieldError


@dataclass(frozen=True)
class MappingNote:
    """A part of a document that was not mapped: where (a path in the document) and why.

    The reason may name codes (HP:, OMIM:, LOINC, resource types) but never patient values.
    """

    path: str
    reason: str


@dataclass
class MappedRecord:
    """One ClinicalRecord-shaped dict (not validated yet) and what its mapping left out."""

    record: dict[str, Any]
    notes: list[MappingNote] = field(default_factory=list)
    # Where the record came from in its document ("Encounter/enc-1", the phenopacket id), for reports.
    origin: str | None = None
    # The document's own references to the patient and the encounter (FHIR: {"reference": "Patient/p1"}),
    # for answers in the document's terms (a RiskAssessment's subject). Never stored or logged.
    subject: dict[str, Any] | None = None
    encounter: dict[str, Any] | None = None


class DocumentRejected(Exception):
    """The document can't be mapped at all (invalid against its schema, no patient, no date...)."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.path}: {e.message}" for e in errors))
        self.errors = errors
