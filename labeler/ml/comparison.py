"""Model against raters on the golden set: a paired bootstrap and the expert-level verdicts.

docs/domain.md sections 6 and 8. The model's figure and the raters' bar are recomputed on the same
resamples of the golden images (whole cases where images carry a case id), so their difference
has an interval: "at expert level" when it lies wholly on the good side of 0, "below" when wholly
on the other, "not distinguishable" when it contains 0. The quality rule is one-sided: the model
is at expert level when its macro F1 is at least the raters' mean - std (not "within one std").
The comparison is repeated per class and per explanation (the ImageQX paper's Tables 3-4).
Pure NumPy: the web app builds the panel, the evaluation passes the model's predictions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..metrics._arrays import safe_divide
from ..metrics.bootstrap import DEFAULT_LEVEL, DEFAULT_RESAMPLES, DEFAULT_SEED, bootstrap_weights
from ..metrics.intervals import (
    PairTable,
    as_columns,
    intervals,
    rmse_from_sums,
    rmse_parts,
    worst,
)

READINGS = {
    "pairs": "(a) over rater pairs of the pairwise macro F1 (the default)",
    "class_average": "(b) average over classes of the per-class mean and std (the ImageQX paper)",
}
QUALITY_RULE = (
    "one-sided: model F1 >= inter-rater mean - std; the verdict reads the 95% interval of the "
    "difference (model - bar): above 0 at expert level, below 0 below, containing 0 not "
    "distinguishable"
)
SEVERITY_RULE = (
    "model RMSE < the worst rater's RMSE (the Microsoft/Nestlé acne severity study); the verdict reads the 95% interval of the "
    "difference (model RMSE - bar): below 0 at expert level, above 0 below, containing 0 not "
    "distinguishable"
)


@dataclass(frozen=True)
class GoldenPanel:
    """The raters' current labels on the golden images, in a fixed image order."""

    image_ids: np.ndarray  # (n,) int
    groups: np.ndarray | None  # (n,) case ids (images without a case: their own), or None
    class_names: tuple[str, ...] = ()
    classes: np.ndarray | None = None  # (n, R) int class codes, -1 missing (quality)
    explanation_names: tuple[str, ...] = ()
    explanations: np.ndarray | None = None  # (n, R, E) bool (quality)
    grades: np.ndarray | None = None  # (n, R) float, NaN missing (severity)
    min_co_labeled: int = 1


def verdict(low: float | None, high: float | None, higher_is_better: bool) -> str | None:
    """The verdict of a difference (model - bar) from its interval; None without one."""
    if low is None or high is None:
        return None
    if low > 0 or high < 0:
        good = low > 0 if higher_is_better else high < 0
        return "at expert level" if good else "below"
    return "not distinguishable"


def _f(x: Any) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x


def _compare(point: float, bar: float, diff_reps: np.ndarray, higher: bool) -> dict[str, Any]:
    ci = intervals(diff_reps)
    diff = point - bar
    return {
        "difference": _f(diff),
        "difference_interval": {"low": ci.low, "high": ci.high},
        "verdict": verdict(ci.low, ci.high, higher),
    }


def _binary_f1(truth: np.ndarray, pred: np.ndarray, wt: np.ndarray) -> np.ndarray:
    """(k, K) weighted F1 of K one-vs-rest labels: truth, pred (n, K) bool; NaN where undefined."""
    t, p = truth.astype(wt.dtype), pred.astype(wt.dtype)
    tp = ((t * p).T @ wt).T.astype(float)
    pos = ((t + p).T @ wt).T.astype(float)
    return safe_divide(2.0 * tp, pos)


def _nanmean_rows(x: np.ndarray) -> np.ndarray:
    ok = ~np.isnan(x)
    return safe_divide(np.where(ok, x, 0.0).sum(axis=1), ok.sum(axis=1))


