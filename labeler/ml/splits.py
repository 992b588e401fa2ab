"""Splits grouped by case: no case (and so no augmented copy of an image) on both sides."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def group_split(
    groups: Sequence[str], val_fraction: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation): whole groups go to validation until it holds the fraction.

    Augmented copies are generated after the split from the training indices only, so they stay
    on the side of their source image.
    """
    groups = list(groups)
    uniq = sorted(set(groups))
    if len(uniq) < 2:
        raise ValueError("a grouped split needs at least two cases")
    order = np.random.default_rng(seed).permutation(len(uniq))
    target = max(1, round(val_fraction * len(groups)))
    sizes: dict[str, int] = {}
    for g in groups:
        sizes[g] = sizes.get(g, 0) + 1
    val_groups: set[str] = set()
    count = 0
    for i in order:
        if count >= target or len(val_groups) == len(uniq) - 1:
            break
        val_groups.add(uniq[i])
        count += sizes[uniq[i]]
    is_val = np.array([g in val_groups for g in groups])
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def assert_grouped(groups: Sequence[str], a: np.ndarray, b: np.ndarray) -> None:
    """Raise if a group has members on both sides."""
    shared = {groups[i] for i in a} & {groups[i] for i in b}
    if shared:
        raise AssertionError(f"groups on both sides of the split: {sorted(shared)[:5]}")
