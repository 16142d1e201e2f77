"""Multi-class focal loss (Lin et al. 2017, softmax form) as a custom XGBoost objective.

    loss_i = -alpha[y_i] * (1 - p_i[y_i]) ** gamma * log p_i[y_i],    p_i = softmax(margins_i)

Rare diseases are a few percent of the cases: plain cross entropy lets the many easy, common
cases dominate the gradient. The factor (1 - p_t) ** gamma shrinks the loss of well-classified
cases, so the trees spend their splits on the hard ones; alpha (one weight per class) rebalances
the classes. gamma = 0 without alpha is softmax cross entropy, and FocalObjective then trains
the same trees as XGBoost's built-in multi:softprob (up to float32 rounding).

Everything is computed from t_i = logsumexp_{j != y_i}(margins_ij) - margins_{i,y_i}, the log
odds against the true class: log p_t = -softplus(t) and 1 - p_t = sigmoid(t) are both exact in
floating point, however close p_t is to 0 or 1 (no log(0), no 1 - p cancellation, no 0 * inf).
Safe for any gamma >= 0 (tested over [0, 5]).

Python 3.10 compatible: it runs in the SageMaker XGBoost 3.0-5 image.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import xgboost

FloatArray = npt.NDArray[np.float64]

# Floor of the surrogate hessian: multi:softprob's own (src/objective/multiclass_obj.cu).
HESSIAN_FLOOR = 1e-16
# Below this t, softplus(t) / sigmoid(t) = 1 + e^t / 2 + O(e^2t) (the exact form would overflow).
_SERIES_BELOW = -30.0


class _Terms(NamedTuple):
    """Per-sample quantities shared by the loss, the gradient and the hessian."""

    p: FloatArray  # (n, K) softmax probabilities
    onehot: npt.NDArray[np.bool_]  # (n, K) the labels
    s: FloatArray  # (n, K) (p - onehot) / (1 - p_t): -1 at the label, p_j / (1 - p_t) elsewhere
    p_t: FloatArray  # (n,) probability of the true class
    q: FloatArray  # (n,) 1 - p_t
    nll: FloatArray  # (n,) -log p_t
    q_gamma: FloatArray  # (n,) (1 - p_t) ** gamma
    r: FloatArray  # (n,) -p_t log p_t / (1 - p_t), in [0, 1]
    scale: FloatArray  # (n,) alpha[y] * weight


def _softplus(x: FloatArray) -> FloatArray:
    return np.logaddexp(0.0, x)


def _terms(
    margins: npt.NDArray[Any],
    labels: npt.NDArray[Any],
    gamma: float,
    alpha: npt.NDArray[Any] | None,
    weights: npt.NDArray[Any] | None,
) -> _Terms:
    z = np.asarray(margins, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] < 2:
        raise ValueError(f"margins must have shape (n, K) with K >= 2, got {z.shape}")
    n, k = z.shape
    if not np.all(np.isfinite(z)):
        raise ValueError("margins must be finite")
    if gamma < 0 or not np.isfinite(gamma):
        raise ValueError(f"gamma must be finite and >= 0, got {gamma}")
    y_float = np.asarray(labels, dtype=np.float64).reshape(-1)
    if y_float.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {np.shape(labels)}")
    y = y_float.astype(np.int64)
    if np.any(y != y_float) or np.any(y < 0) or np.any(y >= k):
        raise ValueError(f"labels must be integers in [0, {k})")

    scale = np.ones(n)
    if alpha is not None:
        a = np.asarray(alpha, dtype=np.float64).reshape(-1)
        if a.shape != (k,) or np.any(a < 0) or not np.all(np.isfinite(a)):
            raise ValueError(f"alpha must be {k} finite non-negative class weights")
        scale = scale * a[y]
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if w.shape != (n,) or np.any(w < 0) or not np.all(np.isfinite(w)):
            raise ValueError(f"weights must be {n} finite non-negative sample weights")
        scale = scale * w

    rows = np.arange(n)
    onehot = np.zeros((n, k), dtype=bool)
    onehot[rows, y] = True

    shifted = z - z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    p = e / e.sum(axis=1, keepdims=True)

    # Log-sum-exp over the other classes (K >= 2 and finite margins: at least one finite term).
    others = np.where(onehot, -np.inf, z)
    others_max = others.max(axis=1, keepdims=True)
    s = np.exp(others - others_max)  # 0 at the label
    s_sum = s.sum(axis=1, keepdims=True)
    t = (others_max + np.log(s_sum))[:, 0] - z[rows, y]
    s = s / s_sum  # p_j / (1 - p_t) for j != y: the softmax over the other classes
    s[onehot] = -1.0

    nll = _softplus(t)
    log_q = -_softplus(-t)
    q = np.exp(log_q)
    p_t = np.exp(-nll)
    q_gamma = np.exp(gamma * log_q)
    # r = p_t * softplus(t) / sigmoid(t); its limit 1 as p_t -> 1 is what keeps gamma < 1 finite.
    series = 1.0 + 0.5 * np.exp(np.minimum(t, _SERIES_BELOW))
    t_safe = np.maximum(t, _SERIES_BELOW)
    ratio = np.where(t < _SERIES_BELOW, series, _softplus(t_safe) * (1.0 + np.exp(-t_safe)))
    r = p_t * ratio
    return _Terms(p=p, onehot=onehot, s=s, p_t=p_t, q=q, nll=nll, q_gamma=q_gamma, r=r, scale=scale)


def focal_loss(
    margins: npt.NDArray[Any],
    labels: npt.NDArray[Any],
    gamma: float,
    alpha: npt.NDArray[Any] | None = None,
    weights: npt.NDArray[Any] | None = None,
) -> float:
    """The focal loss SUMMED over the samples, each term times alpha[y_i] * weights[i].

    A sum, not a mean, so that focal_gradient is exactly its gradient (XGBoost wants per-sample
    gradients of a sum). Divide by weights.sum() (or n) for a per-sample figure.
    """
    terms = _terms(margins, labels, gamma, alpha, weights)
    return float(np.sum(terms.scale * terms.q_gamma * terms.nll))


def _curvature(terms: _Terms) -> FloatArray:
    """p_j (1 - p_j), with 1 - p_t taken as q at the label (exact when p_t is close to 1)."""
    curvature = terms.p * (1.0 - terms.p)
    curvature[terms.onehot] = terms.p_t * terms.q  # one label per row, in row order
    return curvature


def _grad(terms: _Terms, gamma: float) -> tuple[FloatArray, FloatArray]:
    # dloss_i/dz_ij = scale * G(p_t) * (p_j - onehot_j), with G = q^gamma * (1 + gamma * r) >= 0
    # (G = 1 at gamma = 0: the cross-entropy gradient). p - onehot is written q * s, exact near p_t = 1.
    g_factor = terms.scale * terms.q_gamma * (1.0 + gamma * terms.r)
    return (g_factor * terms.q)[:, None] * terms.s, g_factor


def focal_hessian_diagonal(
    margins: npt.NDArray[Any],
    labels: npt.NDArray[Any],
    gamma: float,
    alpha: npt.NDArray[Any] | None = None,
    weights: npt.NDArray[Any] | None = None,
) -> FloatArray:
    """The exact diagonal of the hessian of focal_loss w.r.t. the margins, shape (n, K).

    d2loss/dz_j^2 = G p_j (1 - p_j) - p_t G'(p_t) (p_j - onehot_j)^2, per sample times
    alpha[y] * weight. The second term (the curvature of the modulating factor) makes it
    negative for badly misclassified samples when gamma > 0: not usable by XGBoost as is
    (see focal_gradient).
    """
    terms = _terms(margins, labels, gamma, alpha, weights)
    _, g_factor = _grad(terms, gamma)
    p_t, q, nll = terms.p_t, terms.q, terms.nll
    # -p_t G'(p_t) (p_j - onehot_j)^2 = gamma q^gamma p_t (q (2 - nll) + (gamma - 1) p_t nll) s_j^2
    modulation = terms.scale * terms.q_gamma * gamma * p_t * (q * (2.0 - nll) + (gamma - 1.0) * p_t * nll)
    hess: FloatArray = g_factor[:, None] * _curvature(terms) + modulation[:, None] * terms.s**2
    return hess


def focal_gradient(
    margins: npt.NDArray[Any],
    labels: npt.NDArray[Any],
    gamma: float,
    alpha: npt.NDArray[Any] | None = None,
    weights: npt.NDArray[Any] | None = None,
) -> tuple[FloatArray, FloatArray]:
    """(gradient, hessian surrogate) of focal_loss w.r.t. the margins, both of shape (n, K).

    The gradient is exact. The hessian is the positive surrogate

        h_ij = max(2 * alpha[y_i] * w_i * G(p_t) * p_ij * (1 - p_ij), 1e-16)

    i.e. the exact diagonal without its modulating-factor term (focal_hessian_diagonal), with
    multi:softprob's factor 2 and floor: at gamma = 0 without alpha, grad = p - onehot and
    hess = max(2 p (1 - p) w, 1e-16), what XGBoost's multi:softprob computes.
    """
    terms = _terms(margins, labels, gamma, alpha, weights)
    grad, g_factor = _grad(terms, gamma)
    # Why not max(exact, eps): the exact diagonal turns negative on the very samples focal loss is
    # for (3 classes, gamma = 2: p_t < 0.058); clipped to eps they carry no curvature, so their
    # leaf values are held back by lambda alone and min_child_weight refuses leaves made of them.
    # From a warm start with many confidently wrong samples, max(2 * exact, eps) ended 40 rounds
    # with 3x (gamma 2) to 12x (gamma 5) the focal loss of this surrogate. Freezing G(p_t) as a
    # per-sample weight for the round (Gauss-Newton) keeps H > 0 and each sample's g/h ratio that
    # of cross entropy, so steps, learning rate and regularisation behave as in multi:softprob
    # (whose factor 2 is kept for that reason).
    hess = np.maximum(2.0 * g_factor[:, None] * _curvature(terms), HESSIAN_FLOOR)
    return grad, hess


class FocalObjective:
    """Custom objective for xgboost.train(params, dtrain, obj=FocalObjective(gamma=2.0)).

    params must set num_class = K; labels (0 .. K-1) and optional sample weights come from the
    DMatrix. Also set objective = "multi:softprob": the trees stay this objective's, and
    Booster.predict then returns probabilities (without it XGBoost 3.0 defaults to multi:softmax
    and predict returns class indices). Picklable (plain attributes), for distributed training.
    """

    def __init__(self, gamma: float = 2.0, alpha: npt.ArrayLike | None = None) -> None:
        if not np.isfinite(gamma) or gamma < 0:
            raise ValueError(f"gamma must be finite and >= 0, got {gamma}")
        self.gamma = float(gamma)
        self.alpha: FloatArray | None = None if alpha is None else np.array(alpha, dtype=np.float64).reshape(-1)

    def __repr__(self) -> str:
        alpha = None if self.alpha is None else self.alpha.tolist()
        return f"FocalObjective(gamma={self.gamma}, alpha={alpha})"

    def __call__(self, predt: npt.NDArray[Any], dtrain: xgboost.DMatrix) -> tuple[FloatArray, FloatArray]:
        n = dtrain.num_row()
        margins = np.asarray(predt).reshape(n, -1)  # already (n, K) in XGBoost >= 2.1
        weights = dtrain.get_weight()
        return focal_gradient(
            margins,
            dtrain.get_label(),
            self.gamma,
            alpha=self.alpha,
            weights=weights if weights.size else None,
        )