@dataclass(frozen=True)
class QualityPredictions:
    """One model's predictions on the panel's images (rows it was evaluated on)."""

    rows: np.ndarray  # (n,) bool
    truth: np.ndarray  # (n,) int class index in the panel's class_names, -1 outside rows
    pred: np.ndarray  # (n,) int
    expl_truth: np.ndarray  # (n, E) bool, in the panel's explanation order
    expl_pred: np.ndarray  # (n, E) bool
    expl_used: np.ndarray  # (E,) bool: explanations the model predicts
    class_names: tuple[str, ...] = ()
    explanation_names: tuple[str, ...] = ()


def quality_predictions(
    panel: GoldenPanel,
    pos: np.ndarray,
    classes: Sequence[str],
    explanations: Sequence[str],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    expl_true: np.ndarray,
    expl_pred: np.ndarray,
) -> QualityPredictions:
    """Place a model's predictions (in its own class/explanation order) on the panel's images."""
    n = panel.image_ids.size
    class_names = tuple(panel.class_names or classes)
    expl_names = tuple(panel.explanation_names or explanations)
    cmap = np.array([class_names.index(c) for c in classes])
    rows = np.zeros(n, dtype=bool)
    rows[pos] = True
    truth = np.full(n, -1)
    pred = np.full(n, -1)
    truth[pos] = cmap[np.asarray(y_true)]
    pred[pos] = cmap[np.asarray(y_pred)]
    et = np.zeros((n, len(expl_names)), dtype=bool)
    ep = np.zeros_like(et)
    used = np.zeros(len(expl_names), dtype=bool)
    for j, name in enumerate(explanations):
        if name in expl_names:
            k = expl_names.index(name)
            used[k] = True
            et[pos, k] = np.asarray(expl_true, dtype=bool)[:, j]
            ep[pos, k] = np.asarray(expl_pred, dtype=bool)[:, j]
    return QualityPredictions(rows, truth, pred, et, ep, used, class_names, expl_names)


def severity_predictions(
    panel: GoldenPanel, pos: np.ndarray, truth: np.ndarray, pred: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, truth, prediction) on the panel's images; zeros outside the evaluated rows."""
    n = panel.image_ids.size
    rows = np.zeros(n, dtype=bool)
    rows[pos] = True
    t, p = np.zeros(n), np.zeros(n)
    t[pos], p[pos] = truth, pred
    return rows, t, p


