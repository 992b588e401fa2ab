"""Agreement figures of a project (docs/domain.md sections 4-5), computed by the pure metrics module."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import metrics, protocols
from ..metrics.bootstrap import DEFAULT_RESAMPLES
from ..projects.settings import read_settings
from ..protocols.explanations import EXPLANATION_CODES
from ..protocols.quality import QUALITY_DECISIONS
from ..protocols.severity import severity_scale
from . import skin_types
from .intervals import add_quality_intervals, add_severity_intervals, complete_raters
from .matrix import LabelMatrix
from .panel import add_panel_figures

N_CLASSES = len(QUALITY_DECISIONS)


def num(x: Any) -> float | None:
    """A JSON-safe float at full precision (NaN -> None); pages round, JSON and exports do not."""
    x = float(x)
    return None if math.isnan(x) else x


def grade_value(v: float) -> float | int:
    """A scale value as JSON: an int when it is whole (grade 3, not 3.0)."""
    return int(v) if float(v).is_integer() else float(v)


def project_scale(settings: Mapping[str, Any]) -> list[float]:
    """The project's severity scale values, ascending."""
    return [float(s["value"]) for s in severity_scale(settings)]


def nums(arr: np.ndarray) -> list:
    return [nums(a) if np.ndim(a) else num(a) for a in np.asarray(arr, dtype=float)]


def tie_policy(settings: Mapping[str, Any]) -> Any:
    """The project's tie policy for metrics.fuse_quality: 'unresolved' or a precedence order of codes."""
    s = read_settings(settings)
    if s.tie_policy == "precedence":
        return [QUALITY_DECISIONS.index(c) for c in s.precedence if c in QUALITY_DECISIONS]
    return "unresolved"


def explanation_k(settings: Mapping[str, Any]) -> int:
    return read_settings(settings).explanation_k


def fuse(m: LabelMatrix, settings: Mapping[str, Any]) -> metrics.QualityFusion:
    """Plurality fusion of every image with the project's tie policy and the leads' adjudications."""
    return metrics.fuse_quality(
        m.classes, N_CLASSES, tie_policy=tie_policy(settings), adjudications=m.adjudication
    )


def min_pair_images(settings: Mapping[str, Any]) -> int:
    """The project's minimum of co-labeled images for a rater pair to count (default 1)."""
    return read_settings(settings).min_pair_images


