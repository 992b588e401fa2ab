"""Severity grades: per-image consensus, per-rater RMSE against consensus, grade codes.

Grades are a float matrix (n_images, n_raters) with NaN for "no numeric grade" (not graded, or a
non-graded answer such as "not acne", which docs/domain.md keeps out of numeric metrics).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from labeler.metrics._arrays import row_count, row_mask, row_sum, safe_divide

DEFAULT_EDGES: tuple[float, ...] = (1.5, 2.5, 3.5, 4.5)
DEFAULT_SCALE: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0, 5.0)


def scale_edges(scale: Sequence[float] = DEFAULT_SCALE) -> tuple[float, ...]:
    """Discretization edges of a grading scale: the midpoints between consecutive scale values."""
    arr = check_scale(scale)
    return tuple(((arr[:-1] + arr[1:]) / 2.0).tolist())


def check_scale(scale: Sequence[float]) -> np.ndarray:
    """Return the scale as a float array after checking it is non-empty and strictly increasing."""
    arr = np.asarray(scale, dtype=float)
    if arr.ndim != 1 or arr.size == 0 or np.any(np.diff(arr) <= 0) or np.isnan(arr).any():
        raise ValueError("scale must be a non-empty, strictly increasing sequence of grades")
    return arr


def check_grades(grades: np.ndarray) -> np.ndarray:
    """Return `grades` as a 2-D float64 array (NaN = missing) after checking its shape."""
    arr = np.asarray(grades, dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"grades must be 2-D (n_images, n_raters), got shape {arr.shape}")
    if np.isinf(arr).any():
        raise ValueError("grades must be finite or NaN")
    return arr


@dataclass(frozen=True)
class SeverityConsensus:
    """Per-image consensus grade (mean, as in the acne severity study) with median, spread, count and grade."""

    mean: np.ndarray  # (n_images,) float, NaN where no rater graded
    median: np.ndarray  # (n_images,) float, NaN where no rater graded
    std: np.ndarray  # (n_images,) float: population std (ddof=0), NaN where no rater graded
    count: np.ndarray  # (n_images,) int: raters who graded the image
    grade: np.ndarray  # (n_images,) int: discretized mean as a 1-based scale position, -1 if none
    edges: tuple[float, ...]
    value: np.ndarray  # (n_images,) float: the scale value of `grade`, NaN where no rater graded


def severity_consensus(
    grades: np.ndarray,
    scale: Sequence[float] = DEFAULT_SCALE,
    *,
    edges: Sequence[float] | None = None,
) -> SeverityConsensus:
    """Mean, median, population std (ddof=0), count; grade = 1 + digitize(mean, edges, right=False).

    The edges are the midpoints of the project's scale unless given (docs/domain.md section 4).
    """
    g = check_grades(grades)
    scale_arr = check_scale(scale)
    edge_arr = np.asarray(scale_edges(scale) if edges is None else edges, dtype=float)
    if edge_arr.ndim != 1 or np.any(np.diff(edge_arr) <= 0):
        raise ValueError("edges must be strictly increasing")
    if edges is not None and edge_arr.size != scale_arr.size - 1:
        scale_arr = 1.0 + np.arange(edge_arr.size + 1)  # explicit edges: grades are positions
    ok = ~np.isnan(g)
    count = row_count(ok)
    mean = safe_divide(row_sum(np.where(ok, g, 0.0)), count)
    centred = np.where(ok, g - mean[:, None], 0.0)
    std = np.sqrt(safe_divide(row_sum(centred * centred), count))

    # Median without nanmedian's all-NaN warning: NaN sorts last, so the valid grades lead each row.
    srt = np.sort(g, axis=1)
    has = count > 0
    lo = np.where(has, (count - 1) // 2, 0)
    hi = np.where(has, count // 2, 0)
    rows = np.arange(g.shape[0])
    median = np.where(has, (srt[rows, lo] + srt[rows, hi]) / 2.0, np.nan) if g.shape[1] else mean

    # right=False: a mean exactly on an edge goes up (1.5 -> 2, 2.5 -> 3), i.e. round half up.
    grade = np.where(has, 1 + np.digitize(np.where(has, mean, 0.0), edge_arr, right=False), -1)
    value = np.where(has, scale_arr[np.maximum(grade - 1, 0)], np.nan)
    return SeverityConsensus(
        mean=mean,
        median=median,
        std=std,
        count=count,
        grade=grade,
        edges=tuple(edge_arr.tolist()),
        value=value,
    )


@dataclass(frozen=True)
class RaterRMSE:
    """Per-rater RMSE against the golden-set consensus (the Microsoft/Nestlé acne severity study) and its leave-one-out variant."""

    rmse: np.ndarray  # (n_raters,) float: consensus includes the rater (the seed's definition)
    rmse_loo: np.ndarray  # (n_raters,) float: consensus of the other raters only
    n_images: np.ndarray  # (n_raters,) int: golden images the rater graded
    n_images_loo: np.ndarray  # (n_raters,) int: of those, images some other rater also graded
    bar: float  # largest rater RMSE (the model's performance bar), NaN if none
    bar_rater: int  # rater index holding the bar, -1 if none
    bar_loo: float  # largest leave-one-out RMSE, NaN if none


def rater_rmse(grades: np.ndarray, golden: np.ndarray | None = None) -> RaterRMSE:
    """RMSE_i = sqrt(mean_k (y_ik - consensus_k)^2) over golden images k that rater i graded."""
    g = check_grades(grades)
    g = g[row_mask(golden, g.shape[0])]
    ok = ~np.isnan(g)
    y = np.where(ok, g, 0.0)
    count = ok.sum(axis=1, keepdims=True)
    total = y.sum(axis=1, keepdims=True)

    consensus = safe_divide(total, count)  # includes the rater, as in the seed
    sq = np.where(ok, (y - np.where(ok, consensus, 0.0)) ** 2, 0.0)
    n_images = ok.sum(axis=0)
    rmse = np.sqrt(safe_divide(sq.sum(axis=0), n_images))

    # Leave-one-out: consensus_k without rater i; images nobody else graded are left out.
    others = count - ok
    loo_ok = ok & (others > 0)
    loo_cons = safe_divide(total - y, others)
    sq_loo = np.where(loo_ok, (y - np.where(loo_ok, loo_cons, 0.0)) ** 2, 0.0)
    n_loo = loo_ok.sum(axis=0)
    rmse_loo = np.sqrt(safe_divide(sq_loo.sum(axis=0), n_loo))

    has = ~np.isnan(rmse)
    bar_rater = int(np.argmax(np.where(has, rmse, -np.inf))) if has.any() else -1
    bar = float(rmse[bar_rater]) if bar_rater >= 0 else float("nan")
    has_loo = ~np.isnan(rmse_loo)
    bar_loo = float(np.max(rmse_loo[has_loo])) if has_loo.any() else float("nan")
    return RaterRMSE(
        rmse=rmse,
        rmse_loo=rmse_loo,
        n_images=n_images,
        n_images_loo=n_loo,
        bar=bar,
        bar_rater=bar_rater,
        bar_loo=bar_loo,
    )


def grade_codes(grades: np.ndarray, scale: Sequence[float] = DEFAULT_SCALE) -> np.ndarray:
    """Map grades to int codes 0..len(scale)-1 by position on the scale; NaN -> -1; off-scale raises."""
    g = check_grades(grades)
    scale_arr = check_scale(scale)
    step = scale_arr[0] + np.arange(scale_arr.size)
    if np.array_equal(scale_arr, step):  # consecutive integers (the usual 1..5): plain arithmetic
        idx = g - scale_arr[0]  # NaN stays NaN, and NaN fails every comparison below
        on_scale = (idx == np.rint(idx)) & (idx >= 0) & (idx < scale_arr.size)
        if np.count_nonzero(on_scale) != np.count_nonzero(~np.isnan(g)):
            raise ValueError(f"grades must be NaN or one of the scale values {scale_arr.tolist()}")
        return np.fmax(idx, -1.0).astype(np.int64)  # fmax turns NaN into -1
    ok = ~np.isnan(g)
    idx = np.minimum(np.searchsorted(scale_arr, np.where(ok, g, scale_arr[0])), scale_arr.size - 1)
    if np.any(ok & (scale_arr[idx] != g)):
        raise ValueError(f"grades must be NaN or one of the scale values {scale_arr.tolist()}")
    return np.where(ok, idx, -1).astype(np.int64)
