"""Active learning: how uncertain the current model is about an image, and a simulation of what
labeling the uncertain images first saves (numpy only, no torch).

Uncertainty, larger = label it sooner:

* quality: the entropy of the class probabilities (nats; 0 for a sure model, ln 4 at most);
* severity: minus the distance from the predicted score to the nearest grade edge (a score on an
  edge is the least certain grade, so 0 is the largest value).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def entropy(probs: np.ndarray) -> np.ndarray:
    """Entropy (nats) of each row of class probabilities [N, K]."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=-1)


def edge_uncertainty(scores: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Minus the distance of each severity score to the nearest grade edge."""
    s = np.asarray(scores, dtype=np.float64)[:, None]
    return -np.abs(s - np.asarray(edges, dtype=np.float64)[None, :]).min(axis=1)


def prediction_uncertainty(pred: Mapping[str, Any], edges: Sequence[float] | None = None) -> float:
    """The uncertainty of one ``predict()`` result (quality: its probabilities; severity: its score
    against ``edges``, the model's grade edges)."""
    if pred["kind"] == "quality":
        return float(entropy(np.array([list(pred["probabilities"].values())]))[0])
    if edges is None:
        raise ValueError("a severity prediction's uncertainty needs the grade edges")
    return float(edge_uncertainty(np.array([pred["score"]]), edges)[0])


# -- simulation -----------------------------------------------------------------------------------


def _fit_softmax(
    X: np.ndarray, y: np.ndarray, k: int, *, l2: float = 1e-2, steps: int = 300
) -> np.ndarray:
    """Multinomial logistic regression by full-batch gradient descent (a fast stand-in for the
    heads: the simulation compares orders, so both orders get the same learner)."""
    Xb = np.hstack([X, np.ones((len(X), 1))])
    W = np.zeros((Xb.shape[1], k))
    Y = np.eye(k)[y]
    lr = 0.5
    for _ in range(steps):
        z = Xb @ W
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        grad = Xb.T @ (p - Y) / len(Xb) + l2 * np.vstack([W[:-1], np.zeros((1, k))])
        W -= lr * grad
    return W


def _probs(W: np.ndarray, X: np.ndarray) -> np.ndarray:
    z = np.hstack([X, np.ones((len(X), 1))]) @ W
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> float:
    """Mean over the classes present in either array of the one-vs-rest F1."""
    f1s = []
    for c in range(k):
        tp = np.sum((y_true == c) & (y_pred == c))
        fp = np.sum((y_true != c) & (y_pred == c))
        fn = np.sum((y_true == c) & (y_pred != c))
        if tp + fp + fn:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1s)) if f1s else 0.0


@dataclass(frozen=True)
class Simulation:
    """Macro F1 on the held-out images after each batch of revealed labels, for both orders."""

    sizes: list[int]
    random_f1: list[float]
    uncertainty_f1: list[float]
    target_f1: float
    labels_to_target: dict[str, int | None]
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def simulate_label_order(
    X_pool: np.ndarray,
    y_pool: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    n_classes: int,
    start: int = 20,
    step: int = 20,
    target_share: float = 0.95,
    seed: int = 0,
) -> Simulation:
    """Reveal the pool's labels ``step`` at a time, in random order or most-uncertain first (the
    entropy of the model trained on the labels revealed so far), and score each model on the
    held-out set. Both orders start from the same ``start`` random labels. ``target_f1`` is
    ``target_share`` of the macro F1 with every pool label; ``labels_to_target`` gives, per order,
    the fewest labels whose model reached it (None: never).
    """
    rng = np.random.default_rng(seed)
    mu, sd = X_pool.mean(axis=0), X_pool.std(axis=0) + 1e-6
    Xp, Xt = (X_pool - mu) / sd, (X_test - mu) / sd
    n = len(Xp)
    first = rng.permutation(n)
    sizes = list(range(start, n, step)) + [n]

    def score(idx: np.ndarray) -> tuple[float, np.ndarray]:
        W = _fit_softmax(Xp[idx], y_pool[idx], n_classes)
        return macro_f1(y_test, _probs(W, Xt).argmax(axis=1), n_classes), W

    random_f1 = [score(first[:m])[0] for m in sizes]
    unc_f1: list[float] = []
    chosen = list(first[:start])
    for m in sizes:
        while len(chosen) < m:
            _, W = score(np.array(chosen))
            rest = np.setdiff1d(np.arange(n), chosen)
            h = entropy(_probs(W, Xp[rest]))
            take = rest[np.argsort(-h, kind="stable")[: min(step, m - len(chosen))]]
            chosen.extend(int(i) for i in take)
        unc_f1.append(score(np.array(chosen))[0])
    target = target_share * random_f1[-1]

    def reach(curve: list[float]) -> int | None:
        return next((m for m, f in zip(sizes, curve, strict=True) if f >= target), None)

    return Simulation(
        sizes,
        [round(f, 4) for f in random_f1],
        [round(f, 4) for f in unc_f1],
        round(target, 4),
        {"random": reach(random_f1), "uncertainty": reach(unc_f1)},
        seed,
    )