def quality_figures(
    m: LabelMatrix,
    settings: Mapping[str, Any],
    scope: str = "all",
    resamples: int = DEFAULT_RESAMPLES,
) -> dict[str, Any]:
    """The ImageQX paper's Tables 1-2 and the rest: distribution, pairwise F1, explanations, per rater, kappas, alpha."""
    min_co_labeled = min_pair_images(settings)
    rows = m.scope_rows(scope)
    labels = m.classes[rows]
    labeled = labels >= 0
    fusion = fuse(m, settings)
    fused = fusion.fused[rows]
    f1 = metrics.pairwise_f1(labels, N_CLASSES, min_co_labeled=min_co_labeled)
    relevance = metrics.explanation_relevance(
        m.explanations[rows], labeled, k=explanation_k(settings)
    )
    ef1 = metrics.pairwise_explanation_f1(
        m.explanations[rows], labeled, min_co_labeled=min_co_labeled
    )
    golden_rows = m.golden[rows]
    vs_fused = metrics.rater_vs_fused(labels, fusion.plurality[rows], N_CLASSES, golden=golden_rows)
    confusion = metrics.rater_vs_fused(labels, fusion.plurality[rows], N_CLASSES).confusion
    kappa = metrics.pairwise_kappa(labels, N_CLASSES, min_co_labeled=min_co_labeled)
    complete = complete_raters(m.classes >= 0, m.golden)
    fleiss = metrics.fleiss_kappa(m.classes, N_CLASSES, golden=m.golden, raters=complete)
    alpha_golden = metrics.krippendorff_alpha(m.classes[m.golden], "nominal")
    alpha = metrics.krippendorff_alpha(labels, "nominal")
    body = {
        "classes": list(QUALITY_DECISIONS),
        "images": int(rows.sum()),
        "labeled_images": int(labeled.any(axis=1).sum()),
        "distribution": [
            {
                "class": c,
                "count": int((fused == i).sum()),
                "f1_mean": num(f1.mean[i]),
                "f1_std": num(f1.std[i]),
                "pairs": int(f1.n_pairs[i]),
            }
            for i, c in enumerate(QUALITY_DECISIONS)
        ],
        "ties_unresolved": int((fusion.resolution[rows] == metrics.Resolution.UNRESOLVED).sum()),
        "ties_adjudicated": int((fusion.resolution[rows] == metrics.Resolution.ADJUDICATED).sum()),
        "adjudications_outdated": int(fusion.adjudication_outdated[rows].sum()),
        "macro_f1": {
            "mean": num(f1.macro_mean),
            "std": num(f1.macro_std),
            "pairs": f1.macro_n_pairs,
            "excluded_pairs": f1.n_excluded_pairs,
            "min_co_labeled": f1.min_co_labeled,
        },
        "pair_macro_f1": nums(f1.macro),
        "explanations": [
            {
                "explanation": e,
                "relevant_images": int(relevance.relevant[:, i].sum()),
                "f1_mean": num(ef1.mean[i]),
                "f1_std": num(ef1.std[i]),
                "pairs": int(ef1.n_pairs[i]),
            }
            for i, e in enumerate(EXPLANATION_CODES)
        ],
        "explanation_k": relevance.k,
        "raters": [
            {
                "rater_id": int(rid),
                "name": m.rater_names[j],
                "labels": int(labeled[:, j].sum()),
                "golden_macro_f1": num(vs_fused.macro_f1[j]),
                "golden_images": int(vs_fused.n_images[j]),
            }
            for j, rid in enumerate(m.rater_ids)
        ],
        "confusion": confusion.tolist(),
        "kappa": {
            "mean": num(kappa.mean),
            "std": num(kappa.std),
            "pairs": kappa.n_pairs,
            "excluded_pairs": kappa.n_excluded_pairs,
            "matrix": nums(kappa.kappa),
        },
        "fleiss_kappa_golden": {
            "kappa": num(fleiss.kappa),
            "images": fleiss.n_images,
            "dropped_incomplete": fleiss.n_images_dropped,
            "raters": fleiss.n_raters,
            "raters_left_out": int((~complete).sum()),
            "krippendorff_alpha": num(alpha_golden.alpha),
        },
        "krippendorff_alpha_nominal": {"alpha": num(alpha.alpha), "images": alpha.n_images},
    }
    add_quality_intervals(body, m, rows, f1, complete, min_co_labeled, resamples)
    return body


