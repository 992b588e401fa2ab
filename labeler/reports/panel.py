"""Report sections about the panel and its fairness: fusion method, breakdowns, tendencies, ICC.

Added to the agreement figures by `figures.agreement_figures` (dashboard, agreement JSON) and read
by the fused export:
- the project's fusion method (settings["fusion"]["method"]): "plurality" (default, the seeds'
  method) or "dawid_skene" (Dawid and Skene 1979), with each rater's estimated confusion matrix;
- fairness breakdowns by Fitzpatrick skin type and by body site (docs/domain.md section 9);
- rater tendencies: each rater's rate of every class / grade and explanation against the panel;
- severity reliability: ICC(2,1), ICC(3,1) and per-rater MAE beside RMSE.
Every interval uses the shared bootstrap (whole cases where images carry case ids).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .. import metrics, protocols
from ..metrics.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED, Interval
from ..metrics.breakdowns import (
    GroupFigure,
    body_site_groups,
    fitzpatrick_groups,
    quality_breakdown,
    severity_breakdown,
)
from ..metrics.dawid_skene import DawidSkeneFusion, dawid_skene
from ..metrics.severity_reliability import intraclass_correlation, rater_mae
from ..metrics.tendencies import Tendencies, rater_tendencies
from ..projects.settings import FUSION_METHOD_NAMES, read_settings
from ..protocols.explanations import EXPLANATION_CODES
from ..protocols.quality import QUALITY_DECISIONS
from . import skin_types
from .intervals import resampling_groups
from .matrix import LabelMatrix

N_CLASSES = len(QUALITY_DECISIONS)


def _f(x: Any) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x


def _iv(interval: Interval | None) -> dict[str, float | None]:
    if interval is None:
        return {"low": None, "high": None}
    return {"low": interval.low, "high": interval.high}


# -- fusion method ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceFusion:
    """Each image's fused quality class under the project's fusion method, and how it was decided."""

    method: str  # "plurality" | "dawid_skene"
    fused: np.ndarray  # (n,) int: fused class, -1 none (unresolved tie, no labels)
    resolution: list[str]  # per image: plurality / unresolved / precedence / adjudicated / ...
    dawid_skene: DawidSkeneFusion | None


def fusion_method(settings: Mapping[str, Any]) -> str:
    return read_settings(settings).fusion_method


def reference_fusion(
    m: LabelMatrix, settings: Mapping[str, Any], plurality: metrics.QualityFusion
) -> ReferenceFusion:
    """The fused class per image: plurality (with ties, precedence, adjudications) or Dawid-Skene.

    Under Dawid-Skene an image takes its posterior's most probable class, except that a lead's
    adjudication of a current plurality tie still decides (a person's decision beats the model).
    """
    names = {int(r): r.name.lower() for r in metrics.Resolution}
    resolution = [names[int(r)] for r in plurality.resolution]
    if fusion_method(settings) != "dawid_skene":
        return ReferenceFusion("plurality", plurality.fused, resolution, None)
    ds = dawid_skene(m.classes, N_CLASSES)
    adjudicated = plurality.resolution == metrics.Resolution.ADJUDICATED
    fused = np.where(adjudicated, plurality.fused, ds.fused)
    for i in np.flatnonzero(~adjudicated & (plurality.n_raters > 0)):
        resolution[i] = "dawid_skene" if ds.fused[i] >= 0 else "unresolved"
    return ReferenceFusion("dawid_skene", fused, resolution, ds)


def fusion_section(
    m: LabelMatrix, ref: ReferenceFusion, plurality: metrics.QualityFusion, rows: np.ndarray
) -> dict[str, Any]:
    """Which method fused the labels; for Dawid-Skene the raters' matrices and the posteriors."""
    out: dict[str, Any] = {
        "method": ref.method,
        "method_name": FUSION_METHOD_NAMES.get(ref.method, ref.method),
    }
    ds = ref.dawid_skene
    if ds is None:
        return out
    has = rows & (plurality.n_raters > 0)
    conf = ds.confidence[has]
    plural = plurality.plurality[has]
    out.update(
        {
            "reference": "Dawid and Skene 1979, Maximum likelihood estimation of observer "
            "error-rates using the EM algorithm",
            "smoothing": ds.smoothing,  # pseudo-labels per confusion row (Dirichlet prior)
            "prior_accuracy": ds.prior_accuracy,  # where that prior centres a rater
            "iterations": ds.n_iter,
            "converged": ds.converged,
            "prior": {c: float(ds.prior[k]) for k, c in enumerate(QUALITY_DECISIONS)},
            "images": int(has.sum()),
            "mean_confidence": _f(conf.mean()) if conf.size else None,
            "low_confidence_images": int((conf < 0.8).sum()),
            "differs_from_plurality": int(((plural >= 0) & (ds.fused[has] != plural)).sum()),
            "plurality_ties_decided": int(((plural < 0) & (ds.fused[has] >= 0)).sum()),
            "raters": [
                {
                    "rater_id": int(rid),
                    "name": m.rater_names[j],
                    "labels": int(ds.n_labels[j]),
                    # rows: the true class; columns: the class the rater chose
                    "confusion": ds.confusion[j].tolist(),
                }
                for j, rid in enumerate(m.rater_ids)
            ],
        }
    )
    return out


def apply_reference(body: dict[str, Any], m: LabelMatrix, ref: ReferenceFusion, rows) -> None:
    """Under Dawid-Skene: fused counts, raters against the fused class and confusions follow it."""
    if ref.method == "plurality":
        return
    labels = m.classes[rows]
    fused = ref.fused[rows]
    for i, d in enumerate(body["distribution"]):
        d["count"] = int((fused == i).sum())
    vs = metrics.rater_vs_fused(labels, fused, N_CLASSES, golden=m.golden[rows])
    for j, r in enumerate(body["raters"]):
        r["golden_macro_f1"] = _f(vs.macro_f1[j])
        r["golden_images"] = int(vs.n_images[j])
    body["confusion"] = metrics.rater_vs_fused(labels, fused, N_CLASSES).confusion.tolist()


# -- fairness breakdowns ---------------------------------------------------------------------------


def _group_dict(g: GroupFigure, severity: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "group": g.name,
        "images": g.n_images,
        "labeled_images": g.n_labeled,
        "too_few": g.too_few,
    }
    if severity:
        out.update(
            {
                "rmse": _f(g.value),
                "rmse_interval": _iv(g.interval),
                "grades": g.n_units,
                "mean_consensus": _f(g.extra.get("mean_consensus", float("nan"))),
                "mean_consensus_interval": {
                    "low": g.extra.get("mean_consensus_low"),
                    "high": g.extra.get("mean_consensus_high"),
                },
            }
        )
    else:
        out.update(
            {
                "macro_f1_mean": _f(g.value),
                "macro_f1_std": _f(g.std),
                "pairs": g.n_units,
                "macro_f1_interval": _iv(g.interval),
            }
        )
    return out


def fairness_section(
    m: LabelMatrix,
    settings: Mapping[str, Any],
    rows: np.ndarray,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> dict[str, Any]:
    """Agreement per Fitzpatrick type (I-VI, I-II, III-IV, V-VI, unknown) and per body site."""
    s = read_settings(settings)
    n = m.image_ids.size
    # the manifest's type, else the raters' fused answer to the skin-type question
    fitz, fitz_source, skin_fusion = skin_types.breakdown_types(m)
    fitz_groups = fitzpatrick_groups(fitz)
    sites = m.body_site if m.body_site is not None else [None] * n
    cases = resampling_groups(m, np.ones(n, dtype=bool))
    severity = not protocols.get(m.protocol).has_classes  # grades: RMSE against the consensus
    out: dict[str, Any] = {"min_group_images": s.min_group_images}
    for key, groups in (
        ("fitzpatrick", fitz_groups),
        ("body_site", body_site_groups(sites)),
    ):
        if severity:
            figs = severity_breakdown(
                m.grades,
                groups,
                scope=rows,
                cases=cases,
                min_group_images=s.min_group_images,
                resamples=resamples,
                seed=seed,
            )
        else:
            figs = quality_breakdown(
                m.classes,
                N_CLASSES,
                groups,
                scope=rows,
                cases=cases,
                min_co_labeled=s.min_pair_images,
                min_group_images=s.min_group_images,
                resamples=resamples,
                seed=seed,
            )
        out[key] = [_group_dict(g, severity) for g in figs]
    skin_types.add_group_sources(out["fitzpatrick"], fitz_groups, fitz_source, rows)
    out.update(skin_types.source_summary(fitz_source, skin_fusion, rows))
    out["figure"] = (
        "RMSE of each grade against its image's consensus (images graded twice or more)"
        if severity
        else "pairwise macro F1, mean ± std over rater pairs"
    )
    return out


# -- rater tendencies ------------------------------------------------------------------------------


def _slice(t: Tendencies, cols: slice) -> Tendencies:
    """The tendencies of some categories (columns) of a joint computation."""
    return replace(
        t,
        rate=t.rate[:, cols],
        panel_rate=t.panel_rate[:, cols],
        difference=t.difference[:, cols],
        low=t.low[:, cols],
        high=t.high[:, cols],
    )


def tendencies_section(
    m: LabelMatrix,
    settings: Mapping[str, Any],
    rows: np.ndarray,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> dict[str, Any]:
    """Per rater: rate of each class (grade) and explanation minus the panel's on the same images."""
    cases = resampling_groups(m, np.ones(m.image_ids.size, dtype=bool))
    if protocols.get(m.protocol).has_classes:
        labels, names = m.classes, list(QUALITY_DECISIONS)
    else:
        scale = read_settings(settings).scale_values
        labels = metrics.grade_codes(m.grades, scale)
        names = [str(int(v)) if float(v).is_integer() else str(v) for v in scale]
    labeled = labels >= 0
    onehot = (labels[:, :, None] == np.arange(len(names))) & labeled[:, :, None]
    kw = {"rows": rows, "groups": cases, "resamples": resamples, "seed": seed}
    k = len(names)
    if m.explanations.size and np.array_equal(labeled, m.labeled):
        # One pass (one set of resamples) for classes and explanations together.
        both = rater_tendencies(np.concatenate([onehot, m.explanations], axis=2), labeled, **kw)
        cls = _slice(both, slice(0, k))
        ex = _slice(both, slice(k, None))
    else:
        cls = rater_tendencies(onehot, labeled, **kw)
        ex = rater_tendencies(m.explanations, m.labeled, **kw) if m.explanations.size else None

    def entries(t, j: int, cats: list[str], key: str) -> list[dict[str, Any]]:
        return [
            {
                key: c,
                "rate": _f(t.rate[j, k]),
                "panel_rate": _f(t.panel_rate[j, k]),
                "difference": _f(t.difference[j, k]),
                "interval": {"low": _f(t.low[j, k]), "high": _f(t.high[j, k])},
            }
            for k, c in enumerate(cats)
        ]

    raters = []
    for j, rid in enumerate(m.rater_ids):
        entry: dict[str, Any] = {
            "rater_id": int(rid),
            "name": m.rater_names[j],
            "images": int(cls.n_images[j]),
            "classes": entries(cls, j, names, "class"),
        }
        if ex is not None:
            entry["explanations"] = entries(ex, j, list(EXPLANATION_CODES), "explanation")
        raters.append(entry)
    return {
        "definition": "rater's rate minus the panel's rate (the other raters' labels) on the "
        "images this rater and at least one other rater labeled; each image counts once",
        "categories": names,
        "explanations": list(EXPLANATION_CODES),
        "raters": raters,
    }


# -- severity reliability ----------------------------------------------------------------------------


def severity_reliability_section(
    body: dict[str, Any],
    m: LabelMatrix,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> dict[str, Any]:
    """ICC(2,1), ICC(3,1) on the golden set; per-rater MAE (and leave-one-out) beside RMSE."""
    cases = resampling_groups(m, np.ones(m.image_ids.size, dtype=bool))
    golden_graded = ~np.isnan(m.grades[m.golden])
    raters = golden_graded.any(axis=0)
    icc = intraclass_correlation(
        m.grades, rows=m.golden, raters=raters, groups=cases, resamples=resamples, seed=seed
    )
    mae = rater_mae(m.grades, m.golden, groups=cases, resamples=resamples, seed=seed)
    for j, r in enumerate(body["raters"]):
        r["mae"] = _f(mae.mae[j])
        r["mae_loo"] = _f(mae.mae_loo[j])
        r["mae_interval"] = _iv(mae.intervals[j])
    return {
        "reference": "Shrout and Fleiss 1979, Intraclass correlations: uses in assessing rater "
        "reliability",
        "cases": "golden images graded by every rater who graded any golden image (complete "
        "cases; images with a missing grade are left out and counted)",
        "icc2_1": _f(icc.icc2),
        "icc2_1_interval": _iv(icc.icc2_interval),
        "icc3_1": _f(icc.icc3),
        "icc3_1_interval": _iv(icc.icc3_interval),
        "images": icc.n_images,
        "images_left_out": icc.n_images_dropped,
        "raters": icc.n_raters,
    }


def add_panel_figures(
    body: dict[str, Any],
    m: LabelMatrix,
    settings: Mapping[str, Any],
    rows: np.ndarray,
    plurality: metrics.QualityFusion | None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> None:
    """Add fusion, fairness, tendencies (and severity reliability) to an agreement figures body."""
    protocol = protocols.get(m.protocol)
    if protocol.answers_are_skin_types:  # the figures are the skin-type section already
        body["fusion"] = {
            "method": "median",
            "method_name": "Median of the skin types, with the votes; two different middle "
            "answers are a tie, never broken",
        }
        return  # no breakdown by skin type of skin-type answers, no class or grade tendencies
    if protocol.has_classes and plurality is not None:
        ref = reference_fusion(m, settings, plurality)
        apply_reference(body, m, ref, rows)
        body["fusion"] = fusion_section(m, ref, plurality, rows)
    else:
        body["fusion"] = {
            "method": "mean",
            "method_name": "Mean of the grades (the Microsoft/Nestlé acne severity study)",
        }
        body["severity_reliability"] = severity_reliability_section(body, m, resamples, seed)
    body["fairness"] = fairness_section(m, settings, rows, resamples, seed)
    if skin_types.reported(m, settings):  # the skin-type second question's agreement
        body["skin_type"] = skin_types.agreement_section(m, settings, rows, resamples, seed)
    body["tendencies"] = tendencies_section(m, settings, rows, resamples, seed)
