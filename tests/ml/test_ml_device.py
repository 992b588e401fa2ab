"""The heads train on CUDA when the machine has it (a GPU worker), on the CPU otherwise. This machine
has no GPU, so the CUDA path itself is not run here."""

from __future__ import annotations

import numpy as np
import torch

from labeler.ml.quality import QualityConfig, fit_heads, training_device


def test_the_device_follows_cuda_availability(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert training_device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert training_device().type == "cpu"


def test_heads_come_back_on_the_cpu_for_export(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = QualityConfig(epochs=2)
    rng = np.random.default_rng(0)
    n, d = 32, 1280
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.integers(0, len(cfg.classes), n)
    E = (rng.random((n, len(cfg.explanations))) < 0.2).astype(np.float32)
    heads, seconds = fit_heads(X, y, E, cfg)
    assert len(seconds) == 2
    assert {p.device.type for p in heads.parameters()} == {"cpu"} and not heads.training
