"""FHIR R4 in and out: a Bundle becomes ClinicalRecords (one per Encounter); predictions go back as RiskAssessments.

Parsed with fhir.resources' R4B models (fhir.resources 8 ships R5, R4B and STU3; no R4). For the
elements read or written here (Bundle, Patient, Encounter, Condition, Observation, RiskAssessment and
their datatypes), R4B (4.3.0) has the same names, types and cardinalities as R4 (4.0.1): R4B changed
only the medication-definition, evidence and subscription resources. docs/interop-fhir.md has the
details and the check.

Bundle -> records (map_bundle)
==============================

==========================================  ===============================================================
FHIR element                                ClinicalRecord field
==========================================  ===============================================================
Encounter (one record each)                 one record; Encounter.status entered-in-error/cancelled: none
Encounter.id (else its urn:uuid fullUrl)    record_id (never Encounter.identifier: a visit number)
``source`` argument                         source
Encounter.period.start (date part)          encounter_date (a partial date: none, noted)
Encounter.subject -> Patient                patient_id <- Patient.identifier as system|value (use official,
                                            then usual, else the first), else Patient.id
Patient.gender                              sex (missing or not male/female/other/unknown: "unknown")
Patient.birthDate                           birth_year (the year only, never the date)
Condition, HPO coding                       phenotypes[]: confirmed/no verificationStatus -> observed,
                                            refuted -> excluded; onsetAge (a, mo, wk, d) or onsetDateTime
                                            minus birthDate -> onset_age_years
Condition, ICD-10/ORPHA/OMIM coding,        diagnosis: confirmed -> "confirmed"; provisional, differential,
category encounter-diagnosis                unconfirmed or no verificationStatus -> "suspected"
Condition, ICD-10/ORPHA/OMIM coding,        history[] (confirmed or no verificationStatus only)
other or no category
Observation, LOINC, vital sign              vitals[]: Measurement (name from the LOINC, unit from
                                            valueQuantity.code if UCUM, else .unit); BP panel 85354-9:
                                            its 8480-6 / 8462-4 components
Observation, LOINC, otherwise               labs[]: LabResult (value, unit, referenceRange[0].low/high)
Observation, HPO coding                     phenotypes[]: valueBoolean false or interpretation NEG ->
                                            excluded, else observed
==========================================  ===============================================================

Records are JSON-shaped dicts with ClinicalRecord field names, no None values and no empty lists.
A Condition or Observation belongs to the record of the Encounter it references (Condition.encounter,
Observation.encounter); one that references none belongs to the only Encounter of the Bundle. References
resolve as "Type/id" (relative or absolute, _history ignored) and as entry fullUrls (urn:uuid:...).

Reported as MappingNotes (a path in the Bundle and a reason; codes may be named, values never): the
direct identifiers of the Patient that are not taken (name, telecom, address, photo, contact, other
identifiers) and that only the year of birth is; codings in systems dxops does not use (the system is
named, its display text never); parts that fail their dxops model (unknown HPO term, bad ICD-10, LOINC
check digit, implausible vital: the pydantic message, without the value); refuted or unconfirmed
diagnoses and history, unconfirmed phenotypes, entered-in-error and cancelled resources; values that are
not quantities, quantities with a comparator, missing values or units; a second encounter-diagnosis (a
confirmed one goes to history); Conditions/Observations whose Encounter is not known; every other resource
type ("MedicationStatement is not used by dxops"). A note goes to the record its resource belongs to, or,
when that is not known, to the records of the resource's patient (all records if that is not known
either). Administrative elements (Encounter.class/status/participant, Condition.clinicalStatus,
Observation.effective[x]...) are not read and not reported; narrative text, notes and extensions are
never taken.

Rejected whole (DocumentRejected, paths and messages only, never values or unknown key names): not a
JSON object or not a Bundle; an unknown resourceType; invalid against the R4B models; no Encounter;
no Encounter whose subject is a Patient of the Bundle. An Encounter without its Patient in a Bundle where
others have theirs gives a record without patient_id (with a note): the ingestion rejects that record
alone, with its reason.

Predictions -> RiskAssessment (risk_assessment, risk_assessment_bundle)
=======================================================================

One RiskAssessment per Prediction, built with fhir.resources' models (valid by construction): status
final; identifier = prediction_id (system urn:dxops:prediction); subject = the EHR's own reference,
passed through (reference/type/identifier only: a display is free text); occurrenceDateTime; method =
the model version (system urn:dxops:model-version); one prediction[] per ranked diagnosis, then one per
rare candidate, each with outcome (the code in its system, the table CODE_SYSTEMS shared with the
mapping above), probabilityDecimal and the extension PREDICTION_KIND_URL (valueCode "ranked" or
"rare-candidate"); encounter = the record's Encounter reference; basis = references to the record's source
resources, when given. The Bundle is a
"collection" identified by the request id.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from fhir.resources.R4B import fhirtypes
from fhir.resources.R4B.bundle import Bundle
from pydantic import BaseModel, ValidationError

from dxops.domain.quarantine import FieldError, field_path, safe_field_errors
from dxops.interop import DocumentRejected, MappedRecord, MappingNote
from dxops.schemas.clinical import Diagnosis, LabResult, Phenotype
from dxops.schemas.common import Measurement
from dxops.vocab.codes import LOINC_REGEX
from dxops.vocab.measurements import MEASUREMENT_BY_LOINC

if TYPE_CHECKING:
    from fhir.resources.R4B.codeableconcept import CodeableConcept
    from fhir.resources.R4B.condition import Condition
    from fhir.resources.R4B.encounter import Encounter
    from fhir.resources.R4B.identifier import Identifier
    from fhir.resources.R4B.observation import Observation, ObservationComponent
    from fhir.resources.R4B.patient import Patient
    from fhir.resources.R4B.quantity import Quantity
    from fhir.resources.R4B.reference import Reference
    from fhir.resources.R4B.resource import Resource
    from fhir.resources.R4B.riskassessment import RiskAssessment

    from dxops.schemas.prediction import PredictedDiagnosis, Prediction, PredictResponse

# --- code systems (one table for both directions) --------------------------------------------

# dxops prefix -> FHIR system URIs accepted; the first is the one written in RiskAssessments.
CODE_SYSTEMS: dict[str, tuple[str, ...]] = {
    "ICD10": ("http://hl7.org/fhir/sid/icd-10", "http://hl7.org/fhir/sid/icd-10-cm"),
    "ORPHA": ("http://www.orpha.net", "https://www.orpha.net"),
    "OMIM": ("http://omim.org", "https://omim.org"),
}
_PREFIX_BY_SYSTEM = {uri: prefix for prefix, uris in CODE_SYSTEMS.items() for uri in uris}
HPO_SYSTEMS = frozenset({"http://purl.obolibrary.org/obo/hp.owl", "http://human-phenotype-ontology.org"})
LOINC_SYSTEM = "http://loinc.org"
UCUM_SYSTEM = "http://unitsofmeasure.org"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
OBSERVATION_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"

BP_PANEL = "85354-9"
BP_COMPONENTS = {"8480-6": "systolic_bp", "8462-4": "diastolic_bp"}
_AGE_UNITS = {"a": 1.0, "mo": 1 / 12, "wk": 7 / 365.25, "d": 1 / 365.25}  # UCUM codes of Age -> years
_SEXES = frozenset({"female", "male", "other", "unknown"})
_BUNDLE_TYPES = frozenset(
    {
        "document",
        "message",
        "transaction",
        "transaction-response",
        "batch",
        "batch-response",
        "history",
        "searchset",
        "collection",
    }
)
_ABSTRACT_TYPES = frozenset({"Resource", "DomainResource"})
_NOT_HAPPENED = frozenset({"entered-in-error", "cancelled"})
_DIRECT_IDENTIFIERS = ("name", "telecom", "address", "photo", "contact")
_VALUE_TYPES = (
    "valueCodeableConcept",
    "valueString",
    "valueBoolean",
    "valueInteger",
    "valueRange",
    "valueRatio",
    "valueSampledData",
    "valueTime",
    "valueDateTime",
    "valuePeriod",
)
_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_URI = re.compile(r"^(https?|urn):[\x21-\x7e]{1,200}$")
MAX_ERRORS = 100  # a rejected Bundle lists at most this many reasons


# --- parsing ---------------------------------------------------------------------------------


def map_bundle(document: Any, *, source: str) -> list[MappedRecord]:
    """One ClinicalRecord-shaped dict per Encounter of a FHIR R4 Bundle, with what was left out.

    Raises DocumentRejected when the document is not a valid Bundle or holds no mappable Encounter.
    """
    trimmed, unused = _set_aside_unused(document)
    return _BundleMapper(_parse(trimmed), source, unused).run()


_MAPPED_TYPES = frozenset({"Patient", "Encounter", "Condition", "Observation"})


def _set_aside_unused(document: Any) -> tuple[Any, dict[int, str]]:
    """The Bundle without the resources dxops does not map (entry position -> what they were), so that
    only what is mapped is validated: a malformed MedicationStatement or a resource type of another
    FHIR version must not sink the encounters of a Bundle; they are reported, not validated."""
    if not isinstance(document, dict) or not isinstance(document.get("entry"), list):
        return document, {}
    unused: dict[int, str] = {}
    entries = []
    for position, entry in enumerate(document["entry"]):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        kind = resource.get("resourceType") if isinstance(resource, dict) else None
        if isinstance(kind, str) and kind not in _MAPPED_TYPES:
            # Named only when FHIR defines it: any other string may be anything (a name).
            known = bool(_RESOURCE_TYPE.fullmatch(kind)) and hasattr(fhirtypes, f"{kind}Type")
            unused[position] = kind if known else "a resource of a type FHIR R4 does not define"
            entries.append({key: value for key, value in entry.items() if key != "resource"})
        else:
            entries.append(entry)
    return {**document, "entry": entries}, unused


def _parse(document: Any) -> Bundle:
    errors = _precheck(document)
    if errors:
        raise DocumentRejected(errors)
    try:
        return Bundle.model_validate(document)
    except ValidationError as exc:
        errors = _bundle_errors(exc, document)
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError):
        errors = [FieldError(path="(root)", message="not a valid FHIR R4 Bundle", type="invalid")]
    # Raised outside the except clauses: the exception carries no context (the ValidationError holds inputs).
    raise DocumentRejected(errors)


def _precheck(document: Any) -> list[FieldError]:
    """What fhir.resources would report with the value in its message, or fail on with a KeyError."""
    if not isinstance(document, dict):
        return [FieldError(path="(root)", message="a FHIR Bundle (a JSON object) is expected", type="not_a_bundle")]
    if document.get("resourceType") != "Bundle":
        message = 'a FHIR R4 Bundle is expected (resourceType "Bundle")'
        return [FieldError(path="resourceType", message=message, type="not_a_bundle")]
    errors = []
    kind = document.get("type")
    if isinstance(kind, str) and kind not in _BUNDLE_TYPES:
        message = f"not a Bundle type of FHIR R4 (one of {', '.join(sorted(_BUNDLE_TYPES))})"
        errors.append(FieldError(path="type", message=message, type="bundle_type"))
    entries = document.get("entry")
    if isinstance(entries, list):
        for index, entry in enumerate(entries):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(resource, dict) and "resourceType" not in resource:
                path = field_path(("entry", index, "resource", "resourceType"))
                errors.append(FieldError(path=path, message="a resource needs its resourceType", type="missing"))
    errors.extend(
        FieldError(path=field_path(loc), message="not a FHIR R4 resource type", type="resource_type")
        for loc in _unknown_resource_types(document)
    )
    return errors


def _walk(document: Any) -> Iterator[tuple[tuple[int | str, ...], Any]]:
    """Every (location, value) of a JSON document, without recursion (documents may nest deeply)."""
    stack: list[tuple[tuple[int | str, ...], Any]] = [((), document)]
    while stack:
        loc, value = stack.pop()
        yield loc, value
        if isinstance(value, dict):
            stack.extend(((*loc, key), item) for key, item in value.items() if isinstance(key, str))
        elif isinstance(value, list):
            stack.extend(((*loc, index), item) for index, item in enumerate(value))


def _unknown_resource_types(document: dict[str, Any]) -> list[tuple[int | str, ...]]:
    unknown = []
    for loc, value in _walk(document):
        if loc and isinstance(value, dict) and "resourceType" in value:
            kind = value["resourceType"]
            known = isinstance(kind, str) and bool(_RESOURCE_TYPE.fullmatch(kind)) and kind not in _ABSTRACT_TYPES
            if not known or not hasattr(fhirtypes, f"{kind}Type"):
                unknown.append((*loc, "resourceType"))
    return sorted(unknown, key=str)


def _bundle_errors(exc: ValidationError, document: Any) -> list[FieldError]:
    """The model's errors as FieldErrors: paths (unknown keys hidden) and messages without values.

    fhir.resources' own messages name only element names, class names and types, except the wrong
    resourceType one; any message that holds a text value of the document is replaced all the same.
    """
    raw = exc.errors(include_input=False, include_url=False)
    values = {
        value
        for loc, value in _walk(document)
        if isinstance(value, str) and len(value) >= 3 and (not loc or loc[-1] != "resourceType")
    }
    errors = []
    for error in safe_field_errors(raw[:MAX_ERRORS]):
        message = error.message
        if error.type == "fhir-validation-wrong-resource-type" or any(value in message for value in values):
            message = f"invalid value ({error.type})"
        errors.append(FieldError(path=error.path, message=message, type=error.type))
    if len(raw) > MAX_ERRORS:
        more = f"{len(raw) - MAX_ERRORS} more errors not listed"
        errors.append(FieldError(path="(root)", message=more, type="too_many_errors"))
    return errors


# --- helpers on FHIR values --------------------------------------------------------------------


def _entry_path(index: int) -> str:
    return f"entry[{index}].resource"


def _full_date(value: object) -> dt.date | None:
    """The date of a FHIR date/dateTime, or None for a partial one ("2024", "2024-03")."""
    if isinstance(value, dt.datetime):
        return value.date()  # the date where it was recorded (its own offset)
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and len(value) >= 10:
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def _year(value: object) -> int | None:
    if isinstance(value, dt.date):
        return value.year
    if isinstance(value, str) and re.match(r"^[0-9]{4}", value):
        return int(value[:4])
    return None


def _codes(concepts: Sequence[CodeableConcept] | CodeableConcept | None, system: str) -> set[str]:
    """Codes of the given system (or without a system) in one or several CodeableConcepts."""
    if concepts is None:
        return set()
    items = [concepts] if not isinstance(concepts, Sequence) else concepts
    return {c.code for cc in items for c in cc.coding or [] if c.code and c.system in (system, None)}


def _system_label(system: str | None) -> str:
    if system is None:
        return "(no system)"
    return system if _URI.fullmatch(system) else "(a system that is not a URI)"


def _kind(system: str | None) -> str | None:
    if system in HPO_SYSTEMS:
        return "hpo"
    if system in _PREFIX_BY_SYSTEM:
        return "disease"
    return "loinc" if system == LOINC_SYSTEM else None


def _normalised(kind: str, system: str | None, code: str) -> str:
    code = code.strip()
    if kind == "hpo":
        if re.fullmatch(r"[0-9]{7}", code):
            return f"HP:{code}"
        return code.replace("HP_", "HP:", 1) if code.startswith("HP_") else code
    if kind == "disease":
        prefix = _PREFIX_BY_SYSTEM[cast(str, system)]
        if code.upper().startswith(f"{prefix}:"):
            code = code[len(prefix) + 1 :]
        return f"{prefix}:{code}"
    return code


def _pick(concept: CodeableConcept | None, kinds: tuple[str, ...], path: str, what: str) -> tuple[str, str, str] | str:
    """(kind, dxops code, path of the coding) of the first usable coding (userSelected first), or a reason.

    Other codings of the same concept are translations of it: they are not reported.
    """
    if concept is None:
        return f"the {what} has no code"
    codings = list(enumerate(concept.coding or []))
    if not codings:
        return f"{what}.code has no coding (its text is not taken)"
    for index, coding in sorted(codings, key=lambda item: not item[1].userSelected):
        kind = _kind(coding.system)
        if kind in kinds and coding.code:
            return kind, _normalised(kind, coding.system, coding.code), f"{path}.coding[{index}]"
    systems = ", ".join(sorted({_system_label(coding.system) for _, coding in codings}))
    return f"code system not used by dxops for {what} codes: {systems}"


def _patient_identifier(patient: Patient) -> str | None:
    """The identifier pseudonymised as patient_id: its system and value ("system|value", as FHIR
    search writes it), so that an MRN and an insurance number with the same digits stay two patients."""
    identifiers: list[Identifier] = [i for i in patient.identifier or [] if i.value]
    chosen = next((i for use in ("official", "usual") for i in identifiers if i.use == use), None)
    chosen = chosen or (identifiers[0] if identifiers else None)
    if chosen is None:
        return patient.id
    return f"{chosen.system}|{chosen.value}" if chosen.system else cast(str, chosen.value)


def _scrubbed(message: str, values: Mapping[str, Any]) -> str:
    """A model's message without the numbers it was given (a vital's value is the patient's)."""
    for value in values.values():
        if isinstance(value, float):
            message = message.replace(str(value), "(value)")
    return message.removeprefix("Value error, ")


