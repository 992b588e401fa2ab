"""Multi-rater reliability: Fleiss' kappa and Krippendorff's alpha, written with NumPy.

(The `krippendorff` package is GPL, so labeler/ never imports it; the tests compare against it.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from labeler.metrics._arrays import check_labels, class_votes, row_mask, row_sum

AlphaLevel = Literal["nominal", "ordinal", "interval"]


@dataclass(frozen=True)
class FleissKappa:
    """Fleiss' kappa over the images labeled by every selected rater."""

    kappa: float  # NaN when undefined (no complete image, < 2 raters, or one class only)
    n_images: int  # complete images used
    n_images_dropped: int  # selected images missing at least one selected rater's label
    n_raters: int


def fleiss_kappa(
    labels: np.ndarray,
    n_classes: int,
    *,
    golden: np.ndarray | None = None,
    raters: np.ndarray | None = None,
) -> FleissKappa:
    """Fleiss' kappa on (golden) images labeled by all (selected) raters; incomplete rows are dropped."""
    labels = check_labels(labels, n_classes)
    labels = labels[row_mask(golden, labels.shape[0])]
    if raters is not None:
        labels = labels[:, row_mask(raters, labels.shape[1])]
    complete = (labels >= 0).all(axis=1)
    rows = labels[complete]
    n_items, n_raters = rows.shape
    kappa = float("nan")
    if n_items and n_raters >= 2:
        votes = class_votes(rows, n_classes).astype(float)
        p_item = ((votes**2).sum(axis=1) - n_raters) / (n_raters * (n_raters - 1.0))
        p_class = votes.sum(axis=0) / (n_items * n_raters)
        p_exp = float((p_class**2).sum())
        if p_exp < 1.0:
            kappa = (float(p_item.mean()) - p_exp) / (1.0 - p_exp)
    return FleissKappa(
        kappa=kappa,
        n_images=int(n_items),
        n_images_dropped=int((~complete).sum()),
        n_raters=int(n_raters),
    )


@dataclass(frozen=True)
class KrippendorffAlpha:
    """Krippendorff's alpha with the pairable data behind it."""

    alpha: float  # NaN when undefined (no pairable image or a single value in use)
    level: str
    n_images: int  # images with at least two values (pairable)
    n_values: int  # values in pairable images


def _integral_counts(arr: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Counts per (image, value) by one bincount when values are integers in a narrow range."""
    n = arr.shape[0]
    if not ok.any():
        return np.zeros((n, 0), dtype=np.int64), np.zeros(0)
    if np.issubdtype(arr.dtype, np.floating):
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))  # no warning: a value exists
    else:
        hi = float(arr.max())
        lo = float(np.where(ok, arr, arr.max()).min())
    width = int(hi - lo) + 2  # column 0 collects the missing cells
    if width > 256:
        return None
    if np.issubdtype(arr.dtype, np.floating):
        shifted = np.fmax(arr - (lo - 1.0), 0.0)  # fmax maps the missing NaN cells to 0
        if not np.array_equal(shifted, np.rint(shifted)):
            return None
        shifted = shifted.astype(np.int64)
    else:
        shifted = np.where(ok, arr - (int(lo) - 1), 0)
    flat = (np.arange(n)[:, None] * width + shifted).reshape(-1)
    counts = np.bincount(flat, minlength=n * width).reshape(n, width)[:, 1:]
    present = counts.sum(axis=0) > 0
    return counts[:, present], (lo + np.arange(width - 1))[present]


def _value_counts(
    data: np.ndarray, value_domain: Sequence[float] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Return (counts per image and observed value, observed values ascending) from the data."""
    arr = np.asarray(data)
    if arr.ndim != 2:
        raise ValueError(f"data must be 2-D (n_images, n_raters), got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.integer):
        ok = arr >= 0
    elif np.issubdtype(arr.dtype, np.floating):
        ok = ~np.isnan(arr)
    else:
        raise ValueError("data must be int codes (-1 missing) or floats (NaN missing)")
    fast = _integral_counts(arr, ok)
    if fast is not None:
        counts, observed = fast
    else:
        rows, cols = np.nonzero(ok)
        observed, codes = np.unique(arr[rows, cols], return_inverse=True)
        v = observed.size
        counts = np.bincount(rows * v + codes, minlength=arr.shape[0] * v)
        counts = counts.reshape(arr.shape[0], v)
    if value_domain is not None:
        # Domain values nobody used have n_v = 0, so they change alpha at no level (the ordinal
        # distance sums n_v over the ranks in between): the domain is only checked here.
        domain = np.asarray(value_domain, dtype=float)
        if domain.ndim != 1 or np.any(np.diff(domain) <= 0):
            raise ValueError("value_domain must be strictly increasing")
        if not np.isin(observed, domain).all():
            raise ValueError("data contains values outside value_domain")
    return counts, observed.astype(float)


def _distance(level: str, domain: np.ndarray, n_v: np.ndarray) -> np.ndarray:
    """Squared distance delta^2 between every pair of domain values for the level of measurement."""
    if level == "nominal":
        return 1.0 - np.eye(domain.size)
    if level == "interval":
        return (domain[:, None] - domain[None, :]) ** 2
    if level == "ordinal":
        # delta(c, k) = (sum of n_g for g from c to k, minus (n_c + n_k) / 2) squared.
        lo = np.minimum.outer(np.arange(domain.size), np.arange(domain.size))
        hi = np.maximum.outer(np.arange(domain.size), np.arange(domain.size))
        cum = np.concatenate([[0.0], np.cumsum(n_v)])
        between = cum[hi + 1] - cum[lo]
        return (between - (n_v[lo] + n_v[hi]) / 2.0) ** 2
    raise ValueError(f"unknown level {level!r}")


def krippendorff_alpha(
    data: np.ndarray,
    level: AlphaLevel = "nominal",
    *,
    value_domain: Sequence[float] | None = None,
) -> KrippendorffAlpha:
    """Krippendorff's alpha over (n_images, n_raters) data: int codes (-1 missing) or floats (NaN)."""
    if level not in ("nominal", "ordinal", "interval"):
        raise ValueError(f"unknown level {level!r}; use 'nominal', 'ordinal' or 'interval'")
    counts, domain = _value_counts(data, value_domain)
    v = domain.size
    m_u = row_sum(counts)
    pairable = m_u >= 2
    c = counts[pairable].astype(float)
    inv = 1.0 / (m_u[pairable] - 1.0)
    # Coincidences o_ck = sum_u (n_uc n_uk - [c == k] n_uc) / (m_u - 1).
    o = (c * inv[:, None]).T @ c - np.diag(c.T @ inv)
    n_v = o.sum(axis=0)
    n_total = n_v.sum()
    alpha = float("nan")
    if v >= 2 and n_total > 1:
        d = _distance(level, domain, n_v)
        expected = float((np.outer(n_v, n_v) * d).sum())
        if expected > 0:
            alpha = 1.0 - (float(n_total) - 1.0) * float((o * d).sum()) / expected
    return KrippendorffAlpha(
        alpha=alpha, level=level, n_images=int(pairable.sum()), n_values=int(m_u[pairable].sum())
    )