def model_intervals_quality(
    panel: GoldenPanel,
    runs: Sequence[QualityPredictions],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> dict[str, Any]:
    """95% intervals of the model's macro F1, per-class and per-explanation F1 (mean over runs)."""
    feats = [
        (
            (r.truth[:, None] == np.arange(len(r.class_names))) & r.rows[:, None],
            (r.pred[:, None] == np.arange(len(r.class_names))) & r.rows[:, None],
            r.expl_truth & r.rows[:, None],
            r.expl_pred & r.rows[:, None],
        )
        for r in runs
    ]
    parts: dict[str, list[np.ndarray]] = {}
    for w in bootstrap_weights(panel.image_ids.size, resamples, seed, panel.groups):
        wt = as_columns(w)
        cls = [_binary_f1(t, p, wt) for t, p, _, _ in feats]
        parts.setdefault("macro", []).append(np.mean([_nanmean_rows(x) for x in cls], axis=0))
        parts.setdefault("class", []).append(np.mean(cls, axis=0))
        parts.setdefault("expl", []).append(
            np.mean([_binary_f1(t, p, wt) for _, _, t, p in feats], axis=0)
        )
    rep = {k: np.concatenate(v) for k, v in parts.items()}
    first = runs[0]
    used = np.logical_or.reduce([r.expl_used for r in runs])
    return {
        "macro_f1": intervals(rep["macro"], seed=seed).as_dict(),
        "per_class": {
            name: intervals(rep["class"][:, j], seed=seed).as_dict()
            for j, name in enumerate(first.class_names)
        },
        "per_explanation": {
            name: intervals(rep["expl"][:, j], seed=seed).as_dict()
            for j, name in enumerate(first.explanation_names)
            if used[j]
        },
        "bootstrap": bootstrap_info(resamples, seed, panel.groups),
    }


def model_intervals_severity(
    panel: GoldenPanel,
    preds: tuple[np.ndarray, np.ndarray, np.ndarray],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> dict[str, Any]:
    """95% intervals of the model's RMSE and MAE against the consensus."""
    rows, truth, pred = preds
    feat = np.stack([(pred - truth) ** 2, np.abs(pred - truth), rows.astype(float)], axis=1)
    feat[~rows] = 0.0
    parts = []
    for w in bootstrap_weights(panel.image_ids.size, resamples, seed, panel.groups):
        parts.append((feat.T @ np.ascontiguousarray(w.T, dtype=float)).T)
    s = np.concatenate(parts)
    return {
        "rmse": intervals(np.sqrt(safe_divide(s[:, 0], s[:, 2])), seed=seed).as_dict(),
        "mae": intervals(safe_divide(s[:, 1], s[:, 2]), seed=seed).as_dict(),
        "bootstrap": bootstrap_info(resamples, seed, panel.groups),
    }


def compare_quality(
    panel: GoldenPanel,
    runs: Sequence[QualityPredictions],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    reading: str = "pairs",
) -> dict[str, Any]:
    """Paired bootstrap of the model's F1s (mean over runs) against the raters' bars."""
    if reading not in READINGS:
        raise ValueError(f"reading must be one of {', '.join(READINGS)}")
    assert panel.classes is not None and panel.explanations is not None
    n = panel.image_ids.size
    c = len(panel.class_names)
    table = PairTable(panel.classes, c, panel.explanations)
    onehot = np.arange(c)
    model_feats = [
        (
            (r.truth[:, None] == onehot) & r.rows[:, None],
            (r.pred[:, None] == onehot) & r.rows[:, None],
            r.expl_truth & r.rows[:, None] & r.expl_used,
            r.expl_pred & r.rows[:, None] & r.expl_used,
        )
        for r in runs
    ]

    def figures(wt: np.ndarray) -> dict[str, np.ndarray]:
        cls, ex = table.stats(wt, panel.min_co_labeled)
        class_f1 = np.mean([_binary_f1(t, p, wt) for t, p, _, _ in model_feats], axis=0)
        macro = np.mean([_nanmean_rows(_binary_f1(t, p, wt)) for t, p, _, _ in model_feats], axis=0)
        expl_f1 = np.mean([_binary_f1(t, p, wt) for _, _, t, p in model_feats], axis=0)
        return {
            "model_macro": macro,
            "model_class": class_f1,
            "model_expl": expl_f1,
            "pairs_mean": cls.macro_mean,
            "pairs_std": cls.macro_std,
            "pairs_bar": cls.pairs_bar,
            "class_average_mean": cls.class_average_mean,
            "class_average_std": cls.class_average_std,
            "class_average_bar": cls.class_average_bar,
            "class_mean": cls.class_mean,
            "class_std": cls.class_std,
            "expl_mean": ex.class_mean,
            "expl_std": ex.class_std,
        }

    point = {k: v[0] for k, v in figures(as_columns(np.ones((1, n), dtype=np.int32))).items()}
    reps: dict[str, list[np.ndarray]] = {}
    for w in bootstrap_weights(n, resamples, seed, panel.groups):
        for key, value in figures(as_columns(w)).items():
            reps.setdefault(key, []).append(value)
    rep = {key: np.concatenate(parts) for key, parts in reps.items()}

    readings = {}
    for name, label in READINGS.items():
        bar, bar_reps = point[f"{name}_bar"], rep[f"{name}_bar"]
        readings[name] = {
            "label": label,
            "rater_mean": _f(point[f"{name}_mean"]),
            "rater_std": _f(point[f"{name}_std"]),
            "bar": _f(bar),
            "bar_interval": intervals(bar_reps, seed=seed).as_dict(),
            **_compare(point["model_macro"], bar, rep["model_macro"] - bar_reps, True),
        }

    def per_label(names, model, mean, std, used) -> dict[str, Any]:
        out = {}
        for j, name in enumerate(names):
            if not used[j]:
                continue
            bar = point[mean][j] - point[std][j]
            diffs = rep[model][:, j] - (rep[mean][:, j] - rep[std][:, j])
            out[name] = {
                "model_f1": _f(point[model][j]),
                "model_f1_interval": intervals(rep[model][:, j], seed=seed).as_dict(),
                "rater_mean": _f(point[mean][j]),
                "rater_std": _f(point[std][j]),
                "bar": _f(bar),
                **_compare(point[model][j], bar, diffs, True),
            }
        return out

    expl_used = np.logical_or.reduce([r.expl_used for r in runs])
    chosen = readings[reading]
    return {
        "reading": reading,
        "reading_label": READINGS[reading],
        "rule": QUALITY_RULE,
        "model_macro_f1": _f(point["model_macro"]),
        "model_macro_f1_interval": intervals(rep["model_macro"], seed=seed).as_dict(),
        "rater_macro_f1_mean": chosen["rater_mean"],
        "rater_macro_f1_std": chosen["rater_std"],
        "bar": chosen["bar"],
        "difference": chosen["difference"],
        "difference_interval": chosen["difference_interval"],
        "verdict": chosen["verdict"],
        "readings": readings,
        "per_class": per_label(
            panel.class_names, "model_class", "class_mean", "class_std", np.ones(c, dtype=bool)
        ),
        "per_explanation": per_label(
            panel.explanation_names, "model_expl", "expl_mean", "expl_std", expl_used
        ),
        "bootstrap": bootstrap_info(resamples, seed, panel.groups),
    }


def compare_severity(
    panel: GoldenPanel,
    rows: np.ndarray,
    truth: np.ndarray,
    runs: Sequence[np.ndarray],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> dict[str, Any]:
    """Paired bootstrap of the model's RMSE (mean over runs) against the bar (worst rater RMSE).

    `rows` (n,) bool: panel images evaluated; `truth` (n,) the consensus there; `runs` the
    predictions (n,) of each model.
    """
    assert panel.grades is not None
    n = panel.image_ids.size
    r = panel.grades.shape[1]
    sq, ok, _, _ = rmse_parts(panel.grades)
    rater_feat = np.concatenate([sq, ok], axis=1)
    model_sq = np.stack([np.where(rows, (p - truth) ** 2, 0.0) for p in runs], axis=1)
    model_feat = np.concatenate([model_sq, rows.astype(float)[:, None]], axis=1)

    def figures(wt: np.ndarray) -> dict[str, np.ndarray]:
        s = (rater_feat.T @ wt).T
        bar = worst(rmse_from_sums(s[:, :r], s[:, r:]))
        m = (model_feat.T @ wt).T
        model = rmse_from_sums(m[:, :-1], m[:, -1:]).mean(axis=1)
        return {"bar": bar, "model": model}

    point = {k: v[0] for k, v in figures(np.ones((n, 1))).items()}
    reps: dict[str, list[np.ndarray]] = {}
    for w in bootstrap_weights(n, resamples, seed, panel.groups):
        for key, value in figures(np.ascontiguousarray(w.T, dtype=float)).items():
            reps.setdefault(key, []).append(value)
    rep = {key: np.concatenate(parts) for key, parts in reps.items()}
    return {
        "rule": SEVERITY_RULE,
        "model_rmse": _f(point["model"]),
        "model_rmse_interval": intervals(rep["model"], seed=seed).as_dict(),
        "bar": _f(point["bar"]),
        "bar_interval": intervals(rep["bar"], seed=seed).as_dict(),
        **_compare(point["model"], point["bar"], rep["model"] - rep["bar"], False),
        "bootstrap": bootstrap_info(resamples, seed, panel.groups),
    }


def bootstrap_info(resamples: int, seed: int, groups: np.ndarray | None) -> dict[str, Any]:
    return {
        "resamples": resamples,
        "seed": seed,
        "level": DEFAULT_LEVEL,
        "method": "percentile, paired (the same resamples for model and raters)",
        "unit": "case" if groups is not None else "image",
    }
