"""GA4GH Phenopacket v2 documents mapped to ClinicalRecord (docs/interop-phenopackets.md).

A document is first read against the Phenopacket v2 protobuf schema, strictly (unknown fields,
values of the wrong type, several members of a oneof are errors), then mapped from its canonical
JSON form (protobuf's MessageToDict: camelCase names, enum names, defaults omitted). Paths in
notes and errors are camelCase JSON paths (``phenotypicFeatures[2].type``).

=========================================================  ==============================================
Phenopacket v2                                             ClinicalRecord
=========================================================  ==============================================
id                                                         record_id (required)
subject.id                                                 patient_id (required; pseudonymised on ingestion)
(the ``source`` argument: the site)                        source
subject.timeAtLastEncounter.timestamp, else                encounter_date (date, UTC; neither: rejected)
metaData.created
subject.timeAtLastEncounter.age.iso8601duration            age_years (whole years; 2 decimals under 2)
year of subject.dateOfBirth                                birth_year (the date itself is never kept)
subject.sex FEMALE / MALE / OTHER_SEX / UNKNOWN_SEX, none  sex female / male / other / unknown
phenotypicFeatures[i].type.id (HP:nnnnnnn), excluded       phenotypes[].hpo_id, status excluded / observed
phenotypicFeatures[i].onset                                phenotypes[].onset_age_years (see below)
interpretations[i] SOLVED: diagnosis.disease               diagnosis, confirmed (the first one wins)
diseases[i].term (first non-excluded mappable one)         diagnosis, confirmed (when no SOLVED interpretation)
interpretations[i] other status: diagnosis.disease         diagnosis, suspected (when nothing is confirmed)
other mappable diseases and SOLVED interpretations         history (with a note: a record holds one diagnosis)
measurements[i] LOINC assay, value.quantity                labs (loinc, value, unit, reference_low/high)
measurements[i] LOINC vital sign (vocab.measurements)      vitals (name, value, unit)
=========================================================  ==============================================

Diseases: OMIM:n, ORPHA:n (also Orphanet:n, ORPHANET:n, written ORPHA:n) and ICD10: codes map;
MONDO and other ontologies don't. Onset -> onset_age_years: an ``age`` is converted from its ISO
8601 duration (P45Y, P3Y6M, P10M, P2W, P5D; 1 Y = 12 M = 365.25 D, 1 W = 7 D); an ``ageRange``
gives its start; an HPO onset class gives the START of its range (ONSET_CLASS_START_YEARS, from
the HPO definitions); a ``timestamp`` gives the years since subject.dateOfBirth (a note without
one); a ``gestationalAge`` is prenatal, 0. Units are UCUM ("UCUM:mg/dL" -> "mg/dL").

Each phenotype, diagnosis, lab and vital is validated with its ClinicalRecord sub-model; what
fails becomes a MappingNote (path and the model's message, never a patient value) and is left
out. Parts of the schema dxops doesn't use are notes too, one per part: severity, modifiers,
evidence and resolution of a feature; description, summary (free text, never kept); disease
onset, stage, TNM findings, site, laterality; excluded diseases; genomic interpretations;
measurement time, procedure, coded and complex values; biosamples, medicalActions, files;
subject.alternateIds (direct identifiers), vitalStatus, karyotypicSex, gender, taxonomy; and
subject.dateOfBirth (only its year is kept). metaData is provenance: no note. The output holds
no None values and no empty lists; the whole record is validated by the ingestion afterwards.

A document that is not a Phenopacket v2, or lacks id, subject.id or any date, raises
DocumentRejected; its reasons name schema paths, never a value or an unknown key (either may be a
patient's name or date of birth).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from google.protobuf.descriptor import FieldDescriptor  # type: ignore[import-untyped, unused-ignore]
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError  # type: ignore[import-untyped, unused-ignore]
from google.protobuf.timestamp_pb2 import Timestamp  # type: ignore[import-untyped, unused-ignore]
from phenopackets import Phenopacket  # type: ignore[import-untyped, unused-ignore]
from pydantic import BaseModel, ValidationError

from dxops.domain.quarantine import FieldError, safe_item_id
from dxops.interop import DocumentRejected, MappedRecord, MappingNote
from dxops.schemas.clinical import Diagnosis, LabResult, Phenotype
from dxops.schemas.common import Measurement
from dxops.vocab.measurements import MEASUREMENT_BY_LOINC

__all__ = ["ONSET_CLASS_START_YEARS", "map_phenopacket", "phenopackets_in"]

ROOT = "(root)"
DAYS_PER_YEAR = 365.25
AGE_DECIMALS = 4

# HPO onset classes (HP:0003674 "Onset" and its descendants) -> the START of the range their HPO
# definition gives, in years. Prenatal classes are 0: onset_age_years counts from birth.
ONSET_CLASS_START_YEARS: dict[str, float] = {
    "HP:0030674": 0.0,  # Antenatal onset: prior to birth
    "HP:0011460": 0.0,  # Embryonal onset: up to 8 weeks after fertilisation
    "HP:0011461": 0.0,  # Fetal onset: prior to birth, after 8 weeks of development
    "HP:0034199": 0.0,  # Late first trimester onset
    "HP:0034198": 0.0,  # Second trimester onset
    "HP:0034197": 0.0,  # Third trimester onset
    "HP:0003577": 0.0,  # Congenital onset: present at birth
    "HP:0003623": 0.0,  # Neonatal onset: within the first 28 days of life
    "HP:0410280": 28 / DAYS_PER_YEAR,  # Pediatric onset: before 16 years, excluding neonatal and congenital
    "HP:0003593": 28 / DAYS_PER_YEAR,  # Infantile onset: 28 days to one year
    "HP:0011463": 1.0,  # Childhood onset: 1 to 5 years
    "HP:0003621": 5.0,  # Juvenile onset: 5 to 15 years
    "HP:0003581": 16.0,  # Adult onset: 16 years or later
    "HP:0011462": 16.0,  # Young adult onset: 16 to 40 years
    "HP:0025708": 16.0,  # Early young adult onset: 16 to under 19 years
    "HP:0025709": 19.0,  # Intermediate young adult onset: 19 to under 25 years
    "HP:0025710": 25.0,  # Late young adult onset: 25 to under 40 years
    "HP:0003596": 40.0,  # Middle age onset: 40 to 60 years
    "HP:0003584": 60.0,  # Late onset: after 60 years
}

_SEX = {"FEMALE": "female", "MALE": "male", "OTHER_SEX": "other", "UNKNOWN_SEX": "unknown"}
_DISEASE_SYSTEMS = {"OMIM": "OMIM", "ORPHA": "ORPHA", "Orphanet": "ORPHA", "ORPHANET": "ORPHA", "ICD10": "ICD10"}
# Prefixes a note may name (a fixed list: an id's prefix is document text, which may hold anything).
_KNOWN_PREFIXES = frozenset(
    {"MONDO", "DOID", "NCIT", "ICD10CM", "ICD11", "ICD9", "SNOMEDCT", "SNOMED", "UMLS", "MESH", "EFO", "HP", "UO"}
)
_SOLVED = "SOLVED"
_UNSOLVED = "UNSOLVED"

_NUMBER = r"([0-9]+(?:[.,][0-9]+)?)"
_DURATION = re.compile(
    rf"P(?!$)(?:{_NUMBER}Y)?(?:{_NUMBER}M)?(?:{_NUMBER}W)?(?:{_NUMBER}D)?"
    rf"(?:T(?=[0-9])(?:{_NUMBER}H)?(?:{_NUMBER}M)?(?:{_NUMBER}S)?)?"
)
_DURATION_YEARS = (1.0, 1 / 12, 7 / DAYS_PER_YEAR, 1 / DAYS_PER_YEAR, 1 / 8766, 1 / 525_960, 1 / 31_557_600)

_FREE_TEXT = "free text: never kept"


# --------------------------------------------------------------------------------------------
# Reading: the document against the Phenopacket v2 schema, with reasons that hold no values.
# --------------------------------------------------------------------------------------------

_TIMESTAMP = "google.protobuf.Timestamp"
_INT_RANGES = {
    FieldDescriptor.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1),
}
_INTEGER_TEXT = re.compile(r"-?[0-9]+")


def _error(path: str, message: str, kind: str) -> FieldError:
    return FieldError(path=path, message=message, type=kind)


def _join(path: str, name: str) -> str:
    return name if path == ROOT else f"{path}.{name}"


@cache
def _fields(descriptor: Any) -> dict[str, Any]:
    """A message's fields by JSON name and by proto name (the JSON parser accepts both)."""
    fields: dict[str, Any] = {}
    for fd in descriptor.fields:
        fields[fd.json_name] = fd
        fields[fd.name] = fd
    return fields


