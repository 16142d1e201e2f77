"""dxops-rank: rank diseases for phenotype-only cases.

    dxops-rank --cases CASES.jsonl --out RANKINGS.jsonl [--model MODEL_DIR] [--top 10]

Each input line: {"id": ..., "observed": [HPO ids], "excluded": [HPO ids]}. Each output line:
{"id": ..., "ranking": [{"disease_id": "ORPHA:..." | "OMIM:...", "name": ..., "score": ...}]},
the top diseases best first; `score` is the posterior probability under a uniform prior. Without
--model the knowledge model ranks alone (ml/knowledge.py). Obsolete HPO ids are mapped to their
current ones; ids the ontology does not know are left out and counted on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from dxops.vocab.hpo import canonical_hpo_id
from ml.knowledge import KnowledgeModel, default_model


class CaseError(ValueError):
    """A line of the cases file is not a case (its line number is in the message)."""


def read_cases(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                case = json.loads(line)
            except json.JSONDecodeError as error:
                raise CaseError(f"line {number}: not JSON ({error.msg})") from None
            if not isinstance(case, dict) or "id" not in case or not isinstance(case.get("observed", []), list):
                raise CaseError(f'line {number}: expected {{"id": ..., "observed": [...], "excluded": [...]}}')
            yield case


def known_terms(terms: Sequence[Any], unknown: list[str]) -> list[str]:
    known = []
    for term in terms:
        try:
            known.append(canonical_hpo_id(str(term)))
        except (ValueError, IndexError):
            unknown.append(str(term))
    return known


def rank_cases(
    model: KnowledgeModel, cases: Iterator[dict[str, Any]], top: int
) -> Iterator[tuple[dict[str, Any], int]]:
    """(output line, unknown terms) per case."""
    for case in cases:
        unknown: list[str] = []
        observed = known_terms(case.get("observed", []), unknown)
        excluded = known_terms(case.get("excluded", []), unknown)
        ranking = [
            {"disease_id": c.disease_id, "name": c.name, "score": round(c.probability, 6)}
            for c in model.rank(observed, excluded, top_k=top)
        ]
        yield {"id": case["id"], "ranking": ranking}, len(unknown)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dxops-rank", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cases", type=Path, required=True, help="JSON lines: id, observed, excluded")
    parser.add_argument("--out", type=Path, required=True, help="JSON lines: id, ranking")
    parser.add_argument("--model", type=Path, help="a trained model directory (dxops-train)")
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args(argv)
    if args.model is not None:
        parser.error("--model: trained models come with dxops-train (issue 6); rank without it for now")
    model = default_model()
    ranked = unknown = 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with args.out.open("w", encoding="utf-8") as out:
            for line, unknown_terms in rank_cases(model, read_cases(args.cases), args.top):
                out.write(json.dumps(line) + "\n")
                ranked += 1
                unknown += unknown_terms
    except CaseError as error:
        print(f"dxops-rank: {args.cases}: {error}", file=sys.stderr)
        return 2
    print(
        f"dxops-rank: {ranked} cases ranked over {len(model.diseases)} diseases; {unknown} unknown HPO ids left out",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
