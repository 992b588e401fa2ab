"""End to end: degraded real photos + procedural skin -> manifest -> quality model -> golden figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from labeler.ml import evaluate, list_models, load_model, predict
from labeler.ml.config import EXPLANATIONS, QUALITY_CLASSES, QualityConfig


def test_held_out_explanations_beat_the_trivial_baseline(quality_model, quality_manifest):
    result = evaluate(
        quality_model.path, quality_manifest, {"macro_f1_mean": 0.77, "macro_f1_std": 0.07}
    )
    figures = result["figures"]
    assert figures["n"] >= 150
    for name in EXPLANATIONS:
        fig = figures["per_explanation"][name]
        prevalence = fig["support"] / figures["n"]
        always_yes = 2 * prevalence / (1 + prevalence)  # F1 of answering "yes" for every image
        assert fig["support"] >= 5, name
        assert fig["f1"] >= always_yes + 0.25, (name, fig, always_yes)
    assert figures["macro_f1"] > 0.75
    assert np.sum(figures["confusion"]["matrix"]) == figures["n"]
    assert result["verdict"]["expert_level"] == (figures["macro_f1"] >= 0.70)
    saved = Path(quality_model.path) / f"evaluation-{result['manifest_sha256'][:12]}.json"
    assert json.loads(saved.read_text())["figures"]["macro_f1"] == figures["macro_f1"]


def test_model_folder_holds_everything_and_is_small(quality_model, models_dir):
    folder = Path(quality_model.path)
    for name in (
        "model.onnx",
        "config.json",
        "labels.json",
        "thresholds.json",
        "model.json",
        "metrics.json",
    ):
        assert (folder / name).is_file(), name
    assert quality_model.size_bytes < 15_000_000
    cfg = QualityConfig.from_dict(json.loads((folder / "config.json").read_text()))
    assert cfg.epochs == 40 and cfg.classes == QUALITY_CLASSES and cfg.explanations == EXPLANATIONS
    thresholds = json.loads((folder / "thresholds.json").read_text())
    assert set(thresholds) == set(EXPLANATIONS) and all(0 < t < 1 for t in thresholds.values())
    meta = json.loads((folder / "model.json").read_text())
    assert len(meta["manifest_sha256"]) == 64
    assert quality_model.metrics["onnx_vs_heads_max_abs_diff"] < 1e-4
    assert quality_model.id in [m.id for m in list_models(models_dir, "quality")]


def test_training_reuses_cached_features(quality_model, quality_manifest, tmp_path, cache_dir):
    from labeler.ml import train_quality

    again = train_quality(quality_manifest, tmp_path, cache_dir, seed=0, epochs=2)
    assert again.metrics["features_computed"] == 0
    assert again.id != quality_model.id


def test_predict_reports_issues_in_plain_language(quality_model, quality_manifest):
    model = load_model(quality_model.path)
    rows = [json.loads(line) for line in quality_manifest.read_text().splitlines()[1:]]
    blurry = next(
        r for r in rows if r["split"] == "golden" and r["quality"]["explanations"] == ["blurry"]
    )
    res = predict(model, Path(blurry["path"]).read_bytes())
    assert res["class"] in QUALITY_CLASSES
    assert abs(sum(res["probabilities"].values()) - 1) < 1e-3
    json.dumps(res)  # JSON-able
    for issue in res["issues"]:
        assert issue["probability"] >= issue["threshold"] and issue["text"].endswith(
            issue["text"].split(":")[-1]
        )
    if any(i["name"] == "blurry" for i in res["issues"]):
        assert "hold the camera steady" in next(
            i["text"] for i in res["issues"] if i["name"] == "blurry"
        )
    cam = np.array(res["cams"][res["class"]])
    assert cam.shape == (7, 7) and cam.max() == pytest.approx(1.0, abs=1e-3) and cam.min() >= 0
    full = predict(model, Path(blurry["path"]), cams="all")
    assert set(full["cams"]) == set(QUALITY_CLASSES) | set(EXPLANATIONS)