def _validated(
    model: type[BaseModel], data: dict[str, Any], paths: Mapping[str, str], notes: list[MappingNote]
) -> dict[str, Any] | None:
    """`data` checked by its dxops model (as JSON, no None), or None with one note per failure."""
    try:
        return model.model_validate(data).model_dump(mode="json", exclude_none=True)
    except ValidationError as exc:
        for error in exc.errors(include_input=False, include_url=False):
            name = str(error["loc"][0]) if error["loc"] else ""
            path = paths.get(name, paths[""])
            message = _scrubbed(error["msg"], data)
            notes.append(MappingNote(path=path, reason=f"{name}: {message}" if name else message))
        return None


def _quantity(element: Observation | ObservationComponent, path: str) -> tuple[float, str] | str:
    """(value, unit) of valueQuantity, or why there is none."""
    quantity: Quantity | None = element.valueQuantity
    if quantity is None:
        present = [name for name in _VALUE_TYPES if getattr(element, name, None) is not None]
        if present:
            return f"{present[0]} is not used: dxops labs and vitals are quantities (valueQuantity)"
        return "no value" + (" (dataAbsentReason)" if element.dataAbsentReason else "")
    if quantity.comparator:
        return "a value with a comparator (<, >...) is not an exact value: not taken"
    if quantity.value is None:
        return "valueQuantity has no value"
    # The UCUM code when the quantity says it is UCUM; else the human unit; else a bare code.
    unit = quantity.code if quantity.system == UCUM_SYSTEM and quantity.code else (quantity.unit or quantity.code)
    if not unit:
        return "valueQuantity has no unit"
    return float(quantity.value), unit


