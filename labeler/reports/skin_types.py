"""The skin-type second question in the reports (docs/domain.md sections 9 and 10).

Where a project asks its raters the Fitzpatrick skin type (setting ``ask_skin_type``, or answers
exist from when it did), their answers are fused per image by the median with vote counts and ties
(labeler.metrics.skin_type). The fairness breakdowns take each image's type from the import
manifest and, where the manifest has none, from the raters' fused type, and say how many images
came from each source; the agreement figures gain a skin-type section; the exports gain skin-type
columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..labeling.models import Label
from ..metrics.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED, Interval
from ..metrics.breakdowns import (
    FITZPATRICK_SOURCES,
    FROM_MANIFEST,
    FROM_NOWHERE,
    FROM_RATERS,
    Group,
    fitzpatrick_with_fallback,
)
from ..metrics.skin_type import MISSING, SkinTypeFusion, fuse_skin_types, skin_type_agreement
from ..projects.models import Project
from ..projects.settings import read_settings
from ..protocols.skin_type import ROMAN, SKIN_TYPES
from .intervals import resampling_groups
from .matrix import LabelMatrix

SOURCE_NAMES = {
    "manifest": "the import manifest",
    "raters": "the raters' fused answer (median)",
    "unknown": "no type known",
}


def reported(m: LabelMatrix, settings: Mapping[str, Any] | None) -> bool:
    """Skin type is part of the project's reports: the project asks it, or answers exist."""
    return read_settings(settings).ask_skin_type or m.skin_types is not None


def project_reports(session: Session, project: Project) -> bool:
    """`reported` without a label matrix (the raw export): the setting, else one query."""
    if read_settings(project.settings).ask_skin_type:
        return True
    stmt = select(Label.id).where(Label.project_id == project.id, Label.skin_type.is_not(None))
    return session.scalar(stmt.limit(1)) is not None


def answers(m: LabelMatrix) -> np.ndarray:
    """The raters' answers (n, r): 1-6, 0 cannot assess, -1 none (all -1 when nobody answered)."""
    if m.skin_types is not None:
        return m.skin_types
    return np.full(m.labeled.shape, MISSING, dtype=np.int64)


def rater_fusion(m: LabelMatrix) -> SkinTypeFusion:
    """Per image: the median of the raters' graded answers, votes, ties and "cannot assess"."""
    return fuse_skin_types(answers(m))


def breakdown_types(m: LabelMatrix) -> tuple[np.ndarray, np.ndarray, SkinTypeFusion]:
    """Each image's type for the breakdowns (1-6, 0 unknown), its source index into
    FITZPATRICK_SOURCES (manifest first, then the raters' fused type) and the raters' fusion."""
    n = m.image_ids.size
    manifest = m.fitzpatrick if m.fitzpatrick is not None else [None] * n
    fusion = rater_fusion(m)
    types, source = fitzpatrick_with_fallback(manifest, fusion.fused)
    return types, source, fusion


def source_summary(source: np.ndarray, fusion: SkinTypeFusion, rows: np.ndarray) -> dict[str, Any]:
    """Where the breakdown's skin types come from, over the images in scope: images per source,
    the rater ties that left an image unknown, and the same in words."""
    in_scope = rows.astype(bool)
    counts = {
        name: int(((source == k) & in_scope).sum()) for k, name in enumerate(FITZPATRICK_SOURCES)
    }
    counts["rater_ties"] = int(((source == FROM_NOWHERE) & fusion.tie & in_scope).sum())
    used = [name for name in FITZPATRICK_SOURCES[:2] if counts[name]]
    text = " and ".join(SOURCE_NAMES[name] for name in used) if used else SOURCE_NAMES["unknown"]
    return {"fitzpatrick_sources": counts, "fitzpatrick_source": text}


def add_group_sources(
    out: list[dict[str, Any]], groups: list[Group], source: np.ndarray, rows: np.ndarray
) -> None:
    """Add to each Fitzpatrick group's row its images in scope from the manifest and the raters."""
    in_scope = rows.astype(bool)
    for row, group in zip(out, groups, strict=True):
        mine = group.members & in_scope
        row["from_manifest"] = int((mine & (source == FROM_MANIFEST)).sum())
        row["from_raters"] = int((mine & (source == FROM_RATERS)).sum())


