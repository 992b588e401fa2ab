"""Evaluate a model on the golden set against the fused reference (domain.md 6); no torch.

``rater_figures`` comes from the metrics module and sets the "expert level" bar:

* quality: ``{"macro_f1_mean": 0.77, "macro_f1_std": 0.07}`` (pairwise inter-rater macro F1)
* severity: ``{"bar": 0.517}`` (the worst rater's RMSE against the golden consensus)

Without them the figures are computed and the verdict is left out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

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


def evaluate(
    model_dir: str | Path | LoadedModel,
    manifest_path: str | Path,
    rater_figures: Mapping[str, float] | None = None,
    *,
    split: str = "golden",
    batch: int = 16,
    save: bool = True,
) -> dict[str, Any]:
    """Figures on the manifest's ``split`` images (golden by default); saved beside the model.

    Saved as ``evaluation-<manifest sha256[:12]>.json`` in the model folder when ``save``.
    """
    model = model_dir if isinstance(model_dir, LoadedModel) else load_model(model_dir)
    manifest = read_manifest(manifest_path)
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
        verdict = None
        if rater_figures:
            verdict = quality_verdict(
                figures["macro_f1"], rater_figures["macro_f1_mean"], rater_figures["macro_f1_std"]
            )
    else:
        rows = manifest.severity_rows(split)
        if not rows:
            raise NotEnoughData(f"no {split} images with a severity consensus in the manifest")
        pred = np.array([predict_severity(model, r.path)["score"] for r in rows])
        figures = severity_figures(
            np.array([r.severity.mean for r in rows]),
            pred,
            model.config.edges,
            scale=manifest.scale,
        )
        verdict = severity_verdict(figures["rmse"], rater_figures["bar"]) if rater_figures else None
    result = {
        "model_id": model.id,
        "kind": model.kind,
        "split": split,
        "manifest_sha256": manifest.sha256,
        "trained_on_manifest_sha256": model.info.manifest_sha256,
        "figures": figures,
        "raters": dict(rater_figures) if rater_figures else None,
        "verdict": verdict,
    }
    if save:
        out = Path(model.info.path) / f"evaluation-{manifest.sha256[:12]}.json"
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def evaluate_runs(
    model_dirs: Sequence[str | Path],
    manifest_path: str | Path,
    rater_figures: Mapping[str, float] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Several seeds' models on the same data: each run's figures and mean +- std over runs.

    The verdict of the summary uses the mean figure (macro F1 or RMSE) over the runs.
    """
    runs = [evaluate(d, manifest_path, rater_figures, **kwargs) for d in model_dirs]
    summary = aggregate_runs([r["figures"] for r in runs])
    verdict = None
    if rater_figures and runs:
        if runs[0]["kind"] == "quality":
            verdict = quality_verdict(
                summary["macro_f1"]["mean"],
                rater_figures["macro_f1_mean"],
                rater_figures["macro_f1_std"],
            )
        else:
            verdict = severity_verdict(summary["rmse"]["mean"], rater_figures["bar"])
    return {"runs": runs, "summary": summary, "verdict": verdict, "seeds": len(runs)}
