"""Model evaluation figures of docs/domain.md section 6 and the "expert level" verdicts (pure NumPy)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..metrics.severity import scale_edges
from .config import SEVERITY_EDGES


def _ratio(a: float, b: float) -> float | None:
    return float(a / b) if b else None


def binary_figures(truth: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """Recall (sensitivity), specificity, precision and F1 of one positive label.

    F1 = 2TP / (2TP + FP + FN); None when the label appears in neither truth nor prediction.
    """
    t, p = np.asarray(truth, bool), np.asarray(pred, bool)
    tp, fp = int(np.sum(t & p)), int(np.sum(~t & p))
    fn, tn = int(np.sum(t & ~p)), int(np.sum(~t & ~p))
    return {
        "recall": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "precision": _ratio(tp, tp + fp),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "support": tp + fn,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def _macro(per: Mapping[str, Mapping[str, Any]]) -> float | None:
    f1s = [v["f1"] for v in per.values() if v["f1"] is not None]
    return float(np.mean(f1s)) if f1s else None


def quality_figures(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    expl_true: np.ndarray,
    expl_pred: np.ndarray,
    classes: Sequence[str],
    explanations: Sequence[str],
) -> dict[str, Any]:
    """Per class and per explanation recall/specificity/F1, macro F1s, confusion matrix.

    ``y_*`` are class indices [N]; ``expl_*`` booleans [N, E]. confusion[i][j] counts images of
    reference class i predicted as j.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    per_class = {c: binary_figures(y_true == i, y_pred == i) for i, c in enumerate(classes)}
    et, ep = np.asarray(expl_true, bool), np.asarray(expl_pred, bool)
    per_expl = {e: binary_figures(et[:, j], ep[:, j]) for j, e in enumerate(explanations)}
    k = len(classes)
    confusion = np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)
    return {
        "n": len(y_true),
        "accuracy": _ratio(float(np.sum(y_true == y_pred)), len(y_true)),
        "macro_f1": _macro(per_class),
        "per_class": per_class,
        "explanation_macro_f1": _macro(per_expl),
        "per_explanation": per_expl,
        "confusion": {"labels": list(classes), "matrix": confusion.tolist()},
    }


def discretize(scores: np.ndarray, edges: Sequence[float] = SEVERITY_EDGES) -> np.ndarray:
    """Grades 1..len(edges)+1 from continuous scores (edges [1.5, 2.5, 3.5, 4.5] give 1..5)."""
    return np.digitize(np.asarray(scores, float), edges) + 1


def severity_figures(
    truth: np.ndarray,
    pred: np.ndarray,
    edges: Sequence[float] = SEVERITY_EDGES,
    *,
    scale: Sequence[float] | None = None,
) -> dict[str, Any]:
    """RMSE against the consensus, Pearson r, confusion of the discretized grades.

    With the project's ``scale``, the edges are its midpoints and the labels its values
    (docs/domain.md section 4); without it, ``edges`` and grades 1..len(edges)+1.
    """
    if scale is not None:
        edges = scale_edges(scale)
    t, p = np.asarray(truth, float), np.asarray(pred, float)
    r = None
    if len(t) > 1 and np.std(t) > 0 and np.std(p) > 0:
        r = float(np.corrcoef(t, p)[0, 1])
    k = len(edges) + 1
    gt, gp = discretize(t, edges) - 1, discretize(p, edges) - 1
    confusion = np.bincount(gt * k + gp, minlength=k * k).reshape(k, k)
    return {
        "n": len(t),
        "rmse": float(np.sqrt(np.mean((t - p) ** 2))) if len(t) else None,
        "mae": float(np.mean(np.abs(t - p))) if len(t) else None,
        "pearson_r": r,
        "grade_agreement": _ratio(float(np.sum(gt == gp)), len(t)),
        "confusion": {
            "labels": [grade_value(v) for v in scale]
            if scale is not None
            else list(range(1, k + 1)),
            "matrix": confusion.tolist(),
        },
        "edges": [float(e) for e in edges],
    }


def grade_value(v: float) -> float | int:
    """A scale value as JSON: an int when it is whole."""
    return int(v) if float(v).is_integer() else float(v)


def quality_verdict(
    model_macro_f1: float | None, rater_mean: float, rater_std: float
) -> dict[str, Any]:
    """Expert level: the model's macro F1 is at least the raters' pairwise mean minus one std."""
    ok = model_macro_f1 is not None and model_macro_f1 >= rater_mean - rater_std
    return {
        "expert_level": bool(ok),
        "model_macro_f1": model_macro_f1,
        "rater_macro_f1_mean": rater_mean,
        "rater_macro_f1_std": rater_std,
        "rule": "model macro F1 >= inter-rater macro F1 mean - 1 std",
    }


def severity_verdict(model_rmse: float | None, bar: float) -> dict[str, Any]:
    """Expert level: RMSE against the golden consensus below the worst rater's RMSE (the Microsoft/Nestlé acne severity study)."""
    ok = model_rmse is not None and model_rmse < bar
    return {
        "expert_level": bool(ok),
        "model_rmse": model_rmse,
        "bar": bar,
        "rule": "model RMSE < worst rater RMSE",
    }


def aggregate_runs(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean and population std of every numeric leaf over several seeds' figures.

    Leaves become {"mean": m, "std": s, "n": runs with a value}; non-numeric leaves are dropped.
    """

    def walk(items: list[Any]) -> Any:
        first = next((x for x in items if x is not None), None)
        if isinstance(first, Mapping):
            keys = {k for x in items if isinstance(x, Mapping) for k in x}
            out = {
                k: walk([x.get(k) if isinstance(x, Mapping) else None for x in items]) for k in keys
            }
            return {k: v for k, v in out.items() if v is not None} or None
        vals = [float(x) for x in items if isinstance(x, (int, float)) and not isinstance(x, bool)]
        if not vals:
            return None
        return {"mean": float(np.mean(vals)), "std": float(np.std(vals)), "n": len(vals)}

    return walk(list(runs)) or {}
