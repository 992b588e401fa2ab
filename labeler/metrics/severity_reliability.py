"""Severity reliability: intraclass correlation (Shrout and Fleiss) and per-rater mean absolute error.

Shrout and Fleiss 1979, "Intraclass correlations: uses in assessing rater reliability":
ICC(2,1), two-way random effects, absolute agreement, single rater; ICC(3,1), two-way mixed
effects, consistency, single rater. Both come from the two-way ANOVA mean squares of a complete
images x raters table, so only complete cases are used: images every selected rater graded.
Images with a missing grade are left out and counted (no imputation).

Intervals: percentile bootstrap over images (whole cases where images carry a case id) with the
shared resampling of labeler.metrics.bootstrap. Every sum of squares is a weighted sum over images,
so a block of resamples is a few matrix products.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labeler.metrics._arrays import row_mask, safe_divide
from labeler.metrics.bootstrap import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    Interval,
    bootstrap_weights,
    percentile_interval,
)
from labeler.metrics.severity import check_grades


@dataclass(frozen=True)
class ICC:
    """ICC(2,1) and ICC(3,1) on complete cases, with percentile bootstrap intervals."""

    icc2: float  # NaN when undefined (< 2 complete images, < 2 raters, or no variance)
    icc3: float
    icc2_interval: Interval | None
    icc3_interval: Interval | None
    n_images: int  # complete images used
    n_images_dropped: int  # selected images graded by some but not all selected raters
    n_raters: int


def _icc_from_sums(
    n: np.ndarray, s1: np.ndarray, s2: np.ndarray, col: np.ndarray, sq: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """ICC(2,1), ICC(3,1) from weighted sums: images n, sum of row sums s1, of squared row sums s2,
    column sums col (.., k) and sum of squares sq."""
    grand = s1 / (n * k)
    ss_rows = s2 / k - n * k * grand**2
    ss_cols = (col**2).sum(axis=-1) / n - n * k * grand**2
    ss_total = sq - n * k * grand**2
    ss_err = ss_total - ss_rows - ss_cols
    ms_r = safe_divide(ss_rows, n - 1)
    ms_c = ss_cols / (k - 1)
    ms_e = safe_divide(ss_err, (n - 1) * (k - 1))
    icc2 = safe_divide(ms_r - ms_e, ms_r + (k - 1) * ms_e + k * (ms_c - ms_e) / n)
    icc3 = safe_divide(ms_r - ms_e, ms_r + (k - 1) * ms_e)
    small = n < 2
    return np.where(small, np.nan, icc2), np.where(small, np.nan, icc3)


def intraclass_correlation(
    grades: np.ndarray,
    *,
    rows: np.ndarray | None = None,
    raters: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
) -> ICC:
    """ICC(2,1) and ICC(3,1) over the images (rows) every selected rater graded (NaN = missing).

    `groups` (a case id per image, over all images) makes the bootstrap draw whole cases;
    resamples=0 skips the intervals.
    """
    g = check_grades(grades)
    sel = row_mask(rows, g.shape[0])
    g = g[:, row_mask(raters, g.shape[1])]
    graded = ~np.isnan(g)
    complete = sel & graded.all(axis=1)
    dropped = int((sel & graded.any(axis=1) & ~complete).sum())
    k = g.shape[1]
    y = g[complete]
    n = y.shape[0]
    icc2 = icc3 = float("nan")
    iv2 = iv3 = None
    if k >= 2 and n >= 2:
        rs = y.sum(axis=1)
        one = np.ones(n)
        a2, a3 = _icc_from_sums(np.float64(n), rs.sum(), rs @ rs, one @ y, float((y * y).sum()), k)
        icc2, icc3 = float(a2), float(a3)
        if resamples:
            feats = np.column_stack([one, rs, rs * rs, (y * y).sum(axis=1), y])  # (n, 4 + k)
            g_sub = None if groups is None else np.asarray(groups)[complete]
            reps2, reps3 = [], []
            for w in bootstrap_weights(n, resamples, seed, groups=g_sub):
                s = w.astype(np.float64) @ feats
                r2, r3 = _icc_from_sums(s[:, 0], s[:, 1], s[:, 2], s[:, 4:], s[:, 3], k)
                reps2.append(r2)
                reps3.append(r3)
            iv2 = percentile_interval(np.concatenate(reps2), level, seed)
            iv3 = percentile_interval(np.concatenate(reps3), level, seed)
    return ICC(
        icc2=icc2,
        icc3=icc3,
        icc2_interval=iv2,
        icc3_interval=iv3,
        n_images=int(n),
        n_images_dropped=dropped,
        n_raters=int(k),
    )


@dataclass(frozen=True)
class RaterMAE:
    """Per-rater mean absolute error against the consensus, beside the acne severity study's RMSE."""

    mae: np.ndarray  # (R,) float: consensus includes the rater (as the seed's RMSE)
    mae_loo: np.ndarray  # (R,) float: consensus of the other raters only
    n_images: np.ndarray  # (R,) int
    intervals: list[Interval | None]  # per rater, for `mae`


def rater_mae(
    grades: np.ndarray,
    golden: np.ndarray | None = None,
    *,
    groups: np.ndarray | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
) -> RaterMAE:
    """MAE_i = mean over golden images k rater i graded of |y_ik - consensus_k| (mean of all grades)."""
    g = check_grades(grades)
    sel = row_mask(golden, g.shape[0])
    g = g[sel]
    ok = ~np.isnan(g)
    y = np.where(ok, g, 0.0)
    count = ok.sum(axis=1, keepdims=True)
    total = y.sum(axis=1, keepdims=True)
    consensus = safe_divide(total, count)
    err = np.where(ok, np.abs(y - np.where(ok, consensus, 0.0)), 0.0)
    n_img = ok.sum(axis=0)
    mae = safe_divide(err.sum(axis=0), n_img)
    others = count - ok
    loo_ok = ok & (others > 0)
    loo_cons = safe_divide(total - y, others)
    err_loo = np.where(loo_ok, np.abs(y - np.where(loo_ok, loo_cons, 0.0)), 0.0)
    mae_loo = safe_divide(err_loo.sum(axis=0), loo_ok.sum(axis=0))
    intervals: list[Interval | None] = [None] * g.shape[1]
    if resamples and g.shape[0]:
        g_sub = None if groups is None else np.asarray(groups)[sel]
        okf = ok.astype(np.float64)
        reps = []
        for w in bootstrap_weights(g.shape[0], resamples, seed, groups=g_sub):
            wf = w.astype(np.float64)
            reps.append(safe_divide(wf @ err, wf @ okf))
        all_reps = np.concatenate(reps)
        intervals = [percentile_interval(all_reps[:, j], level, seed) for j in range(g.shape[1])]
    return RaterMAE(mae=mae, mae_loo=mae_loo, n_images=n_img, intervals=intervals)