def severity_figures(
    m: LabelMatrix,
    settings: Mapping[str, Any],
    scope: str = "all",
    resamples: int = DEFAULT_RESAMPLES,
) -> dict[str, Any]:
    """The acne severity study's consensus and per-rater RMSE table with the bar, plus kappas and alpha."""
    min_co_labeled = min_pair_images(settings)
    rows = m.scope_rows(scope)
    grades = m.grades[rows]
    scale = project_scale(settings)
    consensus = metrics.severity_consensus(grades, scale)
    rmse = metrics.rater_rmse(m.grades, golden=m.golden)
    kappa = metrics.pairwise_severity_kappa(grades, scale, min_co_labeled=min_co_labeled)
    codes = metrics.grade_codes(grades, scale)
    complete = complete_raters(~np.isnan(m.grades), m.golden)
    all_codes = metrics.grade_codes(m.grades, scale)
    fleiss = metrics.fleiss_kappa(all_codes, len(scale), golden=m.golden, raters=complete)
    ordinal = metrics.krippendorff_alpha(grades, "ordinal", value_domain=scale)
    interval = metrics.krippendorff_alpha(grades, "interval")
    graded = ~np.isnan(grades)
    cons_code = np.where(consensus.count > 0, consensus.grade - 1, -1)
    confusion = metrics.rater_vs_fused(codes, cons_code.astype(np.int64), len(scale)).confusion
    body = {
        "scale": scale,
        "images": int(rows.sum()),
        "graded_images": int((consensus.count > 0).sum()),
        "grade_distribution": [
            {"grade": grade_value(v), "count": int((consensus.grade == g).sum())}
            for g, v in enumerate(scale, start=1)
        ],
        "non_graded": int((m.non_graded[rows] >= 0).sum()),
        "raters": [
            {
                "rater_id": int(rid),
                "name": m.rater_names[j],
                "grades": int(graded[:, j].sum()),
                "golden_images": int(rmse.n_images[j]),
                "rmse": num(rmse.rmse[j]),
                "rmse_loo": num(rmse.rmse_loo[j]),
            }
            for j, rid in enumerate(m.rater_ids)
        ],
        "bar": num(rmse.bar),
        "bar_rater_id": int(m.rater_ids[rmse.bar_rater]) if rmse.bar_rater >= 0 else None,
        "bar_loo": num(rmse.bar_loo),
        "kappa_quadratic": {
            "mean": num(kappa.mean),
            "std": num(kappa.std),
            "pairs": kappa.n_pairs,
            "excluded_pairs": kappa.n_excluded_pairs,
            "matrix": nums(kappa.kappa),
        },
        "confusion": confusion.tolist(),
        "fleiss_kappa_golden": {
            "kappa": num(fleiss.kappa),
            "images": fleiss.n_images,
            "dropped_incomplete": fleiss.n_images_dropped,
            "raters": fleiss.n_raters,
            "raters_left_out": int((~complete).sum()),
        },
        "krippendorff_alpha": {
            "ordinal": num(ordinal.alpha),
            "interval": num(interval.alpha),
            "images": ordinal.n_images,
        },
    }
    add_severity_intervals(body, m, rows, scale, complete, min_co_labeled, resamples)
    return body


def skin_type_figures(
    m: LabelMatrix,
    settings: Mapping[str, Any],
    scope: str = "all",
    resamples: int = DEFAULT_RESAMPLES,
) -> dict[str, Any]:
    """A skin-type project's figures (docs/domain.md section 10): the fused types (median, ties
    reported) and quadratic kappa, ordinal alpha, exact and within-one agreement, per-rater MAD."""
    rows = m.scope_rows(scope)
    return {
        "images": int(rows.sum()),
        "labeled_images": int(m.labeled[rows].any(axis=1).sum()),
        "skin_type": skin_types.agreement_section(m, settings, rows, resamples),
    }


# the figures of each fusion a protocol declares (labeler/protocols/: protocol.fusion)
FIGURES = {"plurality": quality_figures, "mean": severity_figures, "median": skin_type_figures}


def agreement_figures(
    m: LabelMatrix,
    settings: Mapping[str, Any],
    scope: str = "all",
    resamples: int = DEFAULT_RESAMPLES,
) -> dict[str, Any]:
    """All agreement figures of the project's protocol for a scope (all / golden / fold)."""
    protocol = protocols.get(m.protocol)
    figures = FIGURES[protocol.fusion]  # the figures that go with how the protocol fuses
    body = figures(m, settings, scope, resamples)
    # Fusion method, fairness breakdowns, rater tendencies, ICC and MAE (reports/panel.py).
    plurality = fuse(m, settings) if protocol.has_classes else None
    add_panel_figures(body, m, settings, m.scope_rows(scope), plurality, resamples)
    return {
        "project_id": m.project_id,
        "protocol": m.protocol.value,
        "scope": scope,
        "n_raters": len(m.rater_ids),
        **body,
    }
