"""The knowledge model: diseases ranked from phenotypes with no training case (ml/knowledge.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from ml.knowledge import Disease, KnowledgeModel, default_model
from tests.toy_ontology import PARENTS

if TYPE_CHECKING:
    from ml.knowledge_scorer import KnowledgeScorer

SEIZURE, FOCAL, EYE = "HP:0001250", "HP:0007359", "HP:0000478"


def toy_model() -> KnowledgeModel:
    diseases = [
        Disease("ORPHA:1", "focal epilepsy", {FOCAL: 0.6}, frozenset()),
        Disease("ORPHA:2", "epilepsy", {SEIZURE: 0.8}, frozenset()),
        Disease("ORPHA:3", "eye disease", {EYE: 0.9}, frozenset()),
        Disease("ORPHA:4", "eye disease without seizures", {EYE: 0.9}, frozenset({SEIZURE})),
    ]
    return KnowledgeModel(diseases, PARENTS)


def ids(model: KnowledgeModel, observed: list[str], excluded: list[str] = ()) -> list[str]:  # type: ignore[assignment]
    return [c.disease_id for c in model.rank(observed, excluded)]


def test_the_most_specific_match_ranks_first() -> None:
    model = toy_model()
    assert ids(model, [FOCAL])[:2] == ["ORPHA:1", "ORPHA:2"]  # exact, then the more general annotation
    assert ids(model, [SEIZURE])[:2] == ["ORPHA:2", "ORPHA:1"]  # focal seizure (60%) implies seizure
    assert set(ids(model, [EYE])[:2]) == {"ORPHA:3", "ORPHA:4"}


def test_excluded_terms_are_evidence() -> None:
    model = toy_model()
    assert ids(model, [EYE], excluded=[SEIZURE])[0] == "ORPHA:4"  # annotated NOT to have seizures
    with_seizures = {c.disease_id: c.score for c in model.rank([EYE, SEIZURE])}
    assert with_seizures["ORPHA:3"] > with_seizures["ORPHA:4"]


def test_probabilities_form_a_posterior_and_unknown_terms_do_not_break_it() -> None:
    model = toy_model()
    ranking = model.rank([FOCAL, "HP:9999999"], top_k=4)
    assert sum(c.probability for c in ranking) == pytest.approx(1.0)
    assert [c.score for c in ranking] == sorted((c.score for c in ranking), reverse=True)
    assert model.rank([]) and len(model.rank([], top_k=2)) == 2  # no evidence: uniform, still ranked


@pytest.fixture(scope="module")
def annotated() -> KnowledgeModel:
    return default_model()


def test_every_annotated_disease_is_ranked_and_recovered_from_its_frequent_terms(annotated: KnowledgeModel) -> None:
    assert len(annotated.diseases) > 12_000  # ORPHA and OMIM, with no training case at all
    sample = [d for d in annotated.diseases if len(d.frequencies) >= 6][::150]

    def hit_rate(terms_of) -> float:  # type: ignore[no-untyped-def]
        return sum(d.id in ids(annotated, terms_of(d)) for d in sample) / len(sample)

    def frequent(d: Disease) -> list[str]:
        return sorted(d.frequencies, key=lambda t: (-d.frequencies[t], t))[:5]

    def vaguer(d: Disease) -> list[str]:  # each term replaced by its parent, as a less precise clinician would
        return [next(iter(annotated.ancestors(t)), t) for t in frequent(d)]

    # Measured 0.92 and 0.73 (66 diseases); many OMIM subtypes share identical annotations.
    assert hit_rate(frequent) >= 0.85
    assert hit_rate(vaguer) >= 0.6


# The vectorised scorer (ml/knowledge_scorer.py): the model's numbers, for batches of cases.
TOY_CASES = [
    ([FOCAL], []),
    ([SEIZURE], []),
    ([EYE], [SEIZURE]),
    ([EYE, SEIZURE], [FOCAL]),
    ([FOCAL, "HP:9999999"], []),  # a term the ontology does not know
    (["HP:9999999"], ["HP:9999998"]),
    ([], [SEIZURE, EYE]),
    ([], []),  # no evidence: every disease ties
    ([FOCAL, FOCAL, "HP:0000001", "HP:0000118"], [EYE, EYE]),  # repeated terms count once; the roots
    ([SEIZURE], [SEIZURE]),  # observed and excluded at once
]


def assert_top_is_rank(
    model: KnowledgeModel, cases: list[tuple[list[str], list[str]]], k: int, scorer: KnowledgeScorer | None = None
) -> None:
    top = (scorer or model.scorer()).top(cases, k)
    assert top.indices.shape == top.scores.shape == top.probabilities.shape == (len(cases), min(k, len(model.diseases)))
    for (observed, excluded), indices, scores, probabilities in zip(cases, *top, strict=True):
        ranking = model.rank(observed, excluded, top_k=k)
        assert [model.diseases[i].id for i in indices] == [c.disease_id for c in ranking]
        assert [round(float(s), 6) for s in scores] == [c.score for c in ranking]
        assert probabilities.tolist() == pytest.approx([c.probability for c in ranking], rel=1e-12, abs=1e-300)


def test_the_scorer_gives_the_model_s_scores_bit_for_bit_on_the_toy_model() -> None:
    np = pytest.importorskip("numpy")
    model = toy_model()
    scores = model.scorer().scores(TOY_CASES)
    assert scores.shape == (len(TOY_CASES), 4) and scores.dtype == np.float64
    for (observed, excluded), row in zip(TOY_CASES, scores, strict=True):
        assert row.tolist() == model.scores(observed, excluded)  # the same numbers, not merely close
    # A cache of 2 vectors (evicted all along) and batches of 3 cases change nothing.
    from ml.knowledge_scorer import KnowledgeScorer

    np.testing.assert_array_equal(KnowledgeScorer(model, max_cached_terms=2, batch_size=3).scores(TOY_CASES), scores)
    assert model.scorer().scores(TOY_CASES, dtype=np.float32).dtype == np.float32


def test_the_scorer_s_top_diseases_are_rank_s_on_the_toy_model() -> None:
    pytest.importorskip("numpy")
    model = toy_model()
    for k in (1, 2, 3, 4, 10):  # 10: more than there are diseases
        assert_top_is_rank(model, TOY_CASES, k)
    # Diseases not in id order: ties are still broken by id.
    shuffled = KnowledgeModel([model.diseases[i] for i in (2, 0, 3, 1)], PARENTS)
    assert_top_is_rank(shuffled, TOY_CASES, 3)
    top = model.scorer().top(TOY_CASES, 0)
    assert top.indices.shape == (len(TOY_CASES), 0)


def test_the_scorer_scores_a_subset_of_diseases() -> None:
    np = pytest.importorskip("numpy")
    scorer = toy_model().scorer()
    wanted = ["ORPHA:3", "ORPHA:1", "ORPHA:3"]  # any order, repeats allowed
    subset = scorer.scores(TOY_CASES, diseases=wanted)
    np.testing.assert_array_equal(subset, scorer.scores(TOY_CASES)[:, [scorer.index_of(d) for d in wanted]])
    assert scorer.scores([], diseases=wanted).shape == (0, 3)
    with pytest.raises(KeyError, match="ORPHA:404"):
        scorer.index_of("ORPHA:404")
    with pytest.raises(TypeError):
        scorer.scores([(FOCAL, [])])  # a string, not a list of terms


def random_cases(model: KnowledgeModel, count: int, seed: int) -> list[tuple[list[str], list[str]]]:
    """Cases drawn from the annotations: a disease's terms (some replaced by a parent, some by a term
    of another disease), excluded terms of other diseases or that the disease is annotated NOT to
    have, now and then a term the ontology does not know."""
    import random

    rng = random.Random(seed)
    with_exclusions = [d for d in model.diseases if d.excluded]
    cases = []
    for i in range(count):
        disease = rng.choice(with_exclusions if i % 3 == 0 else model.diseases)
        observed = rng.sample(sorted(disease.frequencies), min(len(disease.frequencies), rng.randint(1, 8)))
        observed = [next(iter(model.ancestors(t)), t) if rng.random() < 0.3 else t for t in observed]
        observed.append(rng.choice(sorted(rng.choice(model.diseases).frequencies)))
        excluded = [rng.choice(sorted(rng.choice(model.diseases).frequencies)) for _ in range(rng.randint(0, 2))]
        excluded += sorted(disease.excluded)[:1]
        observed += sorted(disease.excluded)[1:2]  # observed, though the disease is annotated NOT to have it
        if i % 5 == 0:
            observed.append("HP:9999999")
            excluded.append("HP:9999998")
        cases.append((observed, excluded))
    return cases


def test_the_scorer_gives_the_model_s_scores_and_ranking_over_every_disease(annotated: KnowledgeModel) -> None:
    np = pytest.importorskip("numpy")
    cases = random_cases(annotated, 20, seed=6)
    scorer = annotated.scorer()
    expected = np.array([annotated.scores(observed, excluded) for observed, excluded in cases])
    np.testing.assert_array_equal(scorer.scores(cases), expected)  # bit for bit (Python's logs and sums)
    from ml.knowledge_scorer import KnowledgeScorer

    small = KnowledgeScorer(annotated, max_cached_terms=5, batch_size=7)  # evicting all along
    np.testing.assert_array_equal(small.scores(cases), expected)
    wanted = [annotated.diseases[i].id for i in range(0, len(annotated.diseases), 97)]
    np.testing.assert_array_equal(scorer.scores(cases, diseases=wanted), expected[:, ::97])
    assert_top_is_rank(annotated, cases[:8], 200, scorer)
    assert_top_is_rank(annotated, cases[8:10], 50, small)
    assert_top_is_rank(annotated, [([], []), (["HP:9999999"], [])], 20, scorer)  # everything tied: by id
