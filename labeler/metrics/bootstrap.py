"""Percentile bootstrap over images (or whole cases): the resampling every interval shares.

A resample is a vector of counts, one per image: how many times the image was drawn. Figures that
are sums over images (F1 counts, squared errors, vote tables) take the counts as weights, so one
resample costs one weighted pass instead of a copy of the data. With case ids, whole cases are
drawn and every image of a drawn case gets its case's count, so no case is split (the rule for
intervals in the domain rules). The same seed gives the same resamples whatever the chunk a caller
asks for, so a paired comparison (model against raters) uses identical resamples on both sides.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 20261130
DEFAULT_LEVEL = 0.95
_BLOCK = 100  # resamples drawn per random stream: fixed, so the draws never depend on `chunk`


@dataclass(frozen=True)
class Interval:
    """A percentile interval with what is needed to reproduce it."""

    low: float | None
    high: float | None
    level: float
    resamples: int
    seed: int
    # resamples on which the figure was defined (a class or a pair can vanish from a resample): the
    # interval is conditional on those, so a reader is told how many were left out
    defined: int | None = None

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "low": self.low,
            "high": self.high,
            "level": self.level,
            "resamples": self.resamples,
            "defined_resamples": self.resamples if self.defined is None else self.defined,
            "seed": self.seed,
        }


def _unit_index(n_images: int, groups: np.ndarray | None) -> tuple[np.ndarray, int]:
    """Map each image to its resampling unit (its case, or itself)."""
    if groups is None:
        return np.arange(n_images), n_images
    groups = np.asarray(groups)
    if groups.shape != (n_images,):
        raise ValueError(f"groups must have one entry per image ({n_images}), got {groups.shape}")
    _, inverse = np.unique(groups, return_inverse=True)
    return inverse.reshape(-1), int(inverse.max()) + 1 if n_images else 0


def bootstrap_weights(
    n_images: int,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    groups: np.ndarray | None = None,
    chunk: int = 250,
) -> Iterator[np.ndarray]:
    """Yield (k, n_images) int32 count matrices, k <= chunk, `resamples` rows in all.

    `groups` holds a case id per image (any hashable dtype NumPy can sort); images sharing one are
    drawn together. Memory stays at chunk x n_images counts.
    """
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    if chunk < 1:
        raise ValueError("chunk must be at least 1")
    unit_of, n_units = _unit_index(n_images, groups)
    if n_units == 0:
        for start in range(0, resamples, chunk):
            yield np.zeros((min(chunk, resamples - start), 0), dtype=np.int32)
        return
    streams = np.random.SeedSequence(seed).spawn((resamples + _BLOCK - 1) // _BLOCK)
    pending: list[np.ndarray] = []
    have = 0
    for block, stream in enumerate(streams):
        rng = np.random.default_rng(stream)
        k = min(_BLOCK, resamples - block * _BLOCK)
        draws = rng.integers(0, n_units, size=(k, n_units))
        # One bincount over (resample, unit) cells: the same counts as np.add.at, ~20x faster.
        draws += (np.arange(k) * n_units)[:, None]
        counts = np.bincount(draws.reshape(-1), minlength=k * n_units).astype(np.int32)
        counts = counts.reshape(k, n_units)
        pending.append(counts if groups is None else counts[:, unit_of])
        have += k
        while have >= chunk or (have and block == len(streams) - 1):
            rows = np.concatenate(pending) if len(pending) > 1 else pending[0]
            yield rows[:chunk]
            rest = rows[chunk:]
            pending = [rest] if len(rest) else []
            have = len(rest)


def percentile_interval(
    values: np.ndarray,
    level: float = DEFAULT_LEVEL,
    seed: int = DEFAULT_SEED,
) -> Interval:
    """Percentile interval of bootstrap replicates; NaN replicates (figure undefined) are dropped."""
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    finite = arr[np.isfinite(arr)]
    if not 0 < level < 1:
        raise ValueError("level must lie strictly between 0 and 1")
    if finite.size == 0:
        return Interval(None, None, level, int(arr.size), seed, 0)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return Interval(float(low), float(high), level, int(arr.size), seed, int(finite.size))
