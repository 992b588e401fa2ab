"""Severity: skin patches on the real face of scikit-image's astronaut, rolling, MLP, evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import synth

from labeler.ml import evaluate, load_model, predict
from labeler.ml.config import SeverityConfig
from labeler.ml.faces import Patch, find_patches, patches_one_eye


def _inside(box, region, slack=4):
    x0, y0, x1, y1 = box
    return (
        x0 >= region[0] - slack
        and y0 >= region[1] - slack
        and x1 <= region[2] + slack
        and y1 <= region[3] + slack
    )


@pytest.mark.parametrize("method", ["dlib5", "haar"])
def test_patches_lie_on_the_astronauts_face(method):
    ps = find_patches(synth.photo("astronaut"), method)
    assert ps.method == method
    assert [p.name for p in ps.patches] == ["forehead", "left_cheek", "right_cheek", "chin"]
    for p in ps.patches:
        assert _inside(p.box, synth.FACE), p
    fore, left, right, chin = (p.box for p in ps.patches)
    assert fore[3] <= left[1] and left[2] <= right[0] and max(left[3], right[3]) <= chin[3]


def test_half_face_and_no_face_fallbacks():
    half = np.ascontiguousarray(synth.photo("astronaut")[:, :236])
    ps = find_patches(half)
    assert ps.patches and all(_inside(p.box, synth.FACE) for p in ps.patches)
    coffee = find_patches(synth.photo("coffee"))
    assert coffee.method == "whole-image" and coffee.patches[0].box == (0, 0, 600, 400)


def test_one_eye_geometry():
    names = [n for n, _ in patches_one_eye((120, 100), (80, 60, 200, 220))]
    assert names == ["forehead", "cheek", "chin"]
    (_, fore), (_, cheek), (_, chin) = patches_one_eye((120, 100), (80, 60, 200, 220))
    assert fore[3] < cheek[1] < chin[1] and 60 <= fore[1] and chin[3] <= 220


def test_rolling_balances_grades_on_the_training_side_only():
    from labeler.ml.severity import rolling_items

    targets = np.array([1.0] * 6 + [3.0] * 2 + [5.0])
    base = [(i, Patch("p", (0, 0, 40, 40)), (0, 0)) for i in range(9)]
    items = rolling_items(base, targets, SeverityConfig(max_rolls=4), np.random.default_rng(0))
    grades = [targets[i] for i, _, _ in items]
    assert (
        grades.count(1.0) == 6 and grades.count(3.0) == 6 and grades.count(5.0) == 5
    )  # capped at 4 rolls
    rolled = [r for _, _, r in items if r != (0, 0)]
    assert len(rolled) == 8 and all(6 <= dx <= 34 and 6 <= dy <= 34 for dx, dy in rolled)


def test_severity_end_to_end(severity_model, severity_manifest):
    m = severity_model.metrics
    assert m["patch_methods"].get("dlib5", 0) >= 0.8 * m["n_train_images"] + m["n_val_images"] - 10
    assert m["onnx_vs_mlp_max_abs_diff"] < 1e-4
    rows = [json.loads(line) for line in severity_manifest.read_text().splitlines()[1:]]
    train_mean = np.mean([r["severity"]["mean"] for r in rows if r["split"] == "fold"])
    golden = np.array([r["severity"]["mean"] for r in rows if r["split"] == "golden"])
    baseline = float(np.sqrt(np.mean((golden - train_mean) ** 2)))
    result = evaluate(severity_model.path, severity_manifest, {"bar": 0.517})
    fig = result["figures"]
    assert fig["n"] == len(golden)
    assert fig["rmse"] < 0.85 * baseline, (fig, baseline)
    assert fig["pearson_r"] > 0.5
    assert result["verdict"]["expert_level"] == (fig["rmse"] < 0.517)

    res = predict(load_model(severity_model.path), synth.photo("astronaut"))
    assert res["method"] == "dlib5" and 1.0 <= res["score"] <= 5.0 and 1 <= res["grade"] <= 5
    assert len(res["patches"]) == 4
    for p in res["patches"]:
        assert _inside(p["box"], synth.FACE) and 1.0 <= p["score"] <= 5.0
    json.dumps(res)


def test_a_model_of_a_zero_to_four_project_keeps_its_scale(severity_manifest, tmp_path, cache_dir):
    """The manifest's scale reaches the model: scores clip to 0-4 and grades are 0-4 (the 1-5
    defaults clipped every score up to at least 1 and named the grades 1-5)."""
    from labeler.ml import train_severity

    header, *rows = (json.loads(line) for line in severity_manifest.read_text().splitlines())
    header["scale"] = [0, 1, 2, 3, 4]
    for r in rows:
        r["severity"] = {**r["severity"], "mean": r["severity"]["mean"] - 1}
        r["severity"]["grade"] -= 1
    manifest = tmp_path / "zero_to_four.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in [header, *rows]))
    info = train_severity(manifest, tmp_path / "models", cache_dir, seed=0, epochs=2)
    model = load_model(info.path)
    assert tuple(model.config.scale) == (0.0, 4.0)
    assert tuple(model.config.edges) == (0.5, 1.5, 2.5, 3.5)
    res = predict(model, synth.photo("astronaut"))
    assert 0.0 <= res["score"] <= 4.0 and res["scale"] == [0.0, 4.0]
    expected = int(np.digitize(res["score"], [0.5, 1.5, 2.5, 3.5]))  # the grade is a scale value
    assert res["grade"] == expected
