"""Evaluate a model on the golden set against the fused reference (docs/domain.md section 6); no torch.

``rater_figures`` comes from the metrics module and sets the "expert level" bar:

* quality: ``{"macro_f1_mean": 0.77, "macro_f1_std": 0.07}`` (pairwise inter-rater macro F1)
* severity: ``{"bar": 0.517}`` (the worst rater's RMSE against the golden consensus)
* and ``"panel"``: a ``comparison.GoldenPanel`` of the raters' golden labels. With it the verdict
  is a paired bootstrap (difference and interval, per class and explanation too); without it,
  the point rule on the figures above.

Without them the figures (with the model's own intervals) are computed and the verdict is left
out. Every evaluation says how many images it rests on (``n_images``); below ``min_images`` (the
project's ``agreement.min_eval_images``) it gives the figures but refuses a verdict and says why
(``verdict_withheld``: "too few images to judge ...").
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..metrics.bootstrap import DEFAULT_RESAMPLES
from ..metrics.breakdowns import (
    DEFAULT_MIN_GROUP_IMAGES,
    body_site_groups,
    fitzpatrick_groups,
    model_quality_breakdown,
    model_severity_breakdown,
)
from .comparison import (
    GoldenPanel,
    compare_quality,
    compare_severity,
    model_intervals_quality,
    model_intervals_severity,
    quality_predictions,
    severity_predictions,
)
from .errors import NotEnoughData
from .images import DECODE_SIDE, load_image, to_input
from .inference import LoadedModel, load_model, predict_severity, run_quality
from .manifest import read_manifest
from .metrics import (
    aggregate_runs,
    quality_figures,
    quality_verdict,
    severity_figures,
    severity_verdict,
)

DEFAULT_MIN_EVAL_IMAGES = 20  # a verdict needs at least this many evaluated images (a setting)


def too_few_to_judge(n: int, min_images: int, split: str = "golden") -> str | None:
    """The reason a verdict is withheld on n evaluated images (None: enough to judge)."""
    if n >= min_images:
        return None
    return (
        f"too few images to judge: the figures rest on {n} {split} image{'s' if n != 1 else ''}, "
        f"and a verdict needs at least {min_images}"
    )


def _panel_index(panel: GoldenPanel | None, rows: Sequence[Any], split: str) -> np.ndarray | None:
    """Position of each evaluated row in the raters' golden panel (None: no paired comparison)."""
    if panel is None or split != "golden" or not rows:
        return None
    ids = np.array([r.image_id for r in rows], dtype=np.int64)
    pos = np.searchsorted(panel.image_ids, ids)
    pos = np.minimum(pos, max(panel.image_ids.size - 1, 0))
    if panel.image_ids.size == 0 or not np.array_equal(panel.image_ids[pos], ids):
        return None  # the manifest and the panel disagree about the golden set: no pairing
    return pos


def _own_panel(rows: Sequence[Any]) -> GoldenPanel:
    """A panel of the evaluated images alone (no raters): intervals for the model's own figures."""
    cases = [r.case_id for r in rows]
    groups = None
    if any(c is not None for c in cases):
        groups = np.array(
            [
                f"case:{c}" if c is not None else f"image:{r.sha256}"
                for c, r in zip(cases, rows, strict=True)
            ]
        )
    return GoldenPanel(
        image_ids=np.array([r.image_id for r in rows], dtype=np.int64), groups=groups
    )