# --- the mapping ----------------------------------------------------------------------------


@dataclass
class _Draft:
    """A record being built from one Encounter."""

    entry: int
    origin: str
    patient_entry: int | None
    record: dict[str, Any]
    notes: list[MappingNote] = field(default_factory=list)
    diagnoses: list[tuple[dict[str, Any], str]] = field(default_factory=list)  # (Diagnosis, path)
    birth_date: dt.date | None = None
    subject: dict[str, Any] | None = None  # the Encounter's subject reference, as the Bundle writes it


@dataclass
class _Target:
    """Where a Condition or Observation goes: its record, or why none and who hears about it."""

    draft: _Draft | None
    fallback: Callable[[], list[_Draft]] | None = None  # who hears about it (worked out only then)
    path: str = ""
    reason: str = ""

    def report(self, what: str) -> None:
        """Tell the records that should know that the resource was not mapped, and why."""
        if self.fallback is not None:
            for draft in self.fallback():
                draft.notes.append(MappingNote(path=self.path, reason=f"{what} {self.reason}"))


class _BundleMapper:
    def __init__(self, bundle: Bundle, source: str, unused: Mapping[int, str]) -> None:
        self.source = source
        self.unused = unused
        self.resources: list[Resource | None] = [entry.resource for entry in bundle.entry or []]
        self.index: dict[str, int] = {}
        self.full_urls: dict[int, str] = {}
        for position, entry in enumerate(bundle.entry or []):
            if entry.fullUrl:
                self.full_urls[position] = entry.fullUrl
                self.index[_strip_history(entry.fullUrl)] = position
            if entry.resource is not None and entry.resource.id:
                self.index[f"{entry.resource.get_resource_type()}/{entry.resource.id}"] = position
        self.encounters = [i for i, r in enumerate(self.resources) if _type(r) == "Encounter"]
        self.drafts: dict[int, _Draft] = {}
        self.skipped: dict[int, str] = {}  # Encounter entry -> its status

    def run(self) -> list[MappedRecord]:
        if not self.encounters:
            reason = "the Bundle has no Encounter: dxops records are encounters (one record per Encounter)"
            raise DocumentRejected([FieldError(path="entry", message=reason, type="no_encounter")])
        for position in self.encounters:
            self._encounter(position, cast("Encounter", self.resources[position]))
        self._check_mappable()
        for position, resource in enumerate(self.resources):
            self._entry(position, resource)
        for draft in self.drafts.values():
            self._finish(draft)
        return [
            MappedRecord(
                record=d.record,
                notes=d.notes,
                origin=d.origin,
                subject=d.subject,
                encounter={"reference": d.origin} if d.origin.startswith(("Encounter/", "urn:")) else None,
            )
            for d in self.drafts.values()
        ]

    def _check_mappable(self) -> None:
        if not self.drafts:
            reason = "no Encounter to map: every one is entered-in-error or cancelled"
            raise DocumentRejected([FieldError(path="entry", message=reason, type="no_encounter")])
        if all(d.patient_entry is None for d in self.drafts.values()):
            reason = "the Encounter's subject is missing or is not a Patient of the Bundle (dxops records need one)"
            raise DocumentRejected(
                [
                    FieldError(path=f"{_entry_path(d.entry)}.subject", message=reason, type="no_patient")
                    for d in self.drafts.values()
                ]
            )

    # -- references --

    def resolve(self, reference: Reference | None, resource_type: str | None = None) -> int | None:
        """The entry a reference points at: by fullUrl or Type/id, by a conditional reference
        (Patient?identifier=system|value, as transaction Bundles write them) or by a logical reference
        (Reference.identifier) to a resource of the Bundle with that identifier."""
        if reference is None:
            return None
        target = reference.reference
        if not target or "?identifier=" in target:
            kind, _, token = (target or "").partition("?identifier=")
            wanted = token or (
                f"{reference.identifier.system or ''}|{reference.identifier.value}"
                if reference.identifier is not None and reference.identifier.value
                else ""
            )
            return self._by_identifier(wanted, kind.rsplit("/", 1)[-1] or resource_type) if wanted else None
        target = _strip_history(target)
        position = self.index.get(target)
        if position is None and "/" in target:
            position = self.index.get("/".join(target.split("/")[-2:]))
        if position is None or (resource_type and _type(self.resources[position]) != resource_type):
            return None
        return position

    def _by_identifier(self, token: str, resource_type: str | None) -> int | None:
        """The one resource of the type with identifier `system|value` (or `value`, any system)."""
        system, bar, value = token.rpartition("|")
        found = [
            position
            for position, resource in enumerate(self.resources)
            if resource is not None
            and (resource_type is None or _type(resource) == resource_type)
            and any(
                i.value == value and (not bar or not system or i.system == system)
                for i in getattr(resource, "identifier", None) or []
            )
        ]
        return found[0] if len(found) == 1 else None

    def _records_of(self, patient: int | None) -> list[_Draft]:
        drafts = [d for d in self.drafts.values() if patient is not None and d.patient_entry == patient]
        return drafts or list(self.drafts.values())

    def _target(self, position: int, resource: Condition | Observation) -> _Target:
        path = _entry_path(position)
        patient = self.resolve(resource.subject, "Patient")
        fallback = lambda: self._records_of(patient)  # noqa: E731 (scans the records: only when needed)
        if resource.encounter is not None and resource.encounter.reference:
            encounter = self.resolve(resource.encounter, "Encounter")
            if encounter in self.skipped:
                reason = f"whose Encounter is {self.skipped[encounter]}: not mapped"
                return _Target(None, fallback, f"{path}.encounter", reason)
            if encounter is None:
                reason = "references an Encounter that is not in the Bundle: not mapped"
                return _Target(None, fallback, f"{path}.encounter", reason)
        elif len(self.encounters) == 1 and self.encounters[0] in self.drafts:
            encounter = self.encounters[0]
        else:
            reason = "references no Encounter and the Bundle has several: not mapped (its record is unknown)"
            return _Target(None, fallback, path, reason)
        draft = self.drafts[encounter]
        if patient is not None and draft.patient_entry is not None and patient != draft.patient_entry:
            reason = "whose subject is not the Patient of its Encounter: not mapped"
            return _Target(None, lambda: [draft], f"{path}.subject", reason)
        return _Target(draft)

    def _note_targets(self, resource: Resource) -> list[_Draft]:
        """The records a note about an unused resource goes to: its Encounter's, else its patient's."""
        for name in ("encounter", "context"):
            reference = getattr(resource, name, None)
            encounter = self.resolve(reference, "Encounter") if hasattr(reference, "reference") else None
            if encounter in self.drafts:
                return [self.drafts[encounter]]
        for name in ("subject", "patient"):
            reference = getattr(resource, name, None)
            if hasattr(reference, "reference"):
                return self._records_of(self.resolve(reference, "Patient"))
        return list(self.drafts.values())

    @staticmethod
    def _note(drafts: Sequence[_Draft], path: str, reason: str) -> None:
        for draft in drafts:
            draft.notes.append(MappingNote(path=path, reason=reason))

    # -- Encounter and Patient --

    def _encounter(self, position: int, encounter: Encounter) -> None:
        path = _entry_path(position)
        status = encounter.status or ""
        if status in _NOT_HAPPENED:
            self.skipped[position] = status
            return
        notes: list[MappingNote] = []
        record: dict[str, Any] = {}
        # Not Encounter.identifier: a visit or account number is an identifier of the patient's (HIPAA).
        record_id = encounter.id or self.full_urls.get(position, "").removeprefix("urn:uuid:") or None
        if record_id:
            record["record_id"] = record_id
        else:
            reason = "the Encounter has neither id nor a urn:uuid fullUrl: no record_id (its identifiers are not used)"
            notes.append(MappingNote(path=path, reason=reason))
        record["source"] = self.source
        day = _full_date(encounter.period.start if encounter.period else None)
        if day is None:
            reason = "no start date (a full date) for the Encounter: no encounter_date"
            notes.append(MappingNote(path=f"{path}.period.start", reason=reason))
        patient_entry = self.resolve(encounter.subject, "Patient")
        origin = f"Encounter/{encounter.id}" if encounter.id else self.full_urls.get(position, path)
        draft = _Draft(position, origin, patient_entry, record, notes)
        if encounter.subject is not None and encounter.subject.reference:
            draft.subject = {"reference": encounter.subject.reference}
        elif encounter.subject is not None and encounter.subject.identifier is not None:
            # a logical reference: answered in the same terms (to its sender only; never stored)
            draft.subject = {"identifier": encounter.subject.identifier.model_dump(mode="json", exclude_none=True)}
        if patient_entry is None:
            reason = "the Encounter's subject is missing or is not a Patient of the Bundle: no patient_id"
            notes.append(MappingNote(path=f"{path}.subject", reason=reason))
        else:
            self._patient(draft, patient_entry)
        if day is not None:
            record["encounter_date"] = day.isoformat()
        record.update(phenotypes=[], history=[], labs=[], vitals=[])
        self.drafts[position] = draft

    def _patient(self, draft: _Draft, position: int) -> None:
        patient = cast("Patient", self.resources[position])
        path = _entry_path(position)
        record, notes = draft.record, draft.notes
        patient_id = _patient_identifier(patient)
        if patient_id:
            record["patient_id"] = patient_id
        else:
            notes.append(MappingNote(path=path, reason="the Patient has neither identifier nor id: no patient_id"))
        if patient.gender in _SEXES:
            record["sex"] = patient.gender
        else:
            record["sex"] = "unknown"
            state = "missing" if patient.gender is None else "not male, female, other or unknown"
            notes.append(MappingNote(path=f"{path}.gender", reason=f"Patient.gender is {state}: sex is unknown"))
        birth_year = _year(patient.birthDate)
        if birth_year is not None:
            record["birth_year"] = birth_year
            reason = "only the year of birth is taken (a date of birth is a direct identifier)"
            notes.append(MappingNote(path=f"{path}.birthDate", reason=reason))
        draft.birth_date = _full_date(patient.birthDate)
        present = [f"Patient.{name}" for name in _DIRECT_IDENTIFIERS if getattr(patient, name, None)]
        if len(patient.identifier or []) > 1:
            present.append("Patient.identifier (other than the one taken as patient_id)")
        if present:
            reason = f"{', '.join(present)}: direct identifiers, not taken"
            notes.append(MappingNote(path=path, reason=reason))

    # -- the other entries --

    def _entry(self, position: int, resource: Resource | None) -> None:
        path = _entry_path(position)
        kind = _type(resource)
        if resource is None and position in self.unused:
            reason = f"{self.unused[position]} is not used by dxops"
            self._note(list(self.drafts.values()), path, reason)
        elif resource is None:
            self._note(list(self.drafts.values()), f"entry[{position}]", "an entry without a resource")
        elif kind == "Condition":
            self._condition(position, cast("Condition", resource))
        elif kind == "Observation":
            self._observation(position, cast("Observation", resource))
        elif kind == "Encounter" and position in self.skipped:
            status = self.skipped[position]
            reason = f"the Encounter is {status}: no record"
            self._note(self._records_of(self.resolve(cast("Encounter", resource).subject, "Patient")), path, reason)
        elif kind == "Patient" and not any(d.patient_entry == position for d in self.drafts.values()):
            self._note(list(self.drafts.values()), path, "a Patient that is the subject of no Encounter: not used")
        elif kind not in ("Patient", "Encounter"):
            self._note(self._note_targets(resource), path, f"{kind} is not used by dxops")

    def _condition(self, position: int, condition: Condition) -> None:
        path = _entry_path(position)
        target = self._target(position, condition)
        if target.draft is None:
            target.report("Condition")
            return
        draft = target.draft
        status = _verification(condition.verificationStatus)
        if status == "entered-in-error":
            draft.notes.append(MappingNote(path=f"{path}.verificationStatus", reason="entered-in-error: not taken"))
            return
        picked = _pick(condition.code, ("hpo", "disease"), f"{path}.code", "Condition")
        if isinstance(picked, str):
            draft.notes.append(MappingNote(path=f"{path}.code", reason=picked))
            return
        kind, code, coding_path = picked
        if kind == "hpo":
            _condition_phenotype(draft, condition, code, path=path, coding_path=coding_path, status=status)
        else:
            _condition_disease(draft, condition, code, path=path, coding_path=coding_path, status=status)

    def _observation(self, position: int, observation: Observation) -> None:
        path = _entry_path(position)
        target = self._target(position, observation)
        if target.draft is None:
            target.report("Observation")
            return
        draft = target.draft
        if observation.status in _NOT_HAPPENED:
            reason = f"Observation {observation.status}: not taken"
            draft.notes.append(MappingNote(path=f"{path}.status", reason=reason))
            return
        picked = _pick(observation.code, ("loinc", "hpo"), f"{path}.code", "Observation")
        if isinstance(picked, str):
            draft.notes.append(MappingNote(path=f"{path}.code", reason=picked))
            return
        kind, code, coding_path = picked
        if kind == "loinc" and not re.fullmatch(LOINC_REGEX, code):
            # Checked before any reason names the code: a malformed code may hold anything.
            draft.notes.append(MappingNote(path=coding_path, reason="not a LOINC code (nnnnn-n): not taken"))
            return
        if kind == "hpo":
            _observation_phenotype(draft, observation, code, coding_path, path)
        elif code == BP_PANEL:
            _blood_pressure(draft, observation, path)
        else:
            _measurement(draft, observation, code, coding_path, path)
        if observation.component and code != BP_PANEL:
            draft.notes.append(MappingNote(path=f"{path}.component", reason="components are not used (BP panel only)"))

    @staticmethod
    def _finish(draft: _Draft) -> None:
        """The diagnosis (the first confirmed one, else the first); the others go to history or are noted."""
        if draft.diagnoses:
            chosen = next((d for d in draft.diagnoses if d[0]["status"] == "confirmed"), draft.diagnoses[0])
            draft.record["diagnosis"] = chosen[0]
            for diagnosis, path in draft.diagnoses:
                if (diagnosis, path) == chosen:
                    continue
                if diagnosis["status"] == "confirmed":
                    reason = "another confirmed encounter-diagnosis: taken as history (the record has one diagnosis)"
                    draft.record["history"].append(diagnosis["code"])
                else:
                    reason = "another encounter-diagnosis, suspected: not taken (the record has one diagnosis)"
                draft.notes.append(MappingNote(path=path, reason=reason))
        draft.record["history"] = list(dict.fromkeys(draft.record["history"]))
        for name in ("phenotypes", "history", "labs", "vitals"):
            if not draft.record[name]:
                del draft.record[name]  # as the Phenopacket mapping: no empty lists


