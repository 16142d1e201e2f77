"""The knowledge combination (ml/combine.py): its likelihood's gradient, and what it learns."""

from __future__ import annotations

import numpy as np

from ml.combine import (
    N_BINS,
    FitCases,
    Weights,
    _Likelihood,
    candidate_table,
    choose_threshold,
    count_bin,
    decision_scores,
    fit_weights,
    probabilities,
)


def small_table(seed: int = 0) -> FitCases:
    rng = np.random.default_rng(seed)
    classes = ["ICD10:A", "ICD10:B", "ORPHA:1"]
    proba = rng.dirichlet(np.ones(3), size=6)
    knowledge_ids = [["ORPHA:1", "ORPHA:2", "OMIM:3"] for _ in range(6)]
    scores = [{"ORPHA:1": rng.normal(), "ORPHA:2": rng.normal(), "OMIM:3": rng.normal()} for _ in range(6)]
    truth = ["ICD10:A", "ORPHA:2", "OMIM:3", "ICD10:B", "ORPHA:1", "ORPHA:9"]  # ORPHA:9: not a candidate
    table = candidate_table(classes, proba, knowledge_ids, scores, counts={"ICD10:A": 40, "ICD10:B": 7, "ORPHA:1": 2})
    return FitCases(table, truth, rng.uniform(0.5, 3.0, size=6))


def test_count_bins() -> None:
    assert [count_bin(n) for n in (0, 1, 2, 3, 5, 6, 20, 21, 1000)] == [0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert N_BINS == 5


def test_the_weighted_likelihood_gradient_matches_a_numerical_gradient() -> None:
    likelihood = _Likelihood(small_table())
    rng = np.random.default_rng(1)
    v = rng.normal(size=len(Weights().vector()))
    _loss, grad = likelihood(v)
    step = 1e-6
    numerical = np.array(
        [
            (likelihood(v + step * np.eye(len(v))[i])[0] - likelihood(v - step * np.eye(len(v))[i])[0]) / (2 * step)
            for i in range(len(v))
        ]
    )
    assert np.allclose(grad, numerical, rtol=1e-5, atol=1e-7)


def test_a_case_whose_disease_is_no_candidate_is_left_out_of_the_fit() -> None:
    cases = small_table()
    assert cases.reachable.tolist() == [True, True, True, True, True, False]  # ORPHA:9 is no candidate
    assert "ORPHA:9" not in cases.table.diseases[5]
    _weights, fit = fit_weights([cases])
    assert fit["cases"] == 5 and fit["unreachable"] == 1


def test_unseen_diseases_learn_to_trust_the_knowledge_model() -> None:
    """Cases of diseases with no training case, where the knowledge model ranks the truth first:
    the fitted weight of knowledge for unseen diseases is positive and the truth gets most mass."""
    rng = np.random.default_rng(2)
    classes = ["ICD10:A", "ICD10:B"]
    n = 200
    ids = [[f"ORPHA:{j}" for j in range(10)] for _ in range(n)]
    truth, scores, proba = [], [], []
    for i in range(n):
        if i % 2:  # a common case: the supervised model is right, the knowledge scores are noise
            label = classes[i % 4 // 2]
            p = np.array([0.9, 0.1]) if label == "ICD10:A" else np.array([0.1, 0.9])
            knowledge = {d: float(rng.normal()) for d in ids[i]}
        else:  # an unseen rare case: the knowledge model scores the truth highest
            label = f"ORPHA:{rng.integers(10)}"
            p = np.array([0.5, 0.5])
            knowledge = {d: float(rng.normal()) + (4.0 if d == label else 0.0) for d in ids[i]}
        truth.append(label)
        scores.append(knowledge)
        proba.append(p)
    table = candidate_table(classes, np.array(proba), ids, scores, counts={"ICD10:A": 100, "ICD10:B": 100})
    weights, fit = fit_weights([FitCases(table, truth, np.ones(n))])
    assert weights.knowledge[0] > 0.5 and fit["cases"] == n
    p = probabilities(table, weights)
    truth_mass = [p[i, table.diseases[i].index(label)] for i, label in enumerate(truth)]
    assert np.mean(truth_mass[0::2]) > 0.5  # rare cases: the knowledge model's choice wins
    assert np.mean(truth_mass[1::2]) > 0.7  # common cases: the supervised model still decides


def test_the_threshold_correction_moves_decisions_to_small_classes_not_probabilities() -> None:
    """A big class whose prior wins every close call: lambda > 0 gives the small class its cases."""
    classes = ["ICD10:BIG", "ORPHA:SMALL"]
    proba = np.array([[0.6, 0.4]] * 10 + [[0.9, 0.1]] * 10)
    truth = ["ORPHA:SMALL"] * 10 + ["ICD10:BIG"] * 10
    empty: list[list[str]] = [[] for _ in range(20)]
    table = candidate_table(classes, proba, empty, [{} for _ in range(20)], counts={"ICD10:BIG": 500, "ORPHA:SMALL": 3})
    weights = Weights()

    def accuracy(truth: list[str], predicted: list[str], case_weights: list[float]) -> float:
        return float(np.average([t == p for t, p in zip(truth, predicted, strict=True)], weights=case_weights))

    threshold, scores = choose_threshold([FitCases(table, truth, np.ones(20))], weights, accuracy)
    assert threshold > 0 and scores["0"] == 0.5 and max(scores.values()) == 1.0
    corrected = Weights(threshold=threshold)
    assert np.array_equal(probabilities(table, corrected), probabilities(table, Weights()))  # probabilities stay
    assert (np.argmax(decision_scores(table, corrected), axis=1)[:10] == 1).all()  # decisions move