def _evaluate(
    model_dir: str | Path | LoadedModel,
    manifest_path: str | Path,
    rater_figures: Mapping[str, Any] | None = None,
    *,
    split: str = "golden",
    batch: int = 16,
    save: bool = True,
    resamples: int = DEFAULT_RESAMPLES,
    min_images: int = DEFAULT_MIN_EVAL_IMAGES,
) -> tuple[dict[str, Any], Any]:
    """evaluate() and the per-image predictions that evaluate_runs pairs across runs."""
    model = model_dir if isinstance(model_dir, LoadedModel) else load_model(model_dir)
    manifest = read_manifest(manifest_path)
    panel = (rater_figures or {}).get("panel")
    bars = {k: v for k, v in (rater_figures or {}).items() if k != "panel"} or None
    withheld = None
    if model.kind == "quality":
        rows = manifest.quality_rows(split)
        if not rows:
            raise NotEnoughData(f"no {split} images with a resolved quality class in the manifest")
        cfg = model.config
        probs, expl = [], []
        for b in range(0, len(rows), batch):
            x = np.stack(
                [to_input(load_image(r.path, max_side=DECODE_SIDE)) for r in rows[b : b + batch]]
            )
            p, e, _ = run_quality(model, x)
            probs.append(p)
            expl.append(e)
        p, e = np.concatenate(probs), np.concatenate(expl)
        thr = np.array([model.thresholds[n] for n in cfg.explanations])
        y = np.array([cfg.classes.index(r.quality.cls) for r in rows])
        E = np.array([[n in r.quality.explanations for n in cfg.explanations] for r in rows])
        figures = quality_figures(y, p.argmax(1), E, e >= thr, cfg.classes, cfg.explanations)
        pos = _panel_index(panel, rows, split)
        use = panel if pos is not None else _own_panel(rows)
        pos = pos if pos is not None else np.arange(len(rows))
        preds = quality_predictions(
            use, pos, cfg.classes, cfg.explanations, y, p.argmax(1), E, e >= thr
        )
        verdict = None
        withheld = too_few_to_judge(len(rows), min_images, split)
        if withheld is None and use is panel:
            verdict = compare_quality(panel, [preds], resamples=resamples)
        elif withheld is None and bars:
            verdict = quality_verdict(
                figures["macro_f1"], bars["macro_f1_mean"], bars["macro_f1_std"]
            )
        if verdict is not None:
            verdict.setdefault("expert_level", _expert_point(verdict, "quality"))
        figures["intervals"] = model_intervals_quality(use, [preds], resamples)
        figures["fairness"] = model_fairness(rows, y, p.argmax(1), len(cfg.classes), resamples)
    else:
        rows = manifest.severity_rows(split)
        if not rows:
            raise NotEnoughData(f"no {split} images with a severity consensus in the manifest")
        pred = np.array([predict_severity(model, r.path)["score"] for r in rows])
        truth = np.array([r.severity.mean for r in rows])
        figures = severity_figures(truth, pred, model.config.edges, scale=manifest.scale)
        pos = _panel_index(panel, rows, split)
        use = panel if pos is not None else _own_panel(rows)
        pos = pos if pos is not None else np.arange(len(rows))
        preds = severity_predictions(use, pos, truth, pred)
        verdict = None
        withheld = too_few_to_judge(len(rows), min_images, split)
        if withheld is None and use is panel and panel.grades is not None:
            verdict = compare_severity(panel, *preds[:2], [preds[2]], resamples=resamples)
        elif withheld is None and bars:
            verdict = severity_verdict(figures["rmse"], bars["bar"])
        if verdict is not None:
            verdict.setdefault("expert_level", _expert_point(verdict, "severity"))
        figures["intervals"] = model_intervals_severity(use, preds, resamples)
        figures["fairness"] = model_fairness(rows, truth, pred, None, resamples)
    result = {
        "model_id": model.id,
        "kind": model.kind,
        "split": split,
        "manifest_sha256": manifest.sha256,
        "trained_on_manifest_sha256": model.info.manifest_sha256,
        "figures": figures,
        "n_images": len(rows),
        "min_images": min_images,
        "raters": bars,
        "verdict": verdict,
        "verdict_withheld": withheld,
    }
    if save:
        out = Path(model.info.path) / f"evaluation-{manifest.sha256[:12]}.json"
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result, (use if use is panel else None, preds)


