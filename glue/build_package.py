"""Builds the zip that the Glue job ships as --extra-py-files: dxops_etl, the ruleset and the
parts of the shared layer it imports (dxops.vocab: measurement table, HPO index).

Usage: python glue/build_package.py OUT.zip
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

GLUE = Path(__file__).resolve().parent
LAYER = GLUE.parent / "layers" / "shared"
VOCAB_FILES = ("__init__.py", "codes.py", "hpo.py", "hpo_index.json.gz", "measurements.py", "units.py")


def build_package(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted((GLUE / "dxops_etl").glob("*.py")):
            archive.write(path, f"dxops_etl/{path.name}")
        for path in sorted((GLUE / "rulesets").glob("*.json")):
            archive.write(path, f"dxops_etl/rulesets/{path.name}")
        archive.write(LAYER / "dxops" / "__init__.py", "dxops/__init__.py")
        for name in VOCAB_FILES:
            archive.write(LAYER / "dxops" / "vocab" / name, f"dxops/vocab/{name}")
    return out


if __name__ == "__main__":
    print(build_package(Path(sys.argv[1])))