def _strip_history(reference: str) -> str:
    return reference.split("/_history/", maxsplit=1)[0]


def _type(resource: Resource | None) -> str | None:
    return resource.get_resource_type() if resource is not None else None


def _verification(concept: CodeableConcept | None) -> str | None:
    known = ("entered-in-error", "refuted", "confirmed", "provisional", "differential", "unconfirmed")
    codes = _codes(concept, CONDITION_VERIFICATION)
    return next((code for code in known if code in codes), None)


def _condition_phenotype(
    draft: _Draft, condition: Condition, code: str, *, path: str, coding_path: str, status: str | None
) -> None:
    if status not in (None, "confirmed", "refuted"):
        reason = f"verificationStatus {status}: a phenotype that is not confirmed is not taken"
        draft.notes.append(MappingNote(path=f"{path}.verificationStatus", reason=reason))
        return
    data: dict[str, Any] = {"hpo_id": code, "status": "excluded" if status == "refuted" else "observed"}
    onset = _onset(condition, draft.birth_date, path, draft.notes)
    if onset is not None:
        data["onset_age_years"] = onset
    paths = {"": path, "hpo_id": coding_path, "onset_age_years": f"{path}.onset[x]"}
    phenotype = _validated(Phenotype, data, paths, draft.notes)
    if phenotype is not None:
        draft.record["phenotypes"].append(phenotype)


