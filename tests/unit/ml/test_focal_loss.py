"""The multi-class focal loss objective (ml/focal_loss.py): derivatives, limits, stability, training."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import xgboost as xgb
from sklearn.datasets import make_classification
from sklearn.model_selection import train_test_split

from ml.focal_loss import (
    HESSIAN_FLOOR,
    FocalObjective,
    focal_gradient,
    focal_hessian_diagonal,
    focal_loss,
)

GAMMAS = [0.0, 0.5, 1.0, 2.0, 5.0]
K = 4


def problem(
    seed: int = 0, n: int = 25
) -> tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any]]:
    """Random margins (confident, unsure and badly wrong samples), labels, class and sample weights."""
    rng = np.random.default_rng(seed)
    margins = rng.normal(0.0, 2.5, (n, K))
    labels = rng.integers(0, K, n)
    alpha = rng.uniform(0.2, 2.0, K)
    weights = rng.uniform(0.1, 3.0, n)
    return margins, labels, alpha, weights


def softmax(margins: npt.NDArray[Any]) -> npt.NDArray[Any]:
    e = np.exp(margins - margins.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]


def central_differences(f: Any, margins: npt.NDArray[Any], step: float) -> npt.NDArray[Any]:
    """d f(row i) / d margins[i, j] for every entry, perturbing one row at a time (f sees that row only)."""
    out = np.zeros_like(margins)
    for i in range(margins.shape[0]):
        for j in range(margins.shape[1]):
            up, down = margins[i : i + 1].copy(), margins[i : i + 1].copy()
            up[0, j] += step
            down[0, j] -= step
            out[i, j] = (f(i, up, j) - f(i, down, j)) / (2 * step)
    return out


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("weighted", [False, True])
def test_the_gradient_is_the_derivative_of_the_loss(gamma: float, weighted: bool) -> None:
    margins, labels, alpha, weights = problem()
    a, w = (alpha, weights) if weighted else (None, None)

    def row_loss(i: int, row: npt.NDArray[Any], _j: int) -> float:
        return focal_loss(row, labels[i : i + 1], gamma, a, None if w is None else w[i : i + 1])

    grad, _ = focal_gradient(margins, labels, gamma, a, w)
    np.testing.assert_allclose(grad, central_differences(row_loss, margins, 1e-5), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_the_exact_hessian_diagonal_is_the_second_derivative_of_the_loss(gamma: float) -> None:
    margins, labels, alpha, weights = problem(seed=1)

    def row_grad(i: int, row: npt.NDArray[Any], j: int) -> float:
        return float(focal_gradient(row, labels[i : i + 1], gamma, alpha, weights[i : i + 1])[0][0, j])

    def row_second_difference(i: int, j: int, step: float) -> float:
        def at(delta: float) -> float:
            row = margins[i : i + 1].copy()
            row[0, j] += delta
            return focal_loss(row, labels[i : i + 1], gamma, alpha, weights[i : i + 1])

        return (at(step) - 2 * at(0.0) + at(-step)) / step**2

    hess = focal_hessian_diagonal(margins, labels, gamma, alpha, weights)
    np.testing.assert_allclose(hess, central_differences(row_grad, margins, 1e-6), rtol=1e-5, atol=1e-9)
    # From the loss alone too (noisier: the rounding error of a second difference grows as 1/step^2).
    second = np.array([[row_second_difference(i, j, 1e-4) for j in range(K)] for i in range(len(labels))])
    np.testing.assert_allclose(hess, second, rtol=1e-4, atol=1e-6)


def test_gamma_zero_is_softmax_cross_entropy_as_in_multi_softprob() -> None:
    margins, labels, _, weights = problem(seed=2)
    p = softmax(margins)
    onehot = np.eye(K)[labels]
    grad, hess = focal_gradient(margins, labels, 0.0)
    np.testing.assert_allclose(grad, p - onehot, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(hess, np.maximum(2 * p * (1 - p), HESSIAN_FLOOR), rtol=1e-12)
    np.testing.assert_allclose(focal_loss(margins, labels, 0.0), -np.sum(np.log(p[np.arange(len(labels)), labels])))
    # Sample weights scale both, as in XGBoost's multi:softprob: grad = w (p - y), hess = max(2 p (1 - p) w, 1e-16).
    grad, hess = focal_gradient(margins, labels, 0.0, weights=weights)
    np.testing.assert_allclose(grad, weights[:, None] * (p - onehot), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(hess, np.maximum(2 * p * (1 - p) * weights[:, None], HESSIAN_FLOOR), rtol=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_gamma_zero_trains_the_same_model_as_multi_softprob(weighted: bool) -> None:
    x, y = make_classification(n_samples=600, n_features=8, n_informative=4, n_classes=3, random_state=0)
    weight = np.random.default_rng(0).uniform(0.5, 2.0, len(y)) if weighted else None
    data = xgb.DMatrix(x, label=y, weight=weight)
    params = {"num_class": 3, "max_depth": 3, "eta": 0.3, "nthread": 1}
    builtin = xgb.train({**params, "objective": "multi:softprob"}, data, 20)
    focal = xgb.train({**params, "disable_default_eval_metric": 1}, data, 20, obj=FocalObjective(gamma=0.0))
    np.testing.assert_allclose(
        focal.predict(data, output_margin=True), builtin.predict(data, output_margin=True), atol=1e-5
    )


def test_with_objective_multi_softprob_the_trees_are_the_focal_ones_and_predict_gives_probabilities() -> None:
    x, y = make_classification(n_samples=300, n_features=8, n_informative=4, n_classes=3, random_state=0)
    data = xgb.DMatrix(x, label=y)
    params = {"num_class": 3, "max_depth": 3, "nthread": 1, "disable_default_eval_metric": 1}
    bare = xgb.train(params, data, 5, obj=FocalObjective(gamma=2.0))
    softprob = xgb.train({**params, "objective": "multi:softprob"}, data, 5, obj=FocalObjective(gamma=2.0))
    margins = softprob.predict(data, output_margin=True)
    np.testing.assert_array_equal(margins, bare.predict(data, output_margin=True))
    np.testing.assert_allclose(softprob.predict(data), softmax(margins), atol=1e-6)
    assert bare.predict(data).shape == (300,)  # multi:softmax by default: class indices


def test_the_surrogate_hessian_is_positive_where_the_exact_one_is_not() -> None:
    margins, labels, alpha, weights = problem(seed=3, n=200)
    margins[np.arange(200), labels] -= 3.0  # many badly misclassified samples
    exact = focal_hessian_diagonal(margins, labels, 2.0, alpha, weights)
    assert (exact < 0).sum() > 20  # the case the surrogate is for
    _, hess = focal_gradient(margins, labels, 2.0, alpha, weights)
    assert np.all(hess >= HESSIAN_FLOOR)
    assert np.all(np.isfinite(hess))


@pytest.mark.parametrize("gamma", [0.0, 0.3, 0.5, 1.0, 2.0, 5.0])
def test_extreme_margins_stay_finite(gamma: float) -> None:
    margins = np.array(
        [
            [800.0, -800.0, 0.0],  # p_t = 1 in floating point
            [0.0, -800.0, 800.0],  # p_t = 0 in floating point: loss 800
            [40.0, 0.0, 0.0],  # 1 - p_t = 8e-18, below the float64 resolution of p_t
            [0.0, 0.0, 40.0],
            [1e-12, 0.0, 0.0],
            [0.0, 0.0, 0.0],
        ]
    )
    labels = np.zeros(len(margins), dtype=int)
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow to 0 is fine
        loss = focal_loss(margins, labels, gamma)
        grad, hess = focal_gradient(margins, labels, gamma)
        exact = focal_hessian_diagonal(margins, labels, gamma)
    assert np.isfinite(loss)
    assert loss == pytest.approx(800.0 + 40.0 + 2 * (2 / 3) ** gamma * np.log(3), rel=1e-9)
    assert np.all(np.isfinite(grad)) and np.all(np.isfinite(exact)) and np.all(np.isfinite(hess))
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-15)  # softmax margins: shift-invariant
    assert np.all(hess >= HESSIAN_FLOOR)
    assert grad[1, 0] == pytest.approx(-1.0) and grad[1, 2] == pytest.approx(1.0)  # saturated: as cross entropy
    # 1 - p_t ~ 8e-18 is kept: the gradient is (1 - p_t)^gamma-small, not rounded to 0 or blown up.
    assert grad[2, 0] == pytest.approx(-((2 * np.exp(-40.0)) ** (gamma + 1)) * (1 + gamma), rel=1e-6)


def test_the_objective_reads_labels_and_weights_from_the_dmatrix_and_pickles() -> None:
    margins, labels, alpha, weights = problem(seed=4)
    x = np.zeros((len(labels), 2))
    objective = pickle.loads(pickle.dumps(FocalObjective(gamma=2.0, alpha=alpha)))
    assert objective.gamma == 2.0 and objective.alpha is not None

    unweighted = objective(margins, xgb.DMatrix(x, label=labels))
    for got, want in zip(unweighted, focal_gradient(margins, labels, 2.0, alpha), strict=True):
        assert got.shape == (len(labels), K)
        np.testing.assert_allclose(got, want, rtol=1e-12)
    weighted = objective(margins, xgb.DMatrix(x, label=labels, weight=weights))
    for got, want in zip(weighted, focal_gradient(margins, labels, 2.0, alpha, weights), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)  # the DMatrix keeps weights in float32


@pytest.mark.parametrize(
    ("labels", "gamma", "alpha", "weights"),
    [
        ([0, 3], 2.0, None, None),  # label out of range
        ([0, 0.5], 2.0, None, None),  # not a class index
        ([0, 1], -1.0, None, None),
        ([0, 1], 2.0, [1.0, 1.0], None),  # one alpha per class (3)
        ([0, 1], 2.0, None, [1.0, -1.0]),
    ],
)
def test_invalid_inputs_are_refused(labels: list[float], gamma: float, alpha: Any, weights: Any) -> None:
    margins = np.zeros((2, 3))
    with pytest.raises(ValueError):
        focal_gradient(
            margins,
            np.array(labels),
            gamma,
            None if alpha is None else np.array(alpha),
            None if weights is None else np.array(weights),
        )


def test_training_with_focal_loss_converges_and_fits_the_rare_class() -> None:
    x, y = make_classification(
        n_samples=2000,
        n_features=10,
        n_informative=4,
        n_redundant=2,
        n_classes=3,
        n_clusters_per_class=1,
        weights=[0.9, 0.08, 0.02],
        flip_y=0.01,
        class_sep=0.8,
        random_state=0,
    )
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.5, stratify=y, random_state=0)
    train, test = xgb.DMatrix(x_train, label=y_train), xgb.DMatrix(x_test, label=y_test)
    params = {"num_class": 3, "max_depth": 3, "eta": 0.3, "nthread": 1, "seed": 0, "disable_default_eval_metric": 1}
    rounds = 30
    focal = xgb.train(params, train, rounds, obj=FocalObjective(gamma=2.0))
    plain = xgb.train(params, train, rounds, obj=FocalObjective(gamma=0.0))

    losses = [
        focal_loss(focal.predict(train, output_margin=True, iteration_range=(0, i)), y_train, 2.0)
        for i in range(1, rounds + 1)
    ]
    assert np.all(np.diff(losses) <= 0)  # the half-Newton steps never overshoot here
    assert losses[-1] < 0.05 * losses[0]

    def recall(model: xgb.Booster, data: xgb.DMatrix, labels: npt.NDArray[Any], cls: int) -> float:
        predicted = model.predict(data, output_margin=True).argmax(axis=1)
        return float(np.mean(predicted[labels == cls] == cls))

    # Over 30 seeds of this problem these held every time: the focal model fits the rare class
    # (2 %) at least as well in training, and on held-out cases it has the lower focal loss and is
    # less confidently wrong on the minority classes (lower cross entropy on them). Held-out recall
    # of the rare class (~22 cases) was higher or equal in only 24 of 30 seeds, so it is not asserted.
    assert recall(focal, train, y_train, 2) >= recall(plain, train, y_train, 2)
    held_out = {m: model.predict(test, output_margin=True) for m, model in (("focal", focal), ("plain", plain))}
    assert focal_loss(held_out["focal"], y_test, 2.0) < focal_loss(held_out["plain"], y_test, 2.0)
    minority = y_test > 0
    assert focal_loss(held_out["focal"][minority], y_test[minority], 0.0) < focal_loss(
        held_out["plain"][minority], y_test[minority], 0.0
    )