def model_fairness(
    rows: Sequence[Any],
    truth: np.ndarray,
    pred: np.ndarray,
    n_classes: int | None,
    resamples: int = DEFAULT_RESAMPLES,
) -> dict[str, Any]:
    """The model's macro F1 (quality, n_classes given) or RMSE (severity) per Fitzpatrick type and
    body site of the import manifest, with intervals; small groups flagged "too few to say"."""
    cases = np.array([r.group for r in rows]) if rows else None
    out: dict[str, Any] = {
        "figure": "macro F1 against the fused class" if n_classes else "RMSE against the consensus",
        "min_group_images": DEFAULT_MIN_GROUP_IMAGES,
    }
    key = "macro_f1" if n_classes else "rmse"
    for name, groups in (
        ("fitzpatrick", fitzpatrick_groups([r.fitzpatrick for r in rows])),
        ("body_site", body_site_groups([r.body_site for r in rows])),
    ):
        if n_classes:
            figs = model_quality_breakdown(
                truth, pred, n_classes, groups, cases=cases, resamples=resamples
            )
        else:
            figs = model_severity_breakdown(truth, pred, groups, cases=cases, resamples=resamples)
        out[name] = [
            {
                "group": f.name,
                "images": f.n_images,
                "too_few": f.too_few,
                key: None if np.isnan(f.value) else f.value,
                "interval": {
                    "low": f.interval.low if f.interval else None,
                    "high": f.interval.high if f.interval else None,
                },
            }
            for f in figs
        ]
    return out


def _expert_point(verdict: Mapping[str, Any], kind: str) -> bool:
    """The point-estimate reading of the rule (kept for older readers): difference on the good side."""
    diff = verdict.get("difference")
    if diff is None:
        return False
    return diff >= 0 if kind == "quality" else diff < 0


def evaluate(
    model_dir: str | Path | LoadedModel,
    manifest_path: str | Path,
    rater_figures: Mapping[str, Any] | None = None,
    *,
    split: str = "golden",
    batch: int = 16,
    save: bool = True,
    resamples: int = DEFAULT_RESAMPLES,
    min_images: int = DEFAULT_MIN_EVAL_IMAGES,
) -> dict[str, Any]:
    """Figures on the manifest's ``split`` images (golden by default); saved beside the model.

    Saved as ``evaluation-<manifest sha256[:12]>.json`` in the model folder when ``save``. With
    the raters' golden panel (``rater_figures["panel"]``) the verdict is a paired bootstrap of the
    model against the raters' bar, per class and explanation too (see ``comparison``). On fewer
    than ``min_images`` images the figures come without a verdict (``verdict_withheld`` says why).
    """
    return _evaluate(
        model_dir,
        manifest_path,
        rater_figures,
        split=split,
        batch=batch,
        save=save,
        resamples=resamples,
        min_images=min_images,
    )[0]


def evaluate_runs(
    model_dirs: Sequence[str | Path],
    manifest_path: str | Path,
    rater_figures: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Several seeds' models on the same data: each run's figures and mean +- std over runs.

    The verdict of the summary uses the mean figure (macro F1 or RMSE) over the runs; with the
    raters' panel, the mean over runs on each resample of the paired bootstrap.
    """
    pairs = [_evaluate(d, manifest_path, rater_figures, **kwargs) for d in model_dirs]
    runs = [r for r, _ in pairs]
    summary = aggregate_runs([r["figures"] for r in runs])
    verdict = None
    withheld = next((r["verdict_withheld"] for r in runs if r["verdict_withheld"]), None)
    resamples = kwargs.get("resamples", DEFAULT_RESAMPLES)
    bars = {k: v for k, v in (rater_figures or {}).items() if k != "panel"} or None
    panel = pairs[0][1][0] if pairs else None
    if withheld is None and panel is not None:
        preds = [p for _, (_, p) in pairs]
        if runs[0]["kind"] == "quality":
            verdict = compare_quality(panel, preds, resamples=resamples)
        else:
            rows, truth = preds[0][0], preds[0][1]
            verdict = compare_severity(
                panel, rows, truth, [p[2] for p in preds], resamples=resamples
            )
        verdict["expert_level"] = _expert_point(verdict, runs[0]["kind"])
    elif withheld is None and bars and runs:
        if runs[0]["kind"] == "quality":
            verdict = quality_verdict(
                summary["macro_f1"]["mean"], bars["macro_f1_mean"], bars["macro_f1_std"]
            )
        else:
            verdict = severity_verdict(summary["rmse"]["mean"], bars["bar"])
    return {
        "runs": runs,
        "summary": summary,
        "verdict": verdict,
        "verdict_withheld": withheld,
        "n_images": runs[0]["n_images"] if runs else 0,
        "seeds": len(runs),
    }
