"""Pairwise and per-rater agreement (docs/domain.md section 5): F1 per class and explanation, kappa.

All pairs are computed at once: one-hot votes (n_images, n_raters, C) are multiplied over images
into co-occurrence counts (n_raters, n_raters, C, C), from which every pair's F1 or kappa follows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from labeler.metrics._arrays import (
    check_labels,
    count_dtype,
    labeled_mask,
    mean_std,
    one_hot,
    row_mask,
    safe_divide,
)
from labeler.metrics.severity import DEFAULT_SCALE, grade_codes

KappaWeights = Literal["linear", "quadratic"] | None


@dataclass(frozen=True)
class PairwiseF1:
    """Pairwise inter-rater F1 per class (or explanation) and macro, with mean ± population std."""

    f1: np.ndarray  # (R, R, K) float: F1 of pair (a, b), NaN if undefined, left out or a == b
    mean: np.ndarray  # (K,) mean over distinct pairs with a defined F1
    std: np.ndarray  # (K,) population std (ddof=0) over the same pairs
    n_pairs: np.ndarray  # (K,) int: distinct pairs behind mean and std
    macro: np.ndarray  # (R, R) float: per pair, mean of its defined per-class F1s
    macro_mean: float
    macro_std: float  # population std (ddof=0)
    macro_n_pairs: int
    n_co_labeled: np.ndarray  # (R, R) int: images both raters labeled
    n_excluded_pairs: int  # distinct pairs left out for fewer than min_co_labeled images
    min_co_labeled: int


def co_occurrence(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Return counts (R, R, C, C): [a, b, c, d] = images where rater a chose c and rater b chose d."""
    labels = check_labels(labels, n_classes)
    n, r = labels.shape
    x = one_hot(labels, n_classes).reshape(n, r * n_classes)
    m = x.T @ x  # exact: see count_dtype
    return np.rint(m).astype(np.int64).reshape(r, n_classes, r, n_classes).transpose(0, 2, 1, 3)


def _pair_mask(n_co: np.ndarray, min_co_labeled: int) -> tuple[np.ndarray, int]:
    """Return the (R, R) mask of distinct pairs a < b kept, and how many were left out."""
    if min_co_labeled < 1:
        raise ValueError("min_co_labeled must be at least 1")
    upper = np.triu(np.ones(n_co.shape, dtype=bool), k=1)
    kept = upper & (n_co >= min_co_labeled)
    return kept, int(upper.sum() - kept.sum())


def _f1_from_counts(
    tp: np.ndarray, pos_a: np.ndarray, pos_b: np.ndarray, n_co: np.ndarray, min_co_labeled: int
) -> PairwiseF1:
    """Build PairwiseF1 from (R, R, K) true positives and each rater's positives on co-labeled images."""
    kept, n_excluded = _pair_mask(n_co, min_co_labeled)
    keep_sym = kept | kept.T
    # 2TP / (2TP + FP + FN) = 2TP / (positives of a + positives of b); undefined when both are 0.
    f1 = safe_divide(2.0 * tp, pos_a + pos_b)
    f1[~keep_sym] = np.nan
    mean, std, n_pairs = mean_std(f1[kept], axis=0)
    macro, _, _ = mean_std(f1, axis=2)
    m_mean, m_std, m_n = mean_std(macro[kept])
    return PairwiseF1(
        f1=f1,
        mean=mean,
        std=std,
        n_pairs=n_pairs,
        macro=macro,
        macro_mean=float(m_mean),
        macro_std=float(m_std),
        macro_n_pairs=int(m_n),
        n_co_labeled=n_co,
        n_excluded_pairs=n_excluded,
        min_co_labeled=min_co_labeled,
    )


def pairwise_f1(labels: np.ndarray, n_classes: int, *, min_co_labeled: int = 1) -> PairwiseF1:
    """One-vs-rest F1 per class for every rater pair on co-labeled images (b as reference)."""
    m = co_occurrence(labels, n_classes)
    tp = np.diagonal(m, axis1=2, axis2=3)  # (R, R, C)
    pos_a = m.sum(axis=3)  # a chose c, b labeled the image
    pos_b = m.sum(axis=2)  # b chose c, a labeled the image
    return _f1_from_counts(tp, pos_a, pos_b, m.sum(axis=(2, 3)), min_co_labeled)


def pairwise_explanation_f1(
    expl: np.ndarray, labeled: np.ndarray, *, min_co_labeled: int = 1
) -> PairwiseF1:
    """F1 per explanation for every rater pair on co-labeled images ("rater chose e" = positive)."""
    mask = labeled_mask(labeled)
    chosen = np.asarray(expl, dtype=bool)
    if chosen.ndim != 3 or chosen.shape[:2] != mask.shape:
        raise ValueError(f"expl must have shape {mask.shape + ('n_expl',)}, got {chosen.shape}")
    dtype = count_dtype(mask.shape[0])
    lab = mask.astype(dtype)
    n_co = np.rint(lab.T @ lab).astype(np.int64)
    # Only images where someone chose an explanation add to TP or positives; usually a minority.
    n, r, e = chosen.shape
    rows = np.flatnonzero(chosen.reshape(n, r * e).any(axis=1))
    # (E, R, rows) with images last and contiguous, so each explanation is one BLAS product.
    y_t = np.ascontiguousarray(chosen[rows].transpose(2, 1, 0)) & mask[rows].T[None]
    y_t = y_t.astype(dtype)
    tp = np.rint(y_t @ y_t.transpose(0, 2, 1)).transpose(1, 2, 0)  # (R, R, E)
    pos_a = np.rint(y_t @ lab[rows]).transpose(1, 2, 0)  # a chose e on images b labeled
    pos_b = pos_a.transpose(1, 0, 2)
    return _f1_from_counts(tp, pos_a, pos_b, n_co, min_co_labeled)


