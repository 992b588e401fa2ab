"""Severity models within 15 MB: fp16 MLP weights, fp16 + int8-residual backbone, fp32 results."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from labeler.ml import artifacts, load_model
from labeler.ml.compact import compact_weights
from labeler.ml.images import crop_input
from labeler.ml.inference import severity_patches
from labeler.ml.runtime import session

BUDGET = 15_000_000  # bytes: the ImageQX paper's model is 15 MB


def _patch_inputs(model, manifest, split: str) -> np.ndarray:
    rows = [json.loads(line) for line in manifest.read_text().splitlines()][1:]
    crops = []
    for r in rows:
        if r["split"] != split:
            continue
        arr, ps = severity_patches(model, r["path"])
        crops += [crop_input(arr, p.box) for p in ps.patches]
    return np.stack(crops)


@pytest.fixture(scope="module")
def fp32_severity(severity_manifest, tmp_path_factory, cache_dir):
    """The same training with the weights kept fp32 (the reference the compact file must match)."""
    from labeler.ml import train_severity

    mp = pytest.MonkeyPatch()
    mp.setattr(artifacts, "COMPACT", {})
    try:
        info = train_severity(
            severity_manifest, tmp_path_factory.mktemp("fp32"), cache_dir, seed=0, epochs=20
        )
    finally:
        mp.undo()
    return info


def test_a_trained_severity_model_is_stored_compact(severity_model):
    meta = json.loads(Path(severity_model.path, "model.json").read_text(encoding="utf-8"))
    assert severity_model.size_bytes < BUDGET, severity_model.size_bytes
    assert meta["size_bytes"] == severity_model.size_bytes
    assert "fp16" in meta["format"] and meta["weights"]["bytes_before"] > 20_000_000
    stored = {
        i.name: i.data_type
        for i in onnx.load(f"{severity_model.path}/model.onnx").graph.initializer
    }
    for k in (0, 2, 4):  # the MLP's three weight matrices
        assert stored[f"mlp.mlp.{k}.weight__fp16"] == onnx.TensorProto.FLOAT16
        assert f"mlp.mlp.{k}.weight__res8" not in stored
    assert stored["mlp.sd"] == onnx.TensorProto.FLOAT  # rounding sd moved scores by 1.5e-3
    assert any(n.endswith("__res8") and not n.startswith("mlp.") for n in stored)


def test_compact_scores_stay_within_1e_3_of_fp32(fp32_severity, severity_manifest, tmp_path):
    """On the held-out synthetic faces, every patch score of the compact file is within 1e-3."""
    assert fp32_severity.size_bytes > 20_000_000  # the reference really is fp32
    folder = tmp_path / fp32_severity.id
    shutil.copytree(fp32_severity.path, folder)
    select, _ = artifacts.COMPACT["severity"]
    report = compact_weights(folder / "model.onnx", **select)
    assert report.bytes_after < BUDGET < report.bytes_before
    ref_model = load_model(fp32_severity.path)
    x = _patch_inputs(ref_model, severity_manifest, "golden")
    assert len(x) >= 30
    ref = ref_model.session.run(["score"], {"image": x})[0]
    out = session(folder / "model.onnx").run(["score"], {"image": x})[0]
    assert np.abs(out - ref).max() < 1e-3
    assert np.abs(out - ref).max() > 0  # the weights really changed
    # fp16 alone everywhere is not good enough: that is why the backbone keeps a residual
    plain = tmp_path / "plain.onnx"
    shutil.copy(fp32_severity.path + "/model.onnx", plain)
    compact_weights(plain, fp16=lambda name: not name.startswith("mlp.") or select["fp16"](name))
    coarse = session(plain).run(["score"], {"image": x})[0]
    assert np.abs(coarse - ref).max() > np.abs(out - ref).max()


def test_a_weight_beyond_fp16_is_refused(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    w = np.full((32, 32), 1e6, dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])],
        [numpy_helper.from_array(w, "w")],
    )
    path = tmp_path / "big.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    before = path.read_bytes()
    with pytest.raises(ValueError, match="fp16 range"):
        compact_weights(path, fp16=lambda name: True)
    assert path.read_bytes() == before  # untouched
