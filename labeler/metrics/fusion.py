"""Per-image fusion of raters' labels: quality plurality, explanation relevance, diagnosis plurality.

Everything here follows docs/domain.md section 4. Ties are never broken silently: a tied image has no
fused class unless the project chose a documented precedence order or a lead adjudicated it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

import numpy as np

from labeler.metrics._arrays import (
    check_labels,
    class_votes,
    count_dtype,
    labeled_mask,
    row_count,
)

TiePolicy = Literal["unresolved"] | Sequence[int]


class Resolution(IntEnum):
    """How an image's fused quality class was decided."""

    UNLABELED = 0  # no rater labeled the image
    PLURALITY = 1  # one class had strictly the most votes
    UNRESOLVED = 2  # a tie, left without a fused class (the default policy)
    PRECEDENCE = 3  # a tie resolved by the project's precedence order
    ADJUDICATED = 4  # a tie resolved by a lead's adjudication
    # An adjudication whose class is no longer among the tied classes (labels changed since) is
    # outdated: it decides nothing, the image keeps one of the codes above and the flag
    # `QualityFusion.adjudication_outdated` tells the lead.


@dataclass(frozen=True)
class QualityFusion:
    """Plurality fusion of quality classes, with the votes behind every fused value."""

    fused: np.ndarray  # (n_images,) int: fused class, -1 for an unresolved tie or no labels
    is_tie: np.ndarray  # (n_images,) bool: two or more classes share the top vote count
    tied: np.ndarray  # (n_images, C) bool: the tied classes (all False where there is no tie)
    votes: np.ndarray  # (n_images, C) int: votes per class
    n_raters: np.ndarray  # (n_images,) int: raters with a label on the image
    resolution: np.ndarray  # (n_images,) int8: a `Resolution` code per image
    adjudication_outdated: np.ndarray  # (n_images,) bool: an adjudication no longer applies

    @property
    def plurality(self) -> np.ndarray:
        """Fused class only where one class strictly won; -1 for every tie, resolved or not."""
        return np.where(self.is_tie, -1, self.fused)


def fuse_quality(
    labels: np.ndarray,
    n_classes: int,
    *,
    tie_policy: TiePolicy = "unresolved",
    adjudications: np.ndarray | None = None,
) -> QualityFusion:
    """Fuse quality labels (n_images, n_raters; -1 missing) by plurality with explicit ties."""
    labels = check_labels(labels, n_classes)
    n = labels.shape[0]
    votes = class_votes(labels, n_classes)
    n_raters = row_count(labels >= 0)
    top = votes.max(axis=1)
    is_top = (votes == top[:, None]) & (top[:, None] > 0)
    n_top = is_top.sum(axis=1)
    is_tie = n_top > 1
    tied = is_top & is_tie[:, None]

    fused = np.where(n_top == 1, np.argmax(is_top, axis=1), -1)
    resolution = np.full(n, Resolution.UNLABELED, dtype=np.int8)
    resolution[n_top == 1] = Resolution.PLURALITY
    resolution[is_tie] = Resolution.UNRESOLVED

    if isinstance(tie_policy, str):
        if tie_policy != "unresolved":
            raise ValueError(
                f"unknown tie_policy {tie_policy!r}; use 'unresolved' or a class order"
            )
    else:
        order = np.asarray(list(tie_policy), dtype=np.int64)
        if order.ndim != 1 or len(set(order.tolist())) != order.size:
            raise ValueError("a precedence order must list distinct classes")
        if order.size and (order.min() < 0 or order.max() >= n_classes):
            raise ValueError(f"precedence classes must lie in 0..{n_classes - 1}")
        if order.size:
            in_order = tied[:, order]  # (n_images, len(order)): tied classes in precedence order
            has = in_order.any(axis=1)
            fused = np.where(has, order[np.argmax(in_order, axis=1)], fused)
            resolution[has] = Resolution.PRECEDENCE

    if adjudications is not None:
        adj = np.asarray(adjudications)
        if adj.shape != (n,) or (adj.size and not np.issubdtype(adj.dtype, np.integer)):
            raise ValueError(f"adjudications must be an int array of shape ({n},)")
        if adj.size and (adj.min() < -1 or adj.max() >= n_classes):
            raise ValueError(f"adjudications must be -1 or a class code in 0..{n_classes - 1}")
        # An adjudication decides an image only while its class is among the current tied
        # classes. After label changes make another tie (or none), it is outdated: the image
        # follows the votes (or is unresolved again) and is flagged for the lead.
        has_adj = adj >= 0
        in_tie = tied[np.arange(n), np.where(has_adj, adj, 0)] if n else has_adj
        use = has_adj & in_tie
        outdated = has_adj & ~in_tie
        fused = np.where(use, adj, fused)
        resolution[use] = Resolution.ADJUDICATED
    else:
        outdated = np.zeros(n, dtype=bool)

    return QualityFusion(
        fused=fused.astype(np.int64),
        is_tie=is_tie,
        tied=tied,
        votes=votes,
        n_raters=n_raters,
        resolution=resolution,
        adjudication_outdated=outdated,
    )