def _condition_disease(
    draft: _Draft, condition: Condition, code: str, *, path: str, coding_path: str, status: str | None
) -> None:
    """An ICD-10/ORPHA/OMIM Condition: the diagnosis (encounter-diagnosis) or history."""
    paths = {"": path, "code": coding_path, "status": f"{path}.verificationStatus"}
    is_diagnosis = "encounter-diagnosis" in _codes(condition.category, CONDITION_CATEGORY)
    if status == "refuted":
        what = "diagnosis" if is_diagnosis else "condition"
        draft.notes.append(MappingNote(path=f"{path}.verificationStatus", reason=f"a refuted {what}: not taken"))
    elif is_diagnosis:
        if status is None:
            reason = "an encounter-diagnosis without verificationStatus: taken as suspected"
            draft.notes.append(MappingNote(path=path, reason=reason))
        data = {"code": code, "status": "confirmed" if status == "confirmed" else "suspected"}
        diagnosis = _validated(Diagnosis, data, paths, draft.notes)
        if diagnosis is not None:
            draft.diagnoses.append((diagnosis, path))
    elif status in (None, "confirmed"):
        checked = _validated(Diagnosis, {"code": code}, paths, draft.notes)
        if checked is not None:
            draft.record["history"].append(checked["code"])
    else:
        reason = f"verificationStatus {status}: history holds established conditions only, not taken"
        draft.notes.append(MappingNote(path=f"{path}.verificationStatus", reason=reason))