def _num(x: float) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x


def _iv(interval: Interval | None) -> dict[str, float | None]:
    if interval is None:
        return {"low": None, "high": None}
    return {"low": interval.low, "high": interval.high}


def agreement_section(
    m: LabelMatrix,
    settings: Mapping[str, Any] | None,
    rows: np.ndarray,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> dict[str, Any]:
    """The skin-type figures over the images in scope: quadratic-weighted Cohen's kappa per pair,
    Krippendorff's alpha (ordinal), exact and within-one agreement, per-rater mean absolute
    deviation from the golden consensus, with bootstrap intervals; "cannot assess" is counted
    and left out of every figure."""
    s = read_settings(settings)
    codes = answers(m)
    cases = resampling_groups(m, np.ones(m.image_ids.size, dtype=bool))
    fig = skin_type_agreement(
        codes,
        rows=rows,
        golden=m.golden,
        min_co_labeled=s.min_pair_images,
        groups=cases,
        resamples=resamples,
        seed=seed,
    )
    fusion = rater_fusion(m)
    in_scope = rows.astype(bool)
    return {
        "answers": int(((codes >= 0) & in_scope[:, None]).sum()),
        "cannot_assess": fig.n_cannot_assess,
        "images_answered": int(((codes >= 0).any(axis=1) & in_scope).sum()),
        "fused_images": int(((fusion.fused >= 1) & in_scope).sum()),
        "fused_ties": int((fusion.tie & in_scope).sum()),
        "distribution": [
            {"type": ROMAN[t], "images": int(((fusion.fused == t) & in_scope).sum())}
            for t in SKIN_TYPES
        ],
        "kappa_quadratic": {
            "mean": _num(fig.kappa.mean),
            "std": _num(fig.kappa.std),
            "pairs": fig.kappa.n_pairs,
            "excluded_pairs": fig.kappa.n_excluded_pairs,
            "interval": _iv(fig.kappa_interval),
        },
        "krippendorff_alpha_ordinal": {
            "alpha": _num(fig.alpha.alpha),
            "images": fig.alpha.n_images,
            "interval": _iv(fig.alpha_interval),
        },
        "exact_agreement": {
            "mean": _num(fig.exact.mean),
            "std": _num(fig.exact.std),
            "pooled": _num(fig.exact.pooled),
            "pairs": fig.exact.n_pairs,
            "interval": _iv(fig.exact_interval),
        },
        "within_one_agreement": {
            "mean": _num(fig.within_one.mean),
            "std": _num(fig.within_one.std),
            "pooled": _num(fig.within_one.pooled),
            "pairs": fig.within_one.n_pairs,
            "interval": _iv(fig.within_one_interval),
        },
        "raters": [
            {
                "rater_id": int(rid),
                "name": m.rater_names[j],
                "golden_images": int(fig.mad.n_images[j]),
                "mad": _num(fig.mad.mad[j]),
                "mad_loo": _num(fig.mad.mad_loo[j]),
                "mad_interval": _iv(fig.mad_intervals[j] if fig.mad_intervals else None),
            }
            for j, rid in enumerate(m.rater_ids)
        ],
        "golden_tied_images": fig.mad.n_tied_images,
        "min_co_labeled": fig.min_co_labeled,
        "resamples": fig.resamples,
        "seed": fig.seed,
    }


def fused_columns(fusion: SkinTypeFusion, i: int) -> dict[str, Any]:
    """One image's fused skin type as exported: the type (1-6; null on a tie or without a graded
    answer), the median, the tied pair, the votes per type and the "cannot assess" answers."""
    fused = int(fusion.fused[i])
    return {
        "skin_type": fused if fused >= 1 else None,
        "skin_type_median": _num(fusion.median[i]),
        "skin_type_tie": [int(fusion.tie_low[i]), int(fusion.tie_high[i])] if fusion.tie[i] else [],
        "skin_type_votes": {ROMAN[t]: int(fusion.votes[i, t - 1]) for t in SKIN_TYPES},
        "skin_type_cannot_assess": int(fusion.cannot_assess[i]),
    }