@dataclass(frozen=True)
class ExplanationRelevance:
    """Per-image explanation counts and which explanations are relevant (chosen by >= k raters)."""

    counts: np.ndarray  # (n_images, n_expl) int: raters who chose each explanation
    relevant: np.ndarray  # (n_images, n_expl) bool: counts >= k
    n_raters: np.ndarray  # (n_images,) int: raters with a label on the image
    k: int


def explanation_relevance(
    expl: np.ndarray, labeled: np.ndarray, k: int = 1
) -> ExplanationRelevance:
    """Count explanation choices (n_images, n_raters, n_expl) over labeled cells; relevant if >= k."""
    if k < 1:
        raise ValueError("k must be at least 1")
    mask = labeled_mask(labeled)
    chosen = np.asarray(expl, dtype=bool)
    if chosen.ndim != 3 or chosen.shape[:2] != mask.shape:
        raise ValueError(f"expl must have shape {mask.shape + ('n_expl',)}, got {chosen.shape}")
    n, r, e = chosen.shape
    rows = np.flatnonzero(chosen.reshape(n, r * e).any(axis=1))  # usually a minority of images
    dtype = count_dtype(r)  # the sum runs over raters
    counts = np.zeros((n, e), dtype=np.int64)
    sub = np.einsum("ire,ir->ie", chosen[rows].astype(dtype), mask[rows].astype(dtype))
    counts[rows] = np.rint(sub).astype(np.int64)
    return ExplanationRelevance(counts=counts, relevant=counts >= k, n_raters=mask.sum(axis=1), k=k)


@dataclass(frozen=True)
class DiagnosisFusion:
    """Plurality diagnosis per image with its vote count; ties reported, never broken."""

    code: np.ndarray  # (n_images,) int: winning code, -1 for a tie or no diagnosis votes
    votes: np.ndarray  # (n_images,) int: votes for the winner (for a tie: each tied code's count)
    is_tie: np.ndarray  # (n_images,) bool
    tied: np.ndarray  # (n_images, n_raters) int: tied codes ascending, padded with -1
    n_voters: np.ndarray  # (n_images,) int: raters who gave a diagnosis


def fuse_diagnoses(codes: np.ndarray) -> DiagnosisFusion:
    """Fuse diagnosis codes (n_images, n_raters; -1 = no diagnosis, e.g. a non-lesion vote)."""
    codes = np.asarray(codes)
    if codes.ndim != 2 or (codes.size and not np.issubdtype(codes.dtype, np.integer)):
        raise ValueError("codes must be a 2-D int matrix (n_images, n_raters) with -1 for missing")
    codes = codes.astype(np.int64, copy=False)
    if codes.size and codes.min() < -1:
        raise ValueError("diagnosis codes must be >= 0, or -1 for missing")
    n, r = codes.shape
    ok = codes >= 0
    n_voters = ok.sum(axis=1)

    # Sort each row so equal codes are adjacent (missing = -1 first), then count runs of codes.
    srt = np.sort(codes, axis=1)
    image = np.repeat(np.arange(n), r)
    flat = srt.reshape(-1)
    keep = flat >= 0
    image, flat = image[keep], flat[keep]
    starts = np.ones(flat.size, dtype=bool)
    starts[1:] = (flat[1:] != flat[:-1]) | (image[1:] != image[:-1])
    run_image = image[starts]
    run_code = flat[starts]
    run_len = np.diff(np.append(np.flatnonzero(starts), flat.size))

    votes = np.zeros(n, dtype=np.int64)
    np.maximum.at(votes, run_image, run_len)
    is_top = run_len == votes[run_image]
    n_top = np.bincount(run_image[is_top], minlength=n)
    is_tie = n_top > 1

    code = np.full(n, -1, dtype=np.int64)
    single = is_top & (n_top[run_image] == 1)
    code[run_image[single]] = run_code[single]

    tied = np.full((n, r), -1, dtype=np.int64)
    tie_runs = is_top & is_tie[run_image]
    t_image, t_code = run_image[tie_runs], run_code[tie_runs]
    # Position of each tied code within its image's row (runs are already sorted by code).
    first = np.searchsorted(t_image, t_image, side="left")
    tied[t_image, np.arange(t_image.size) - first] = t_code
    return DiagnosisFusion(code=code, votes=votes, is_tie=is_tie, tied=tied, n_voters=n_voters)
