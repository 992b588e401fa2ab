"""Bootstrap intervals beside the agreement figures of a project (docs/domain.md section 8).

The figures dict of `figures.py` gains an interval ({"low", "high"}) beside each headline number,
both readings of "mean ± std" for the expert-level bar, and a "bootstrap" entry with what is
needed to reproduce the intervals (resamples, seed, level, and whether cases or images were
drawn). Full precision: pages round, JSON and exports do not.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import metrics
from ..metrics.bootstrap import DEFAULT_LEVEL, DEFAULT_RESAMPLES, DEFAULT_SEED, Interval
from ..metrics.intervals import intervals, quality_replicates, severity_replicates
from .matrix import LabelMatrix


def iv(interval: Interval) -> dict[str, float | None]:
    return {"low": interval.low, "high": interval.high}


def resampling_groups(m: LabelMatrix, rows: np.ndarray) -> np.ndarray | None:
    """Case ids of the selected images (an image without a case is its own unit); None if no cases."""
    cases = getattr(m, "case_ids", None)
    if cases is None:
        return None
    cases = np.asarray(cases, dtype=object)[rows]
    has = np.array([c is not None and c != "" for c in cases], dtype=bool)
    if not has.any():
        return None
    ids = m.image_ids[rows]
    return np.array(
        [f"case:{c}" if h else f"image:{i}" for c, h, i in zip(cases, has, ids, strict=True)]
    )


def bootstrap_info(resamples: int, seed: int, groups: np.ndarray | None) -> dict[str, Any]:
    return {
        "resamples": resamples,
        "seed": seed,
        "level": DEFAULT_LEVEL,
        "method": "percentile",
        "unit": "case" if groups is not None else "image",
    }


def reading(mean: float, std: float, replicates: np.ndarray, label: str) -> dict[str, Any]:
    """One reading of "mean ± std" with its bar (mean - std) and the bar's interval."""
    bar = mean - std if not (np.isnan(mean) or np.isnan(std)) else float("nan")
    return {
        "label": label,
        "mean": _f(mean),
        "std": _f(std),
        "bar": _f(bar),
        "bar_interval": iv(intervals(replicates)),
    }


def _f(x: float) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x


READING_PAIRS = "(a) over rater pairs of the pairwise macro F1 (the default)"
READING_CLASSES = "(b) average over classes of the per-class mean and std (the ImageQX paper)"


def complete_raters(labeled: np.ndarray, golden: np.ndarray) -> np.ndarray:
    """Raters with a label on every golden image (Fleiss' kappa needs complete rows)."""
    if not golden.any():
        return np.zeros(labeled.shape[1], dtype=bool)
    return labeled[golden].all(axis=0)


def add_quality_intervals(
    body: dict[str, Any],
    m: LabelMatrix,
    rows: np.ndarray,
    f1: metrics.PairwiseF1,
    fleiss_raters: np.ndarray,
    min_co: int,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> None:
    """Intervals for the quality figures, resampling the scope's and the golden images."""
    sel = rows | m.golden
    groups = resampling_groups(m, sel)
    reps = quality_replicates(
        m.classes[sel],
        len(body["classes"]),
        expl=m.explanations[sel],
        rows=rows[sel],
        golden=m.golden[sel],
        fleiss_raters=fleiss_raters,
        min_co_labeled=min_co,
        resamples=resamples,
        seed=seed,
        groups=groups,
    )
    body["bootstrap"] = bootstrap_info(resamples, seed, groups)
    for d, ci in zip(body["distribution"], intervals(reps["class_mean"]), strict=True):
        d["f1_mean_interval"] = iv(ci)
    body["macro_f1"]["interval"] = iv(intervals(reps["macro_mean"]))
    defined = ~np.isnan(f1.mean)
    b_mean = float(f1.mean[defined].mean()) if defined.any() else float("nan")
    b_std = float(f1.std[defined].mean()) if defined.any() else float("nan")
    body["expert_bar"] = {
        "rule": "model macro F1 >= inter-rater mean - std (one-sided)",
        "default": "pairs",
        "pairs": reading(f1.macro_mean, f1.macro_std, reps["pairs_bar"], READING_PAIRS),
        "class_average": reading(b_mean, b_std, reps["class_average_bar"], READING_CLASSES),
    }
    for e, ci in zip(body["explanations"], intervals(reps["expl_mean"]), strict=True):
        e["f1_mean_interval"] = iv(ci)
    means = [e["f1_mean"] for e in body["explanations"] if e["f1_mean"] is not None]
    stds = [e["f1_std"] for e in body["explanations"] if e["f1_mean"] is not None]
    body["explanation_mean"] = {
        "mean": float(np.mean(means)) if means else None,
        "std": float(np.mean(stds)) if stds else None,
        "explanations": len(means),  # the mean is over the explanations that exist
        "interval": iv(intervals(reps["expl_average"])),
    }
    body["kappa"]["interval"] = iv(intervals(reps["kappa_mean"]))
    body["fleiss_kappa_golden"]["interval"] = iv(intervals(reps["fleiss"]))
    body["fleiss_kappa_golden"]["krippendorff_alpha_interval"] = iv(intervals(reps["alpha_golden"]))
    body["krippendorff_alpha_nominal"]["interval"] = iv(intervals(reps["alpha"]))


def add_severity_intervals(
    body: dict[str, Any],
    m: LabelMatrix,
    rows: np.ndarray,
    scale: list[float],
    fleiss_raters: np.ndarray,
    min_co: int,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> None:
    """Intervals for the severity figures (RMSE and the bar on golden images; kappa, alpha)."""
    sel = rows | m.golden
    groups = resampling_groups(m, sel)
    grades = m.grades[sel]
    reps = severity_replicates(
        grades,
        metrics.grade_codes(grades, scale),
        scale,
        rows=rows[sel],
        golden=m.golden[sel],
        fleiss_raters=fleiss_raters,
        min_co_labeled=min_co,
        resamples=resamples,
        seed=seed,
        groups=groups,
    )
    body["bootstrap"] = bootstrap_info(resamples, seed, groups)
    rmse, loo = intervals(reps["rmse"]), intervals(reps["rmse_loo"])
    for j, r in enumerate(body["raters"]):
        r["rmse_interval"] = iv(rmse[j])
        r["rmse_loo_interval"] = iv(loo[j])
    body["bar_interval"] = iv(intervals(reps["bar"]))
    body["bar_loo_interval"] = iv(intervals(reps["bar_loo"]))
    body["kappa_quadratic"]["interval"] = iv(intervals(reps["kappa_mean"]))
    body["fleiss_kappa_golden"]["interval"] = iv(intervals(reps["fleiss"]))
    alpha = body["krippendorff_alpha"]
    alpha["ordinal_interval"] = iv(intervals(reps["alpha_ordinal"]))
    alpha["interval_interval"] = iv(intervals(reps["alpha_interval"]))
