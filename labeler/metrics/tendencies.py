"""Rater tendencies: how often each rater chooses a class or an explanation, against the panel.

For rater j and category c, on the images j labeled that at least one other rater also labeled:
  rater rate  = mean over those images of [j chose c]
  panel rate  = mean over those images of the share of the other raters' labels that chose c
  difference  = rater rate - panel rate
Each image counts once on both sides, so a positive difference means j calls c more often than
colleagues do on the very same images (over-calls "blurry"), a negative one that j avoids it.
Intervals: percentile bootstrap over images (whole cases with case ids), the shared resampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labeler.metrics._arrays import labeled_mask, row_mask, safe_divide
from labeler.metrics.bootstrap import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    Interval,
    bootstrap_weights,
    percentile_interval,
)


@dataclass(frozen=True)
class Tendencies:
    """Per rater and category: own rate, panel rate on the same images, difference and interval."""

    rate: np.ndarray  # (R, K) float, NaN where the rater has no co-labeled image
    panel_rate: np.ndarray  # (R, K) float
    difference: np.ndarray  # (R, K) float
    low: np.ndarray  # (R, K) float: interval of the difference, NaN when undefined
    high: np.ndarray  # (R, K) float
    n_images: np.ndarray  # (R,) int: co-labeled images behind the rater's rates
    interval: Interval | None  # level, resamples and seed shared by every low/high (None if B=0)


def rater_tendencies(
    chosen: np.ndarray,
    labeled: np.ndarray,
    *,
    rows: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
) -> Tendencies:
    """Tendencies from `chosen` (n_images, n_raters, K) bool over labeled cells (n_images, n_raters).

    For classes pass one-hot votes; for explanations the explanation flags. resamples=0: no interval.
    """
    mask = labeled_mask(labeled)
    x = np.asarray(chosen, dtype=bool)
    if x.ndim != 3 or x.shape[:2] != mask.shape:
        raise ValueError(f"chosen must have shape {mask.shape + ('K',)}, got {x.shape}")
    sel = row_mask(rows, mask.shape[0])
    n_lab = mask.sum(axis=1)
    keep = sel & (n_lab >= 2)  # only images with a panel to compare against
    mask, x, n_lab = mask[keep], x[keep] & mask[keep][:, :, None], n_lab[keep]
    n, r, k = x.shape
    xf = x.astype(np.float64)
    total = xf.sum(axis=1, keepdims=True)  # (n, 1, K): raters who chose c
    others = (n_lab[:, None] - mask)[:, :, None]  # (n, R, 1): other raters on the image
    share = safe_divide(total - xf, np.where(mask[:, :, None], others, 0))
    share = np.nan_to_num(share)  # cells the rater did not label carry no weight
    use = mask.astype(np.float64)  # (n, R)
    own = xf.reshape(n, r * k)
    panel = share.reshape(n, r * k)
    den = use.sum(axis=0)[:, None]
    rate = safe_divide(own.sum(axis=0).reshape(r, k), den)
    panel_rate = safe_divide(panel.sum(axis=0).reshape(r, k), den)
    low = np.full((r, k), np.nan)
    high = np.full((r, k), np.nan)
    interval = None
    if resamples and n:
        # Resamples need only the difference: one product for its numerator, one for the counts.
        # float32 halves the cost; its rounding (1e-7 relative) is far below any interval's width.
        diff_feat = (own - panel).astype(np.float32)
        use32 = use.astype(np.float32)
        g_sub = None if groups is None else np.asarray(groups)[keep]
        reps = []
        for w in bootstrap_weights(n, resamples, seed, groups=g_sub):
            w32 = w.astype(np.float32)
            num = (w32 @ diff_feat).reshape(-1, r, k)
            reps.append(safe_divide(num, (w32 @ use32)[:, :, None]))
        diff = np.concatenate(reps).reshape(-1, r * k)
        ok = np.isfinite(diff)
        tail = (1 - level) / 2 * 100
        for col in np.flatnonzero(ok.any(axis=0)):
            lo, hi = np.percentile(diff[ok[:, col], col], [tail, 100 - tail])
            low.flat[col], high.flat[col] = lo, hi
        interval = percentile_interval(diff[:, 0], level, seed)  # carries level, B and seed
    return Tendencies(
        rate=rate,
        panel_rate=panel_rate,
        difference=rate - panel_rate,
        low=low,
        high=high,
        n_images=mask.sum(axis=0),
        interval=interval,
    )