def _onset(condition: Condition, birth_date: dt.date | None, path: str, notes: list[MappingNote]) -> float | None:
    """Age at onset in years, from onsetAge or from onsetDateTime and the date of birth."""
    if condition.onsetAge is not None:
        age = condition.onsetAge
        unit = age.code if age.system in (UCUM_SYSTEM, None) and age.code else age.unit
        if age.value is not None and unit in _AGE_UNITS:
            return round(float(age.value) * _AGE_UNITS[unit], 2)
        notes.append(MappingNote(path=f"{path}.onsetAge", reason="onsetAge needs a value in a, mo, wk or d: not taken"))
        return None
    if condition.onsetDateTime is not None:
        onset = _full_date(condition.onsetDateTime)
        if onset is None or birth_date is None:
            reason = "onsetDateTime needs a full date and the Patient's full birthDate: onset not taken"
            notes.append(MappingNote(path=f"{path}.onsetDateTime", reason=reason))
            return None
        if onset < birth_date:
            notes.append(MappingNote(path=f"{path}.onsetDateTime", reason="onset before birth: not taken"))
            return None
        return round((onset - birth_date).days / 365.25, 2)
    other = [name for name in ("onsetPeriod", "onsetRange", "onsetString") if getattr(condition, name) is not None]
    if other:
        notes.append(MappingNote(path=f"{path}.{other[0]}", reason=f"{other[0]} is not used: onset not taken"))
    return None