@dataclass(frozen=True)
class PairwiseKappa:
    """Cohen's kappa for every rater pair on co-labeled images, with mean ± population std."""

    kappa: (
        np.ndarray
    )  # (R, R) float, NaN if undefined (chance agreement is total), left out or a == b
    mean: float
    std: float  # population std (ddof=0) over distinct pairs with a defined kappa
    n_pairs: int
    n_co_labeled: np.ndarray  # (R, R) int
    n_excluded_pairs: int  # distinct pairs left out for fewer than min_co_labeled images
    weights: str | None


def _kappa_weights(n_classes: int, weights: KappaWeights) -> np.ndarray:
    """Disagreement weights by category index, as scikit-learn's cohen_kappa_score."""
    idx = np.arange(n_classes, dtype=float)
    diff = idx[:, None] - idx[None, :]
    if weights is None:
        return (diff != 0).astype(float)
    if weights == "linear":
        return np.abs(diff)
    if weights == "quadratic":
        return diff**2
    raise ValueError(f"unknown weights {weights!r}; use None, 'linear' or 'quadratic'")


def pairwise_kappa(
    labels: np.ndarray,
    n_classes: int,
    *,
    weights: KappaWeights = None,
    min_co_labeled: int = 1,
) -> PairwiseKappa:
    """Cohen's kappa for every rater pair on co-labeled images; weights by category index."""
    w = _kappa_weights(n_classes, weights)
    m = co_occurrence(labels, n_classes).astype(float)
    n_co = m.sum(axis=(2, 3))
    row = m.sum(axis=3)  # (R, R, C): a's marginals on co-labeled images
    col = m.sum(axis=2)  # (R, R, C): b's marginals
    observed = np.einsum("abcd,cd->ab", m, w)
    expected = safe_divide(np.einsum("abc,abd,cd->ab", row, col, w), n_co)
    expected = np.nan_to_num(expected, nan=0.0)
    kappa = 1.0 - safe_divide(observed, expected)
    kept, n_excluded = _pair_mask(n_co, min_co_labeled)
    kappa[~(kept | kept.T)] = np.nan
    mean, std, n_pairs = mean_std(kappa[kept])
    return PairwiseKappa(
        kappa=kappa,
        mean=float(mean),
        std=float(std),
        n_pairs=int(n_pairs),
        n_co_labeled=np.rint(n_co).astype(np.int64),
        n_excluded_pairs=n_excluded,
        weights=weights,
    )


def pairwise_severity_kappa(
    grades: np.ndarray, scale: Sequence[float] = DEFAULT_SCALE, *, min_co_labeled: int = 1
) -> PairwiseKappa:
    """Quadratic-weighted Cohen's kappa per rater pair on co-graded images (NaN = not graded)."""
    codes = grade_codes(grades, scale)
    return pairwise_kappa(codes, len(scale), weights="quadratic", min_co_labeled=min_co_labeled)


@dataclass(frozen=True)
class RaterVsFused:
    """Each rater against the fused class: confusion, per-class F1 and macro F1."""

    confusion: np.ndarray  # (R, C, C) int: [r, fused class, rater's class]
    f1: np.ndarray  # (R, C) float, NaN where the class is in neither the rater's nor fused labels
    macro_f1: np.ndarray  # (R,) float: mean of the rater's defined per-class F1s
    n_images: np.ndarray  # (R,) int: images compared (rater labeled, fused class defined)


def rater_vs_fused(
    labels: np.ndarray, fused: np.ndarray, n_classes: int, golden: np.ndarray | None = None
) -> RaterVsFused:
    """Compare each rater to fused classes (-1 = left out; pass QualityFusion.plurality to drop ties)."""
    labels = check_labels(labels, n_classes)
    n, r = labels.shape
    ref = np.asarray(fused)
    if ref.shape != (n,) or (ref.size and not np.issubdtype(ref.dtype, np.integer)):
        raise ValueError(f"fused must be an int array of shape ({n},)")
    if ref.size and (ref.min() < -1 or ref.max() >= n_classes):
        raise ValueError(f"fused must be -1 or a class code in 0..{n_classes - 1}")
    use = (ref >= 0) & row_mask(golden, n)
    dtype = count_dtype(n)
    ref_hot = np.zeros((n, n_classes), dtype=dtype)
    ref_hot[np.flatnonzero(use), ref[use]] = 1.0
    # confusion[r, c, d] = images with fused class c that rater r labeled d: one matrix product.
    counts = ref_hot.T @ one_hot(labels, n_classes).reshape(n, r * n_classes)
    confusion = np.rint(counts).astype(np.int64).reshape(n_classes, r, n_classes).transpose(1, 0, 2)
    tp = np.diagonal(confusion, axis1=1, axis2=2)
    f1 = safe_divide(2.0 * tp, confusion.sum(axis=1) + confusion.sum(axis=2))
    macro, _, _ = mean_std(f1, axis=1)
    return RaterVsFused(
        confusion=confusion, f1=f1, macro_f1=macro, n_images=confusion.sum(axis=(1, 2))
    )
