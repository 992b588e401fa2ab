"""Issue 16 section 5: fine-tuning the last backbone blocks with the quality heads (finetune.py).

This machine has no GPU: the CUDA path is the same code on another device, so these tests force it
onto the CPU (fine_tune_on_cpu) with tiny inputs (24 synthetic photos, one epoch, batches of 8).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import synth
import torch

from labeler.ml import train_quality
from labeler.ml.backbone import Lite0Features, export_onnx
from labeler.ml.config import QualityConfig
from labeler.ml.errors import FineTuneUnavailable, MLError
from labeler.ml.finetune import SplitLite0, fine_tune_device, fit_fine_tuned, intermediates
from labeler.ml.heads import QualityNet
from labeler.ml.images import DECODE_SIDE, load_image, to_input
from labeler.ml.manifest import read_manifest
from labeler.ml.quality import class_weights, quality_targets
from labeler.ml.runtime import session

TINY = QualityConfig(epochs=1, batch_size=8, flip_augment=False, val_fraction=0.25)


@pytest.fixture(scope="module")
def tiny_manifest(tmp_path_factory) -> Path:
    return synth.quality_dataset(tmp_path_factory.mktemp("ft") / "q", 24, seed=5)


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_the_last_blocks_train_and_the_earlier_ones_do_not(tiny_manifest, tmp_path):
    rows = read_manifest(tiny_manifest).quality_training_rows()
    y, E = quality_targets(rows, TINY)
    backbone = Lite0Features()
    split = SplitLite0(backbone, 2)
    before = _state(backbone.net)
    H, computed = intermediates(split, rows, tmp_path, torch.device("cpu"))
    assert computed == len(rows) and H.shape[1:] == (192, 7, 7)  # the input of block 14
    # cached: a second pass computes nothing and returns the same arrays
    H2, again = intermediates(split, rows, tmp_path, torch.device("cpu"))
    assert again == 0 and np.array_equal(H, H2)
    w = class_weights(y, len(TINY.classes), TINY.max_class_weight)
    heads, seconds = fit_fine_tuned(H, y, E, w, split, TINY, torch.device("cpu"))
    assert len(seconds) == 1
    after = backbone.net.state_dict()
    changed = {
        k.split(".")[0] + ("." + k.split(".")[1] if k.startswith("_blocks") else "")
        for k in before
        if not torch.equal(before[k], after[k])
    }
    assert changed == {"_blocks.14", "_blocks.15", "_conv_head", "_bn1"}
    # BatchNorm statistics stay ImageNet's (eval mode), only weights move
    assert torch.equal(before["_bn1.running_mean"], after["_bn1.running_mean"])
    assert not any(p.requires_grad for p in backbone.parameters())

    # the exported graph carries the fine-tuned blocks: it matches torch to 1e-4 and not the
    # same heads on the untouched backbone
    onnx = export_onnx(
        QualityNet(heads, backbone),
        tmp_path / "m.onnx",
        ["image"],
        ["class_probs", "expl_probs", "cams"],
    )
    x = np.stack([to_input(load_image(r.path, max_side=DECODE_SIDE)) for r in rows[:4]])
    ort_p = session(onnx).run(["class_probs"], {"image": x})[0]
    with torch.no_grad():
        tuned = QualityNet(heads, backbone.eval())(torch.from_numpy(x))[0].numpy()
        frozen = QualityNet(heads, Lite0Features())(torch.from_numpy(x))[0].numpy()
    assert np.abs(ort_p - tuned).max() < 1e-4
    assert np.abs(ort_p - frozen).max() > 1e-3


def test_train_quality_fine_tuned_exports_one_model_that_predicts(tiny_manifest, tmp_path):
    stages: list[str] = []
    info = train_quality(
        tiny_manifest,
        tmp_path / "models",
        tmp_path / "cache",
        config=TINY,
        fine_tune_blocks=1,
        fine_tune_on_cpu=True,
        progress=lambda stage, done, total: stages.append(stage),
    )
    assert {"features", "train"} <= set(stages)
    folder = Path(info.path)
    assert sorted(p.name for p in folder.glob("*.onnx")) == ["model.onnx"]
    meta = json.loads((folder / "model.json").read_text())
    assert meta["backbone_fine_tuned_blocks"] == 1
    assert json.loads((folder / "config.json").read_text())["fine_tune_blocks"] == 1
    assert info.metrics["fine_tune"]["blocks"] == 1 and info.metrics["fine_tune"]["device"] == "cpu"
    assert info.metrics["onnx_vs_heads_max_abs_diff"] < 1e-4  # onnxruntime vs torch
    rows = read_manifest(tiny_manifest).quality_training_rows()
    x = np.stack([to_input(load_image(r.path, max_side=DECODE_SIDE)) for r in rows[:3]])
    probs, expl, cams = session(folder / "model.onnx").run(None, {"image": x})
    assert probs.shape == (3, 4) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert expl.shape == (3, 5) and cams.shape == (3, 9, 7, 7)


def test_fine_tuning_without_a_gpu_is_refused_in_words(tiny_manifest, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(FineTuneUnavailable, match="needs a GPU") as err:
        train_quality(
            tiny_manifest, tmp_path / "models", tmp_path / "cache", config=TINY, fine_tune_blocks=2
        )
    assert err.value.status == 422
    assert not (tmp_path / "models").exists() and not (tmp_path / "cache").exists()
    # with CUDA the same request goes to the GPU; 0 blocks is the frozen path (no device asked)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert fine_tune_device(2, False).type == "cuda"
    for bad in (0, -1, 17, True):
        with pytest.raises(MLError, match="from 1 to 16"):
            fine_tune_device(bad, True)


def test_the_default_stays_the_frozen_backbone():
    assert QualityConfig().fine_tune_blocks == 0
    # an old model's config.json (no fine-tune fields) still loads
    old = {k: v for k, v in QualityConfig().to_dict().items() if not k.startswith("fine_tune")}
    assert QualityConfig.from_dict(old).fine_tune_blocks == 0