def _observation_phenotype(draft: _Draft, observation: Observation, code: str, coding_path: str, path: str) -> None:
    negative = "NEG" in _codes(observation.interpretation, OBSERVATION_INTERPRETATION)
    excluded = observation.valueBoolean is False or negative
    data = {"hpo_id": code, "status": "excluded" if excluded else "observed"}
    phenotype = _validated(Phenotype, data, {"": path, "hpo_id": coding_path}, draft.notes)
    if phenotype is not None:
        draft.record["phenotypes"].append(phenotype)


def _blood_pressure(draft: _Draft, observation: Observation, path: str) -> None:
    if not observation.component:
        draft.notes.append(MappingNote(path=path, reason="a blood pressure panel without components"))
    for index, component in enumerate(observation.component or []):
        component_path = f"{path}.component[{index}]"
        loinc = next(
            (c.code for c in component.code.coding or [] if c.system == LOINC_SYSTEM and c.code in BP_COMPONENTS), None
        )
        if loinc is None:
            reason = "a component other than systolic (8480-6) or diastolic (8462-4) pressure: not used"
            draft.notes.append(MappingNote(path=f"{component_path}.code", reason=reason))
            continue
        _vital(draft, component, BP_COMPONENTS[loinc], component_path)


def _vital(draft: _Draft, element: Observation | ObservationComponent, name: str, path: str) -> None:
    quantity = _quantity(element, path)
    if isinstance(quantity, str):
        draft.notes.append(MappingNote(path=path, reason=quantity))
        return
    value, unit = quantity
    data = {"name": name, "value": value, "unit": unit}
    paths = {"": f"{path}.valueQuantity", "value": f"{path}.valueQuantity", "unit": f"{path}.valueQuantity"}
    vital = _validated(Measurement, data, paths, draft.notes)
    if vital is not None:
        draft.record["vitals"].append(vital)


def _measurement(draft: _Draft, observation: Observation, loinc: str, coding_path: str, path: str) -> None:
    """A LOINC Observation: a vital sign (vital-signs category, or a dxops measurement not in the
    laboratory category) or a lab."""
    categories = _codes(observation.category, OBSERVATION_CATEGORY)
    name = MEASUREMENT_BY_LOINC.get(loinc)
    if "vital-signs" in categories or ("laboratory" not in categories and name is not None):
        if name is None:
            reason = f"LOINC {loinc} is not a vital sign dxops reads (heart rate, SpO2, temperature, BP...)"
            draft.notes.append(MappingNote(path=coding_path, reason=reason))
        else:
            _vital(draft, observation, name, path)
        return
    quantity = _quantity(observation, path)
    if isinstance(quantity, str):
        draft.notes.append(MappingNote(path=path, reason=quantity))
        return
    value, unit = quantity
    data: dict[str, Any] = {"loinc": loinc, "value": value, "unit": unit}
    ranges = observation.referenceRange or []
    if ranges:
        for bound, quantity_bound in (("reference_low", ranges[0].low), ("reference_high", ranges[0].high)):
            if quantity_bound is not None and quantity_bound.value is not None:
                data[bound] = float(quantity_bound.value)
        if len(ranges) > 1:
            draft.notes.append(
                MappingNote(path=f"{path}.referenceRange", reason="only the first referenceRange is taken")
            )
    paths = {
        "": f"{path}.referenceRange[0]",  # the only check on the whole lab: its range's order
        "loinc": coding_path,
        "value": f"{path}.valueQuantity",
        "unit": f"{path}.valueQuantity",
        "reference_low": f"{path}.referenceRange[0]",
        "reference_high": f"{path}.referenceRange[0]",
    }
    lab = _validated(LabResult, data, paths, draft.notes)
    if lab is not None:
        draft.record["labs"].append(lab)


