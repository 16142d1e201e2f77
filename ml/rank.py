"""dxops-rank: rank diseases for phenotype-only cases.

    dxops-rank --cases CASES.jsonl --out RANKINGS.jsonl [--model MODEL_DIR] [--top 10]

Each input line: {"id": ..., "observed": [HPO ids], "excluded": [HPO ids]}. Each output line:
{"id": ..., "ranking": [{"disease_id": "ORPHA:..." | "OMIM:...", "name": ..., "score": ...}]},
the top diseases best first. Without --model the knowledge model ranks alone (ml/knowledge.py;
`score` is its posterior under a uniform prior); with a trained model (dxops-train) the cases are
phenotype-only records for it (`score` is its calibrated probability over all diseases, common
ones included). Obsolete HPO ids are mapped to their
current ones; ids the ontology does not know are left out and counted on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dxops.vocab.hpo import canonical_hpo_id
from ml.knowledge import KnowledgeModel, default_model

if TYPE_CHECKING:
    from ml.model import DiagnosisModel


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


Ranking = list[dict[str, Any]]
Ranker = Callable[[list[tuple[list[str], list[str]]], int], list[Ranking]]
BATCH = 256


def knowledge_ranker(model: KnowledgeModel) -> Ranker:
    """The knowledge model alone; `score` is its posterior under a uniform prior."""

    def rank(cases: list[tuple[list[str], list[str]]], top: int) -> list[Ranking]:
        return [
            [
                {"disease_id": c.disease_id, "name": c.name, "score": round(c.probability, 6)}
                for c in model.rank(observed, excluded, top_k=top)
            ]
            for observed, excluded in cases
        ]

    return rank


def trained_ranker(model: DiagnosisModel) -> Ranker:
    """A trained model (supervised + knowledge); `score` is its calibrated probability."""

    def rank(cases: list[tuple[list[str], list[str]]], top: int) -> list[Ranking]:
        records = [
            {
                "phenotypes": [{"hpo_id": t, "status": "observed"} for t in observed]
                + [{"hpo_id": t, "status": "excluded"} for t in excluded]
            }
            for observed, excluded in cases
        ]
        return [
            [{"disease_id": d.disease_id, "name": d.name, "score": d.probability} for d in prediction.diagnoses]
            for prediction in model.predict_records(records, top_k=top, explain=False)
        ]

    return rank


def rank_cases(rank: Ranker, cases: Iterator[dict[str, Any]], top: int) -> Iterator[tuple[dict[str, Any], int]]:
    """(output line, unknown terms) per case, ranked a batch at a time."""
    for batch in _batches(cases):
        unknown = [0] * len(batch)
        terms = []
        for i, case in enumerate(batch):
            missing: list[str] = []
            terms.append(
                (known_terms(case.get("observed", []), missing), known_terms(case.get("excluded", []), missing))
            )
            unknown[i] = len(missing)
        for case, ranking, count in zip(batch, rank(terms, top), unknown, strict=True):
            yield {"id": case["id"], "ranking": ranking}, count


def _batches(cases: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for case in cases:
        batch.append(case)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dxops-rank", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cases", type=Path, required=True, help="JSON lines: id, observed, excluded")
    parser.add_argument("--out", type=Path, required=True, help="JSON lines: id, ranking")
    parser.add_argument("--model", type=Path, help="a trained model directory (dxops-train)")
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args(argv)
    if args.model is None:
        ranker, what = (
            knowledge_ranker(default_model()),
            f"the knowledge model ({len(default_model().diseases)} diseases)",
        )
    else:
        from ml.model import DiagnosisModel, ModelError  # noqa: PLC0415 - numpy and xgboost only with a model

        try:
            trained = DiagnosisModel.load(args.model)
        except ModelError as error:
            print(f"dxops-rank: {error}", file=sys.stderr)
            return 2
        ranker, what = trained_ranker(trained), f"model {trained.version}"
    ranked = unknown = 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with args.out.open("w", encoding="utf-8") as out:
            for line, unknown_terms in rank_cases(ranker, read_cases(args.cases), args.top):
                out.write(json.dumps(line) + "\n")
                ranked += 1
                unknown += unknown_terms
    except CaseError as error:
        print(f"dxops-rank: {args.cases}: {error}", file=sys.stderr)
        return 2
    print(
        f"dxops-rank: {ranked} cases ranked with {what}; {unknown} unknown HPO ids left out",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
