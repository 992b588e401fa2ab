"""Input checks and small array helpers shared by the metrics modules."""

from __future__ import annotations

import numpy as np


def check_labels(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Return `labels` as a 2-D int64 array after checking codes lie in -1..n_classes-1."""
    arr = np.asarray(labels)
    if arr.ndim != 2:
        raise ValueError(f"labels must be 2-D (n_images, n_raters), got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"labels must be integer codes, got dtype {arr.dtype}")
    if n_classes < 1:
        raise ValueError("n_classes must be at least 1")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < -1 or arr.max() >= n_classes):
        raise ValueError(f"labels must be -1 (missing) or a class code in 0..{n_classes - 1}")
    return arr


def labeled_mask(labeled: np.ndarray) -> np.ndarray:
    """Return a bool (n_images, n_raters) mask from a bool mask or an int label matrix (-1 = missing)."""
    arr = np.asarray(labeled)
    if arr.ndim != 2:
        raise ValueError(f"labeled must be 2-D (n_images, n_raters), got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError("labeled must be a bool mask or an int label matrix with -1 for missing")
    return arr >= 0


def count_dtype(n_images: int) -> type[np.floating]:
    """Float type whose matrix products count 0/1 indicators exactly over `n_images` images."""
    # float32 sums of 0/1 products are exact below 2**24; BLAS runs it about twice as fast.
    return np.float32 if n_images < 2**24 else np.float64


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Return one-hot votes (n_images, n_raters, n_classes) as floats; missing labels are all zero."""
    n, r = labels.shape
    out = np.zeros((n * r, n_classes), dtype=count_dtype(n))
    flat = labels.reshape(-1)
    rows = np.flatnonzero(flat >= 0)
    out[rows, flat[rows]] = 1.0
    return out.reshape(n, r, n_classes)


def class_votes(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Return int64 votes per class (n_images, n_classes) from a checked label matrix."""
    n = labels.shape[0]
    width = n_classes + 1  # column 0 collects the missing labels (-1)
    flat = (np.arange(n)[:, None] * width + (labels + 1)).reshape(-1)
    return np.bincount(flat, minlength=n * width).reshape(n, width)[:, 1:]


def row_sum(values: np.ndarray) -> np.ndarray:
    """Sum a 2-D array over its rows' few columns (a matrix product beats a short-axis reduce)."""
    return values @ np.ones(values.shape[1], dtype=values.dtype)


def row_count(mask: np.ndarray) -> np.ndarray:
    """Count True cells per row of a 2-D bool mask, as int64."""
    return np.rint(row_sum(mask.astype(np.float64))).astype(np.int64)


def row_mask(rows: np.ndarray | None, n_images: int) -> np.ndarray:
    """Return a bool (n_images,) mask from None (all rows), a bool mask or an index array."""
    if rows is None:
        return np.ones(n_images, dtype=bool)
    arr = np.asarray(rows)
    if arr.dtype == bool:
        if arr.shape != (n_images,):
            raise ValueError(f"row mask must have shape ({n_images},), got {arr.shape}")
        return arr
    mask = np.zeros(n_images, dtype=bool)
    mask[arr.astype(np.int64)] = True
    return mask


def safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Return num / den as float64, NaN where den == 0, without a RuntimeWarning."""
    num, den = np.broadcast_arrays(np.asarray(num, dtype=float), np.asarray(den, dtype=float))
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def mean_std(
    values: np.ndarray, axis: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (mean, population std with ddof=0, count) over non-NaN values; NaN where count is 0."""
    values = np.asarray(values, dtype=float)
    ok = ~np.isnan(values)
    count = ok.sum(axis=axis)
    filled = np.where(ok, values, 0.0)
    mean = safe_divide(filled.sum(axis=axis), count)
    centred = np.where(ok, values - (mean if axis is None else np.expand_dims(mean, axis)), 0.0)
    var = safe_divide((centred**2).sum(axis=axis), count)
    return mean, np.sqrt(var), count


def skinny_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b through einsum's own loops, for products whose result is tiny next to the reduction.

    On shapes like (9, 3000) @ (3000, 250) or (4, 36509) @ (36509, 48) OpenBLAS's threads cost
    more than they save and thrash on a busy machine (7x to 50x slower than one thread, measured
    on the shared 2-core host); einsum stays on one core. Wide products should keep using `@`.
    """
    return np.einsum("ij,jk->ik", a, b, optimize=False)