# --- predictions -> RiskAssessment -------------------------------------------------------------

PREDICTION_SYSTEM = "urn:dxops:prediction"
MODEL_VERSION_SYSTEM = "urn:dxops:model-version"
REQUEST_SYSTEM = "urn:dxops:request"
# Extension on RiskAssessment.prediction: valueCode "ranked" (the model's top_k) or "rare-candidate".
PREDICTION_KIND_URL = "urn:dxops:fhir:extension:prediction-kind"
_REFERENCE_KEYS = frozenset({"reference", "type", "identifier"})
_FULL_URL_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, PREDICTION_SYSTEM)


def outcome_concept(code: str, name: str | None = None) -> dict[str, Any]:
    """A dxops disease code (ORPHA:558) as a FHIR CodeableConcept in its system (the CODE_SYSTEMS table)."""
    prefix, _, value = code.partition(":")
    if prefix not in CODE_SYSTEMS or not value:
        raise ValueError(f"not a dxops disease code: expected one of {sorted(CODE_SYSTEMS)} and a code")
    coding = {"system": CODE_SYSTEMS[prefix][0], "code": value}
    if name:
        coding["display"] = name  # the disease's name (no patient data)
    return {"coding": [coding]}


def _reference(reference: Mapping[str, Any], what: str) -> dict[str, Any]:
    """A Reference passed through; display (free text) and other keys are refused."""
    extra = set(reference) - _REFERENCE_KEYS
    if extra or not (reference.get("reference") or reference.get("identifier")):
        raise ValueError(f"{what} must be a Reference with reference, type or identifier only (no display)")
    return dict(reference)


def _predicted(diagnosis: PredictedDiagnosis, kind: str) -> dict[str, Any]:
    return {
        "extension": [{"url": PREDICTION_KIND_URL, "valueCode": kind}],
        "outcome": outcome_concept(diagnosis.code, diagnosis.name),
        "probabilityDecimal": diagnosis.probability,
    }


def _risk_assessment_model(
    prediction: Prediction,
    *,
    subject: Mapping[str, Any],
    model_version: str,
    occurrence: dt.datetime,
    basis: Sequence[Mapping[str, Any]] = (),
    encounter: Mapping[str, Any] | None = None,
) -> RiskAssessment:
    # Imported on first use: the ingestion's cold start does not need it.
    from fhir.resources.R4B.riskassessment import RiskAssessment  # noqa: PLC0415

    if occurrence.tzinfo is None:
        raise ValueError("occurrence must be timezone-aware")
    data: dict[str, Any] = {
        "resourceType": "RiskAssessment",
        "identifier": [{"system": PREDICTION_SYSTEM, "value": prediction.prediction_id}],
        "status": "final",
        "method": {"coding": [{"system": MODEL_VERSION_SYSTEM, "code": model_version}]},
        "subject": _reference(subject, "subject"),
        "occurrenceDateTime": occurrence,
    }
    if encounter:
        data["encounter"] = _reference(encounter, "encounter")
    if basis:
        data["basis"] = [_reference(item, "basis") for item in basis]
    predictions = [_predicted(d, "ranked") for d in prediction.diagnoses]
    predictions += [_predicted(d, "rare-candidate") for d in prediction.rare_candidates]
    if predictions:
        data["prediction"] = predictions
    return RiskAssessment.model_validate(data)


def risk_assessment(
    prediction: Prediction,
    *,
    subject: Mapping[str, Any],
    model_version: str,
    occurrence: dt.datetime,
    basis: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """One prediction as a FHIR R4 RiskAssessment (JSON dict).

    subject is the EHR's own reference to the patient ({"reference": "Patient/123"}), passed through;
    model_version is PredictResponse.model_version; basis, references to the record's source resources.
    """
    model = _risk_assessment_model(
        prediction, subject=subject, model_version=model_version, occurrence=occurrence, basis=basis
    )
    return model.model_dump(mode="json", exclude_none=True)


def risk_assessment_bundle(
    response: PredictResponse,
    subjects: Mapping[str, Mapping[str, Any]],
    *,
    occurrence: dt.datetime,
    basis: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    encounters: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A POST /predict response as a FHIR R4 Bundle (collection) of RiskAssessments (JSON dict).

    subjects, basis and encounters are keyed by record_id (the client's ids of the records it sent).
    """
    entries = []
    for prediction in response.predictions:
        subject = subjects.get(prediction.record_id)
        if subject is None:
            raise ValueError(f"no subject given for prediction {prediction.prediction_id}")
        resource = _risk_assessment_model(
            prediction,
            subject=subject,
            model_version=response.model_version,
            occurrence=occurrence,
            basis=(basis or {}).get(prediction.record_id, ()),
            encounter=(encounters or {}).get(prediction.record_id),
        )
        full_url = f"urn:uuid:{uuid.uuid5(_FULL_URL_NAMESPACE, prediction.prediction_id)}"
        entries.append({"fullUrl": full_url, "resource": resource})
    bundle = Bundle.model_validate(
        {
            "resourceType": "Bundle",
            "identifier": {"system": REQUEST_SYSTEM, "value": response.request_id},
            "type": "collection",
            "timestamp": occurrence,
            "entry": entries or None,
        }
    )
    return bundle.model_dump(mode="json", exclude_none=True)