def _is_timestamp(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        Timestamp().FromJsonString(value)
    except ValueError:
        return False
    return True


def _is_integer(value: Any, fd: Any) -> bool:
    if (isinstance(value, float) and value.is_integer()) or (isinstance(value, str) and _INTEGER_TEXT.fullmatch(value)):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        return False
    low, high = _INT_RANGES[fd.cpp_type]
    return low <= value <= high


def _is_number(value: Any) -> bool:
    if isinstance(value, str):  # the JSON mapping also accepts numbers as text ("12.5", "NaN")
        try:
            float(value)
        except ValueError:
            return False
        return True
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_enum(value: Any, fd: Any) -> bool:
    if isinstance(value, str):
        return value in fd.enum_type.values_by_name
    return isinstance(value, int) and not isinstance(value, bool) and value in fd.enum_type.values_by_number


_SCALAR_CHECKS: dict[int, tuple[Callable[[Any, Any], bool], str]] = {
    FieldDescriptor.CPPTYPE_STRING: (lambda v, _: isinstance(v, str), "wrong type: expected text"),
    FieldDescriptor.CPPTYPE_BOOL: (lambda v, _: isinstance(v, bool), "wrong type: expected true or false"),
    FieldDescriptor.CPPTYPE_DOUBLE: (lambda v, _: _is_number(v), "wrong type: expected a number"),
    FieldDescriptor.CPPTYPE_FLOAT: (lambda v, _: _is_number(v), "wrong type: expected a number"),
    FieldDescriptor.CPPTYPE_ENUM: (_is_enum, "not one of the values this schema defines for the field"),
    **{cpp: (_is_integer, "wrong type: expected an integer in the field's range") for cpp in _INT_RANGES},
}


def _value_errors(value: Any, fd: Any, path: str, errors: list[FieldError]) -> None:
    if fd.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
        _message_errors(value, fd.message_type, path, errors)
        return
    check, message = _SCALAR_CHECKS[fd.cpp_type]
    if not check(value, fd):
        errors.append(_error(path, message, "wrong_type"))


def _field_errors(value: Any, fd: Any, path: str, errors: list[FieldError]) -> None:
    if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        if not isinstance(value, dict):
            errors.append(_error(path, "wrong type: expected an object", "wrong_type"))
            return
        value_fd = fd.message_type.fields_by_name["value"]
        for item in value.values():  # map keys are document text: never in a path
            _value_errors(item, value_fd, path, errors)
    elif fd.is_repeated:
        if not isinstance(value, list):
            errors.append(_error(path, "wrong type: expected an array", "wrong_type"))
            return
        for index, item in enumerate(value):
            if item is None:
                errors.append(_error(f"{path}[{index}]", "null is not allowed in an array", "wrong_type"))
            else:
                _value_errors(item, fd, f"{path}[{index}]", errors)
    else:
        _value_errors(value, fd, path, errors)


def _message_errors(value: Any, descriptor: Any, path: str, errors: list[FieldError]) -> None:
    """Check a JSON value against a message type; every error names a schema path, never a value."""
    if descriptor.full_name == _TIMESTAMP:
        if not _is_timestamp(value):
            errors.append(
                _error(path, "wrong type: expected an RFC 3339 timestamp (2021-05-14T10:35:00Z)", "wrong_type")
            )
        return
    if not isinstance(value, dict):
        errors.append(_error(path, "wrong type: expected an object", "wrong_type"))
        return
    fields = _fields(descriptor)
    seen: set[str] = set()
    unknown = 0
    for key, item in value.items():
        fd = fields.get(key) if isinstance(key, str) else None
        if fd is None:
            unknown += 1
            continue
        field_path = _join(path, fd.json_name)
        if fd.name in seen:
            errors.append(_error(field_path, "given twice (under its JSON and its proto name)", "duplicate"))
        seen.add(fd.name)
        if item is not None:
            _field_errors(item, fd, field_path, errors)
    if unknown:
        what = "a field" if unknown == 1 else f"{unknown} fields"
        errors.append(
            _error(path, f"not a Phenopacket v2 document: {what} this schema does not define", "extra_forbidden")
        )
    _oneof_errors(value, descriptor, path, errors)


def _oneof_errors(value: dict[Any, Any], descriptor: Any, path: str, errors: list[FieldError]) -> None:
    for oneof in descriptor.oneofs:
        present = [fd for fd in oneof.fields if value.get(fd.json_name, value.get(fd.name)) is not None]
        if len(present) > 1:
            names = ", ".join(fd.json_name for fd in oneof.fields)
            errors.append(_error(path, f"more than one of {names} (only one is allowed)", "oneof"))


def _read(document: Any) -> dict[str, Any]:
    """The document as a Phenopacket v2, in canonical JSON form; raises DocumentRejected."""
    if not isinstance(document, dict):
        raise DocumentRejected([_error(ROOT, "not a Phenopacket v2 document: expected a JSON object", "wrong_type")])
    errors: list[FieldError] = []
    try:
        _message_errors(document, Phenopacket.DESCRIPTOR, ROOT, errors)
        if errors:
            raise DocumentRejected(errors)
        canonical: dict[str, Any] = MessageToDict(ParseDict(document, Phenopacket()))
    except (ParseError, TypeError, ValueError, AttributeError, RecursionError):
        # The schema walk above explains nearly everything; protobuf's own messages quote values.
        reason = _error(ROOT, "not a Phenopacket v2 document: a value this schema does not accept", "invalid")
        raise DocumentRejected([*errors, reason]) from None
    return canonical


# --------------------------------------------------------------------------------------------
# Mapping
# --------------------------------------------------------------------------------------------


@dataclass
class _Context:
    notes: list[MappingNote] = field(default_factory=list)
    date_of_birth: dt.date | None = None

    def note(self, path: str, reason: str) -> None:
        self.notes.append(MappingNote(path=path, reason=reason))

    def unused(self, item: Mapping[str, Any], path: str, parts: Mapping[str, str]) -> None:
        """One note per part of item that dxops doesn't use."""
        for name, reason in parts.items():
            if name in item:
                self.note(f"{path}.{name}" if path else name, reason)


def _timestamp(value: str) -> dt.datetime:
    stamp = Timestamp()
    stamp.FromJsonString(value)
    moment: dt.datetime = stamp.ToDatetime(tzinfo=dt.UTC)
    return moment


def _years(duration: Any) -> float | None:
    """An ISO 8601 duration (P45Y, P3Y6M, P10M, P2W, P5D) in years, or None if it is not one."""
    match = _DURATION.fullmatch(duration) if isinstance(duration, str) else None
    if match is None:
        return None
    total = sum(
        float(part.replace(",", ".")) * unit for part, unit in zip(match.groups(), _DURATION_YEARS, strict=True) if part
    )
    return round(total, AGE_DECIMALS)


def _coarse_age(years: float) -> float:
    """The age at the encounter in whole years from 2 on (to 2 decimals, about 4 days, below: an
    infant's age in days is clinical information): with the encounter date, a finer age would give
    the date of birth away, which is a direct identifier."""
    return float(int(years)) if years >= 2 else round(years, 2)


def _kind_of(term_id: str) -> str:
    """'the MONDO id' for well-known prefixes, else 'the id' (an id is document text: never quoted)."""
    prefix = term_id.partition(":")[0]
    return f"the {prefix} id" if prefix in _KNOWN_PREFIXES else "the id"


def _reasons(
    exc: ValidationError, paths: Mapping[str, str], numbers: tuple[Any, ...] = ()
) -> Iterator[tuple[str, str]]:
    """(document path suffix, message) for each error of a sub-model; numbers are erased from the messages."""
    for err in exc.errors(include_input=False, include_url=False):
        loc = err.get("loc", ())
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        for number in numbers:
            if isinstance(number, (int, float)) and not isinstance(number, bool):
                for text in {str(number), str(float(number))}:
                    message = re.sub(rf"(?<![\w.]){re.escape(text)}(?![\w.])", "(value)", message)
        yield paths.get(str(loc[0]) if loc else "", ""), message


def _validated(
    ctx: _Context,
    model: type[BaseModel],
    data: dict[str, Any],
    path: str,
    *,
    paths: Mapping[str, str],
    optional: tuple[str, ...] = (),
) -> dict[str, Any] | None:
    """data validated by model; if only its optional keys fail, validated without them. Notes say why."""
    numbers = tuple(v for v in data.values() if isinstance(v, (int, float)))
    try:
        return model.model_validate(data).model_dump(exclude_none=True)
    except ValidationError as exc:
        first = exc
    reduced = {k: v for k, v in data.items() if k not in optional}
    kept: dict[str, Any] | None = None
    if optional and reduced != data:
        try:
            kept = model.model_validate(reduced).model_dump(exclude_none=True)
        except ValidationError:
            kept = None
    for suffix, message in _reasons(first, paths, numbers):
        ctx.note(f"{path}{suffix}", f"not mapped: {message}")
    return kept


# --- subject ----------------------------------------------------------------------------------

_SUBJECT_UNUSED = {
    "alternateIds": "direct identifiers at the source: never kept",
    "vitalStatus": "not used by dxops",
    "karyotypicSex": "not used by dxops: a record holds sex only",
    "gender": "not used by dxops: a record holds sex only",
    "taxonomy": "not used by dxops: records are of human patients",
}


def _encounter_date(doc: Mapping[str, Any]) -> dt.date | None:
    last = doc.get("subject", {}).get("timeAtLastEncounter", {})
    if "timestamp" in last:
        return _timestamp(last["timestamp"]).date()
    created = doc.get("metaData", {}).get("created")
    return _timestamp(created).date() if created else None


def _required(doc: Mapping[str, Any]) -> tuple[str, str, dt.date]:
    errors: list[FieldError] = []
    if not doc.get("id"):
        errors.append(_error("id", "id is required: it becomes the record_id", "missing"))
    if not doc.get("subject", {}).get("id"):
        errors.append(_error("subject.id", "subject.id is required: dxops pseudonymises it", "missing"))
    encounter = _encounter_date(doc)
    if encounter is None:
        errors.append(
            _error(
                "subject.timeAtLastEncounter",
                "no encounter date: neither subject.timeAtLastEncounter.timestamp nor metaData.created is given",
                "missing",
            )
        )
    if errors or encounter is None:
        raise DocumentRejected(errors)
    return doc["id"], doc["subject"]["id"], encounter


def _subject(subject: Mapping[str, Any], ctx: _Context) -> dict[str, Any]:
    mapped: dict[str, Any] = {"sex": _SEX.get(subject.get("sex", "UNKNOWN_SEX"), "unknown")}
    last = subject.get("timeAtLastEncounter", {})
    if "age" in last:
        age = _years(last["age"].get("iso8601duration"))
        if age is None:
            ctx.note("subject.timeAtLastEncounter.age", "not mapped: not an ISO 8601 duration (P45Y, P3Y6M...)")
        else:
            mapped["age_years"] = _coarse_age(age)
    elif last and "timestamp" not in last:
        ctx.note(
            "subject.timeAtLastEncounter",
            "not mapped: only an age or a timestamp is kept (as age_years, encounter_date)",
        )
    if "dateOfBirth" in subject:
        ctx.date_of_birth = _timestamp(subject["dateOfBirth"]).date()
        mapped["birth_year"] = ctx.date_of_birth.year
        ctx.note("subject.dateOfBirth", "only its year is kept: a date of birth is a direct identifier")
    ctx.unused(subject, "subject", _SUBJECT_UNUSED)
    return mapped


# --- phenotypic features ----------------------------------------------------------------------

_FEATURE_UNUSED = {
    "severity": "not used by dxops",
    "modifiers": "not used by dxops",
    "resolution": "not used by dxops",
    "evidence": "not used by dxops",
    "description": _FREE_TEXT,
}
_PHENOTYPE_PATHS = {"hpo_id": ".type", "status": ".excluded", "onset_age_years": ".onset"}


def _onset_years(onset: Mapping[str, Any], ctx: _Context, path: str) -> float | None:
    if "age" in onset:
        years = _years(onset["age"].get("iso8601duration"))
    elif "ageRange" in onset:
        years = _years(onset["ageRange"].get("start", {}).get("iso8601duration"))
    elif "ontologyClass" in onset:
        years = ONSET_CLASS_START_YEARS.get(onset["ontologyClass"].get("id", ""))
        if years is None:
            ctx.note(path, "not mapped: not an HPO onset class with an age range")
            return None
        return round(years, AGE_DECIMALS)
    elif "timestamp" in onset:
        return _years_since_birth(onset["timestamp"], ctx, path)
    elif "gestationalAge" in onset:
        return 0.0  # before birth, like the antenatal onset classes
    else:
        ctx.note(path, "not mapped: an interval is not an age")
        return None
    if years is None:
        ctx.note(path, "not mapped: not an ISO 8601 duration (P45Y, P3Y6M...)")
    return years


def _years_since_birth(timestamp: str, ctx: _Context, path: str) -> float | None:
    if ctx.date_of_birth is None:
        ctx.note(path, "not mapped: a timestamp onset needs subject.dateOfBirth to become an age")
        return None
    days = (_timestamp(timestamp).date() - ctx.date_of_birth).days
    if days < 0:
        ctx.note(path, "not mapped: the onset timestamp is before subject.dateOfBirth")
        return None
    return round(days / DAYS_PER_YEAR, AGE_DECIMALS)


def _phenotypes(features: list[Mapping[str, Any]], ctx: _Context) -> list[dict[str, Any]]:
    phenotypes = []
    for index, feature in enumerate(features):
        path = f"phenotypicFeatures[{index}]"
        term_id = feature.get("type", {}).get("id", "")
        if not re.fullmatch(r"HP:[0-9]{7}", term_id):
            ctx.note(f"{path}.type", f"not mapped: {_kind_of(term_id)} is not an HPO term id (HP: and 7 digits)")
            continue
        data: dict[str, Any] = {"hpo_id": term_id, "status": "excluded" if feature.get("excluded") else "observed"}
        if "onset" in feature:
            onset = _onset_years(feature["onset"], ctx, f"{path}.onset")
            if onset is not None:
                data["onset_age_years"] = onset
        phenotype = _validated(ctx, Phenotype, data, path, paths=_PHENOTYPE_PATHS, optional=("onset_age_years",))
        if phenotype is not None:
            phenotypes.append(phenotype)
            ctx.unused(feature, path, _FEATURE_UNUSED)
    return phenotypes


# --- diseases and interpretations -------------------------------------------------------------

_DISEASE_UNUSED = {
    "onset": "not used by dxops: a record holds no disease onset",
    "resolution": "not used by dxops",
    "diseaseStage": "not used by dxops",
    "clinicalTnmFinding": "not used by dxops",
    "primarySite": "not used by dxops",
    "laterality": "not used by dxops",
}
_ONE_DIAGNOSIS = "a record holds one diagnosis: kept in history"


def _disease_code(term: Mapping[str, Any], ctx: _Context, path: str) -> str | None:
    term_id = term.get("id", "")
    system, _, local = term_id.partition(":")
    target = _DISEASE_SYSTEMS.get(system)
    if target is None:
        ctx.note(path, f"not mapped: {_kind_of(term_id)} is not an OMIM, ORPHA or ICD-10 code")
        return None
    diagnosis = _validated(ctx, Diagnosis, {"code": f"{target}:{local}"}, path, paths={})
    return None if diagnosis is None else str(diagnosis["code"])


def _listed_diseases(diseases: list[Mapping[str, Any]], ctx: _Context) -> list[tuple[str, str]]:
    codes = []
    for index, disease in enumerate(diseases):
        path = f"diseases[{index}]"
        if disease.get("excluded"):
            ctx.note(path, "not mapped: ClinicalRecord has no excluded diagnoses")
            continue
        code = _disease_code(disease.get("term", {}), ctx, f"{path}.term")
        if code is not None:
            codes.append((code, f"{path}.term"))
            ctx.unused(disease, path, _DISEASE_UNUSED)
    return codes


def _interpreted(
    interpretations: list[Mapping[str, Any]], ctx: _Context
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(solved, other) diagnoses of the interpretations, as (code, path)."""
    solved: list[tuple[str, str]] = []
    other: list[tuple[str, str]] = []
    for index, interpretation in enumerate(interpretations):
        path = f"interpretations[{index}]"
        ctx.unused(interpretation, path, {"summary": _FREE_TEXT})
        diagnosis = interpretation.get("diagnosis", {})
        ctx.unused(diagnosis, f"{path}.diagnosis", {"genomicInterpretations": "genomic data is not used by dxops"})
        if "disease" not in diagnosis:
            continue
        if interpretation.get("progressStatus") == _UNSOLVED:
            # the case is closed without a diagnosis: its disease was considered and not established
            ctx.note(f"{path}.diagnosis.disease", "not mapped: the interpretation is UNSOLVED")
            continue
        code = _disease_code(diagnosis["disease"], ctx, f"{path}.diagnosis.disease")
        if code is not None:
            target = solved if interpretation.get("progressStatus") == _SOLVED else other
            target.append((code, f"{path}.diagnosis.disease"))
    return solved, other


def _diagnoses(doc: Mapping[str, Any], ctx: _Context) -> tuple[dict[str, str] | None, list[str]]:
    solved, suspected = _interpreted(doc.get("interpretations", []), ctx)
    listed = _listed_diseases(doc.get("diseases", []), ctx)
    confirmed = solved + listed
    if confirmed:
        diagnosis = {"code": confirmed[0][0], "status": "confirmed"}
        rest, unused = confirmed[1:], suspected
    elif suspected:
        diagnosis = {"code": suspected[0][0], "status": "suspected"}
        rest, unused = [], suspected[1:]
    else:
        return None, []
    history: list[str] = []
    for code, path in rest:
        if code != diagnosis["code"] and code not in history:
            history.append(code)
            ctx.note(path, _ONE_DIAGNOSIS)
    for code, path in unused:
        if code != diagnosis["code"] and code not in history:
            ctx.note(path, "not mapped: a record holds one diagnosis, and a suspected one is not history")
    return diagnosis, history


# --- measurements -----------------------------------------------------------------------------

_MEASUREMENT_UNUSED = {
    "timeObserved": "not used by dxops: labs and vitals are of the record's encounter",
    "procedure": "not used by dxops",
    "description": _FREE_TEXT,
}
_QUANTITY = ".value.quantity"
_LAB_PATHS = {
    "loinc": ".assay",
    "value": f"{_QUANTITY}.value",
    "unit": f"{_QUANTITY}.unit",
    "reference_low": f"{_QUANTITY}.referenceRange",
    "reference_high": f"{_QUANTITY}.referenceRange",
    "": f"{_QUANTITY}.referenceRange",  # the range check of the whole model
}
_VITAL_PATHS = {"value": f"{_QUANTITY}.value", "unit": f"{_QUANTITY}.unit", "": _QUANTITY}


def _local_id(term: Mapping[str, Any], prefix: str) -> str | None:
    system, _, local = str(term.get("id", "")).partition(":")
    return local if system == prefix and local else None


def _quantity(measurement: Mapping[str, Any], ctx: _Context, path: str) -> tuple[str, Mapping[str, Any], str] | None:
    """(LOINC code, quantity, UCUM unit) of a measurement, or None with a note saying why not."""
    loinc = _local_id(measurement.get("assay", {}), "LOINC")
    if loinc is None:
        ctx.note(
            f"{path}.assay", f"not mapped: {_kind_of(measurement.get('assay', {}).get('id', ''))} is not a LOINC code"
        )
        return None
    if "complexValue" in measurement:
        ctx.note(f"{path}.complexValue", "not mapped: a complex value is not a lab or vital value")
        return None
    quantity = measurement.get("value", {}).get("quantity")
    if quantity is None:
        ctx.note(f"{path}.value", "not mapped: a coded value (ontologyClass) is not a number")
        return None
    unit = _local_id(quantity.get("unit", {}), "UCUM")
    if unit is None:
        ctx.note(f"{path}{_QUANTITY}.unit", "not mapped: not a UCUM unit (UCUM:mg/dL)")
        return None
    return loinc, quantity, unit


def _lab(loinc: str, quantity: Mapping[str, Any], unit: str, ctx: _Context, path: str) -> dict[str, Any] | None:
    data: dict[str, Any] = {"loinc": loinc, "value": quantity.get("value", 0.0), "unit": unit}
    reference = quantity.get("referenceRange")
    if reference is not None:
        if _local_id(reference.get("unit", {}), "UCUM") in (None, unit):
            # proto3 doubles have no presence: an absent low or high is 0.
            data["reference_low"] = reference.get("low", 0.0)
            data["reference_high"] = reference.get("high", 0.0)
        else:
            ctx.note(f"{path}{_QUANTITY}.referenceRange", "not mapped: its unit is not the value's unit")
    return _validated(ctx, LabResult, data, path, paths=_LAB_PATHS, optional=("reference_low", "reference_high"))


def _measurements(measurements: list[Mapping[str, Any]], ctx: _Context) -> tuple[list[Any], list[Any]]:
    labs: list[Any] = []
    vitals: list[Any] = []
    for index, measurement in enumerate(measurements):
        path = f"measurements[{index}]"
        found = _quantity(measurement, ctx, path)
        if found is None:
            continue
        loinc, quantity, unit = found
        name = MEASUREMENT_BY_LOINC.get(loinc)
        if name is None:
            mapped = _lab(loinc, quantity, unit, ctx, path)
            target = labs
        else:
            data = {"name": name, "value": quantity.get("value", 0.0), "unit": unit}
            mapped = _validated(ctx, Measurement, data, path, paths=_VITAL_PATHS)
            target = vitals
            if mapped is not None:
                ctx.unused(quantity, f"{path}{_QUANTITY}", {"referenceRange": "not used: vital signs have none"})
        if mapped is not None:
            target.append(mapped)
            ctx.unused(measurement, path, _MEASUREMENT_UNUSED)
    return labs, vitals


_DOCUMENT_UNUSED = {
    "biosamples": "not used by dxops",
    "medicalActions": "not used by dxops",
    "files": "not used by dxops",
}


def map_phenopacket(document: Any, *, source: str) -> MappedRecord:
    """One Phenopacket v2 document (parsed JSON) as a ClinicalRecord-shaped dict, not validated yet,
    with a note for every part not mapped. Raises DocumentRejected (see the module docstring)."""
    doc = _read(document)
    record_id, patient_id, encounter = _required(doc)
    ctx = _Context()
    record: dict[str, Any] = {
        "record_id": record_id,
        "patient_id": patient_id,
        "source": source,
        "encounter_date": encounter.isoformat(),
        **_subject(doc["subject"], ctx),
    }
    phenotypes = _phenotypes(doc.get("phenotypicFeatures", []), ctx)
    diagnosis, history = _diagnoses(doc, ctx)
    labs, vitals = _measurements(doc.get("measurements", []), ctx)
    ctx.unused(doc, "", _DOCUMENT_UNUSED)
    parts: dict[str, Any] = {
        "phenotypes": phenotypes,
        "history": history,
        "labs": labs,
        "vitals": vitals,
        "diagnosis": diagnosis,
    }
    record.update({key: value for key, value in parts.items() if value})
    return MappedRecord(record=record, notes=ctx.notes, origin=safe_item_id(record_id))


def phenopackets_in(document: Any) -> list[Any]:
    """The phenopacket documents of a body: one Phenopacket object, a GA4GH Cohort v2 (an object with
    ``members`` and no ``subject``: its members), a GA4GH Family v2 (``proband``: the proband and the
    relatives), or a JSON array of these. Members without metaData take their Cohort's or Family's
    (their provenance); the Cohort's or Family's own id, description, pedigree and files are not
    mapped. Anything else in an array is kept as an item (it is then rejected with its reason); []
    when the body is none of these: never raises."""
    if isinstance(document, list):
        items = []
        for item in document:
            members = _members(item)
            items.extend([item] if members is None else members)
        return items
    if not isinstance(document, dict):
        return []
    members = _members(document)
    return [document] if members is None else members


def _members(document: Any) -> list[Any] | None:
    """A Cohort's or Family's phenopackets ([] if malformed), or None if the document is neither."""
    if not isinstance(document, dict) or "subject" in document:
        return None
    if "members" in document:
        members = document["members"]
    elif "proband" in document:
        relatives = document.get("relatives", [])
        members = [document["proband"], *(relatives if isinstance(relatives, list) else [])]
    else:
        return None
    if not isinstance(members, list):
        return []
    shared = document.get("metaData")
    return [
        {**member, "metaData": shared} if isinstance(member, dict) and "metaData" not in member and shared else member
        for member in members
    ]
