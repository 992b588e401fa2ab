"""Pure allocation planning: golden set, folds with overlap r, and each rater's queue order.

No database and no Flask: plain ids in, an ``AllocationPlan`` out. Everything random comes from
one ``random.Random(seed)`` consumed in a fixed order, so the same inputs and seed give the same plan.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..errors import ValidationError

Unit = tuple[int, ...]
"""Images that must stay together: one case (patient), or a single image without a case."""


@dataclass(frozen=True)
class AllocationPlan:
    """The outcome of planning; rater ids are the keys of ``folds`` and ``queues``."""

    seed: int
    overlap: int
    image_count: int
    golden: tuple[int, ...]
    folds: dict[int, tuple[int, ...]]
    queues: dict[int, tuple[int, ...]]

    @property
    def fold_sizes(self) -> dict[int, int]:
        return {rater: len(ids) for rater, ids in self.folds.items()}

    @property
    def items_per_rater(self) -> dict[int, int]:
        return {rater: len(ids) for rater, ids in self.queues.items()}

    @property
    def golden_share(self) -> float:
        """Share of the project's images that are golden."""
        return len(self.golden) / self.image_count if self.image_count else 0.0


def group_units(images: Mapping[int, str | None]) -> list[Unit]:
    """Whole cases (images sharing a case id) and single images, in a deterministic order."""
    cases: dict[str, list[int]] = {}
    units: list[Unit] = []
    for image_id in sorted(images):
        case = images[image_id]
        if case is None or case == "":
            units.append((image_id,))
        else:
            cases.setdefault(case, []).append(image_id)
    units.extend(tuple(ids) for ids in cases.values())
    units.sort(key=lambda u: u[0])
    return units


def pick_golden(
    units: Sequence[Unit], rng: random.Random, *, size: int | None, explicit: Iterable[int] | None
) -> set[int]:
    """The golden set as whole units: an explicit list (which must not split a case) or ``size`` at random."""
    all_ids = {i for u in units for i in u}
    if explicit is not None:
        chosen = set(explicit)
        unknown = sorted(chosen - all_ids)
        if unknown:
            raise ValidationError(
                f"golden images not in this project: {unknown[:10]}", code="unknown_images"
            )
        split = [u for u in units if 0 < len(chosen.intersection(u)) < len(u)]
        if split:
            raise ValidationError(
                f"the golden list splits {len(split)} case(s): list every image of a case or none "
                f"(first split case holds images {list(split[0])})",
                code="case_split",
            )
        return chosen
    size = size or 0
    if size < 0 or size > len(all_ids):
        raise ValidationError(
            f"golden size must be between 0 and {len(all_ids)}", code="golden_size"
        )
    chosen = set()
    order = list(units)
    rng.shuffle(order)
    for unit in order:  # whole cases only: stop at ``size`` exactly, or just under it
        if len(chosen) == size:
            break
        if len(chosen) + len(unit) <= size:
            chosen.update(unit)
    return chosen


def deal(
    units: Sequence[Unit], raters: Sequence[int], overlap: int, rng: random.Random
) -> dict[int, list[int]]:
    """Give each unit to ``overlap`` distinct raters, always the least loaded (random among ties).

    Cases go first, largest first, then single images: single images fill the gaps, so loads end
    within 1 of each other whenever whole cases allow it. Random tie-breaks vary the rater pairs.
    """
    order = list(units)
    rng.shuffle(order)
    order.sort(key=len, reverse=True)  # stable: equal sizes keep the shuffled order
    loads = dict.fromkeys(raters, 0)
    folds: dict[int, list[int]] = {r: [] for r in raters}
    for unit in order:
        ranked = sorted(raters, key=lambda r: (loads[r], rng.random()))
        for rater in ranked[:overlap]:
            folds[rater].extend(unit)
            loads[rater] += len(unit)
    return folds


def plan_allocation(
    images: Mapping[int, str | None],
    raters: Iterable[int],
    *,
    overlap: int = 1,
    seed: int,
    golden_size: int | None = None,
    golden_ids: Iterable[int] | None = None,
) -> AllocationPlan:
    """Plan an allocation from image ids (with optional case ids) and rater ids; deterministic in ``seed``."""
    rater_ids = sorted(set(raters))
    if not rater_ids:
        raise ValidationError("choose at least one rater", code="no_raters")
    if not images:
        raise ValidationError("the project has no images to allocate", code="no_images")
    if not isinstance(overlap, int) or overlap < 1 or overlap > len(rater_ids):
        raise ValidationError(
            f"overlap must be between 1 and the number of raters ({len(rater_ids)})", code="overlap"
        )
    if golden_size is not None and golden_ids is not None:
        raise ValidationError("give a golden size or a golden list, not both", code="golden_both")
    rng = random.Random(seed)
    units = group_units(images)
    golden = pick_golden(units, rng, size=golden_size, explicit=golden_ids)
    fold_units = [u for u in units if u[0] not in golden]
    folds = deal(fold_units, rater_ids, overlap, rng)
    golden_sorted = tuple(sorted(golden))
    queues: dict[int, tuple[int, ...]] = {}
    for rater in rater_ids:
        items = list(golden_sorted) + sorted(folds[rater])
        rng.shuffle(items)  # golden and fold items together: golden spread through the queue
        queues[rater] = tuple(items)
    return AllocationPlan(
        seed=seed,
        overlap=overlap,
        image_count=len(images),
        golden=golden_sorted,
        folds={r: tuple(sorted(ids)) for r, ids in folds.items()},
        queues=queues,
    )
