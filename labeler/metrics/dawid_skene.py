"""Probabilistic fusion: Dawid and Skene's EM over per-rater confusion matrices.

Dawid and Skene 1979, "Maximum likelihood estimation of observer error-rates using the EM
algorithm". Each rater r has a confusion matrix pi[r, c, l] = P(rater says l | true class c); the
classes have prior p[c]. EM alternates: E-step, each image's posterior over true classes given its
votes; M-step, priors and confusion matrices from the posteriors. The start is the soft majority
vote (each image's vote shares), as in the paper.

A Dirichlet prior on each row of each confusion matrix (the M-step is then a MAP estimate) keeps a
rater with few labels from getting a degenerate matrix of zeros and ones, which would let a single
vote overrule a whole panel. The prior adds `smoothing` pseudo-labels per row, spread as a rater
who is right with probability `prior_accuracy` (default 0.7) and otherwise picks any other class:
with little data a rater reads as "probably right" (so fusion stays close to the vote) rather than
as uninformative (a uniform prior would hand the decision to the class prevalence). The class
prevalence gets `smoothing` / C pseudo-counts per class. smoothing=0 gives the plain
maximum-likelihood EM of the paper.

Vectorized: the votes are one (n_images, n_raters * n_classes) one-hot matrix, so the E-step and
the M-step are one matrix product each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labeler.metrics._arrays import (
    check_labels,
    class_votes,
    one_hot,
    safe_divide,
    skinny_product,
)

DEFAULT_SMOOTHING = 2.0  # pseudo-labels per confusion row: negligible next to a few dozen labels
DEFAULT_PRIOR_ACCURACY = 0.7
DEFAULT_MAX_ITER = 200
DEFAULT_TOL = 1e-7
_FLOOR = 1e-10  # log of an exact zero (smoothing=0) is clipped to this probability


@dataclass(frozen=True)
class DawidSkeneFusion:
    """Posterior per image and the estimated confusion matrix of every rater."""

    posterior: np.ndarray  # (n_images, C) float: P(true class | votes); NaN rows for unlabeled
    fused: np.ndarray  # (n_images,) int: most probable class; -1 unlabeled or exact posterior tie
    confidence: np.ndarray  # (n_images,) float: the posterior of the fused class (NaN if none)
    confusion: np.ndarray  # (R, C, C) float: [rater, true class, rater's class], rows sum to 1
    prior: np.ndarray  # (C,) float: estimated class prevalence
    n_labels: np.ndarray  # (R,) int: labels behind each rater's matrix
    n_iter: int
    converged: bool
    log_likelihood: float  # observed-data log-likelihood (plus the log prior when smoothing > 0)
    smoothing: float
    prior_accuracy: float


def _log(x: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(x, _FLOOR))


def _pseudo_counts(c: int, smoothing: float, prior_accuracy: float) -> np.ndarray:
    """(C, C) Dirichlet pseudo-counts of a confusion matrix: `smoothing` per row."""
    if c == 1:
        return np.full((1, 1), smoothing)
    off = smoothing * (1.0 - prior_accuracy) / (c - 1)
    return np.where(np.eye(c, dtype=bool), smoothing * prior_accuracy, off)


def _m_step(
    x: np.ndarray,
    t: np.ndarray,
    n_raters: int,
    smoothing: float,
    prior_accuracy: float = DEFAULT_PRIOR_ACCURACY,
) -> tuple[np.ndarray, np.ndarray]:
    """Confusion matrices [rater, true, said] and class prior from one-hot votes and posteriors."""
    c = t.shape[1]
    counts = skinny_product(t.T, x).reshape(c, n_raters, c).transpose(1, 0, 2)
    counts = counts + _pseudo_counts(c, smoothing, prior_accuracy)[None]
    confusion = safe_divide(counts, counts.sum(axis=2, keepdims=True))
    confusion = np.nan_to_num(confusion, nan=1.0 / c)  # a true class with no evidence: uniform
    prior = t.sum(axis=0) + smoothing / c
    return confusion, prior / prior.sum()


def _e_step(x: np.ndarray, confusion: np.ndarray, prior: np.ndarray) -> tuple[np.ndarray, float]:
    """Posteriors over true classes from one-hot votes (m, R*C), and the log-likelihood."""
    r, c, _ = confusion.shape
    log_pi = _log(confusion).transpose(0, 2, 1).reshape(r * c, c)  # [(rater, said), true]
    log_joint = skinny_product(x, log_pi) + _log(prior)[None, :]
    top = log_joint.max(axis=1, keepdims=True)
    e = np.exp(log_joint - top)
    total = e.sum(axis=1, keepdims=True)
    return e / total, float((top[:, 0] + np.log(total[:, 0])).sum())


def dawid_skene(
    labels: np.ndarray,
    n_classes: int,
    *,
    smoothing: float = DEFAULT_SMOOTHING,
    prior_accuracy: float = DEFAULT_PRIOR_ACCURACY,
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = DEFAULT_TOL,
) -> DawidSkeneFusion:
    """Fuse class labels (n_images, n_raters; -1 missing) by Dawid-Skene EM from the majority vote."""
    labels = check_labels(labels, n_classes)
    if smoothing < 0:
        raise ValueError("smoothing must be >= 0")
    if not 0 < prior_accuracy < 1:
        raise ValueError("prior_accuracy must lie strictly between 0 and 1")
    if max_iter < 1:
        raise ValueError("max_iter must be at least 1")
    n, r = labels.shape
    c = n_classes
    votes = class_votes(labels, c).astype(np.float64)
    n_votes = votes.sum(axis=1)
    has = n_votes > 0
    x = one_hot(labels[has], c).reshape(-1, r * c).astype(np.float64)  # (m, R*C)
    t = votes[has] / n_votes[has, None]  # start: soft majority vote (vote shares)

    confusion, prior = _m_step(x, t, r, smoothing, prior_accuracy)
    loglik = -np.inf
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        t, new = _e_step(x, confusion, prior)
        confusion, prior = _m_step(x, t, r, smoothing, prior_accuracy)
        if smoothing > 0:  # MAP: the objective includes the Dirichlet log density
            pseudo = _pseudo_counts(c, smoothing, prior_accuracy)
            new += float((pseudo[None] * _log(confusion)).sum())
            new += float(smoothing / c * _log(prior).sum())
        if abs(new - loglik) <= tol * max(1.0, abs(new)):
            converged = True
            loglik = new
            break
        loglik = new

    posterior = np.full((n, c), np.nan)
    posterior[has] = t
    fused = np.full(n, -1, dtype=np.int64)
    confidence = np.full(n, np.nan)
    if has.any():
        best = t.max(axis=1)
        n_best = (t >= best[:, None] - 1e-12).sum(axis=1)
        idx = np.flatnonzero(has)
        fused[idx] = np.where(n_best == 1, t.argmax(axis=1), -1)
        confidence[idx] = best
    return DawidSkeneFusion(
        posterior=posterior,
        fused=fused,
        confidence=confidence,
        confusion=confusion,
        prior=prior,
        n_labels=(labels >= 0).sum(axis=0),
        n_iter=n_iter,
        converged=converged,
        log_likelihood=loglik,
        smoothing=float(smoothing),
        prior_accuracy=float(prior_accuracy),
    )
