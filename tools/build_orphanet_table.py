"""Derive the compact Orphanet epidemiology table the cohort simulator uses.

The Orphadata XML files (CC-BY-4.0, 21 MB) stay outside the repository (see
/work/shared/notes/data.md); only this small derived table is committed, with the
attribution the licence requires. One row per ORPHA code: the prevalence class that best
describes the disorder, its ages of onset and its inheritance modes.
tests/unit/cohorts/test_catalog.py checks the committed table against the XML when present.

Usage: python tools/build_orphanet_table.py [--source DIR] [--out PATH]
"""

from __future__ import annotations

import argparse
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIR = Path("/work/shared/data/orphanet")
TABLE_PATH = ROOT / "cohorts" / "data" / "orphanet_epidemiology.tsv"
PREVALENCE_XML = "orphadata_prod9_epidemiological_prevalence.xml"
AGES_XML = "orphadata_prod9_epidemiological_ages.xml"
ATTRIBUTION = "Orphanet, www.orpha.net, CC-BY-4.0 (Orphadata 2021-03-01)"
COLUMNS = ("orpha_code", "prevalence_class", "onset", "inheritance")

# Orphanet prevalence classes, rarest first. "Unknown" and "Not yet documented" are no class.
PREVALENCE_CLASSES = (
    "<1 / 1 000 000",
    "1-9 / 1 000 000",
    "1-9 / 100 000",
    "1-5 / 10 000",
    "6-9 / 10 000",
    ">1 / 1000",
)
# Which estimate describes a disorder best: a point prevalence says how many patients a clinic
# sees; birth prevalence and incidence are next best. "Cases/families" carries no class.
TYPE_PREFERENCE = ("Point prevalence", "Prevalence at birth", "Lifetime Prevalence", "Annual incidence")


def _name(element: ET.Element | None) -> str:
    if element is None:
        return ""
    name = element.find("Name")
    return (name.text or "").strip() if name is not None else ""


def _rank(prevalence: ET.Element) -> tuple[int, int, int] | None:
    """Sort key of one estimate (lower is better), None if it has no usable class."""
    klass = _name(prevalence.find("PrevalenceClass"))
    kind = _name(prevalence.find("PrevalenceType"))
    if klass not in PREVALENCE_CLASSES or kind not in TYPE_PREFERENCE:
        return None
    worldwide = _name(prevalence.find("PrevalenceGeographic")) == "Worldwide"
    validated = _name(prevalence.find("PrevalenceValidationStatus")) == "Validated"
    return (TYPE_PREFERENCE.index(kind), 0 if worldwide else 1, 0 if validated else 1)


def prevalence_classes(path: Path) -> dict[int, str]:
    """ORPHA code -> best prevalence class; "Unknown" when no estimate has a class."""
    table: dict[int, str] = {}
    for disorder in ET.parse(path).getroot().iter("Disorder"):  # noqa: S314 - trusted local file
        code = int(disorder.findtext("OrphaCode", "0"))
        ranked = [
            (rank, _name(p.find("PrevalenceClass")))
            for p in disorder.iter("Prevalence")
            if (rank := _rank(p)) is not None
        ]
        table[code] = min(ranked)[1] if ranked else "Unknown"
    return table


def onsets_and_inheritance(path: Path) -> dict[int, tuple[list[str], list[str]]]:
    """ORPHA code -> (ages of onset, inheritance modes), each sorted and without "No data"."""
    table: dict[int, tuple[list[str], list[str]]] = {}
    for disorder in ET.parse(path).getroot().iter("Disorder"):  # noqa: S314 - trusted local file
        code = int(disorder.findtext("OrphaCode", "0"))
        onsets = sorted({_name(o) for o in disorder.iter("AverageAgeOfOnset")} - {"", "No data available"})
        modes = sorted({_name(m) for m in disorder.iter("TypeOfInheritance")} - {"", "No data available"})
        table[code] = (onsets, modes)
    return table


def build_table(source: Path = SOURCE_DIR) -> list[tuple[str, str, str, str]]:
    """Rows of the table, sorted by ORPHA code; lists are joined with "|"."""
    prevalence = prevalence_classes(source / PREVALENCE_XML)
    ages = onsets_and_inheritance(source / AGES_XML)
    rows = []
    for code in sorted(set(prevalence) | set(ages)):
        onsets, modes = ages.get(code, ([], []))
        rows.append((str(code), prevalence.get(code, "Unknown"), "|".join(onsets), "|".join(modes)))
    return rows


def render(rows: list[tuple[str, str, str, str]]) -> str:
    lines = [
        f"# {ATTRIBUTION}",
        "# Derived by tools/build_orphanet_table.py from the Orphadata epidemiology files "
        f"({PREVALENCE_XML}, {AGES_XML}); licence: https://creativecommons.org/licenses/by/4.0/",
        "\t".join(COLUMNS),
    ]
    lines.extend("\t".join(row) for row in rows)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE_DIR, help="directory of the Orphadata XML files")
    parser.add_argument("--out", type=Path, default=TABLE_PATH)
    args = parser.parse_args()
    rows = build_table(args.source)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(rows), encoding="utf-8")
    print(f"wrote {args.out} ({len(rows)} disorders)")


if __name__ == "__main__":
    main()
