"""The heads (quality) and the MLP (severity) train on CUDA when the machine has it (a GPU worker), on
the CPU otherwise. This machine has no GPU, so the CUDA path itself is not run here: the device is
mocked, and the tests check that both trainers ask for it and hand back CPU weights for export."""

from __future__ import annotations

import numpy as np
import torch

from labeler.ml import heads as heads_module
from labeler.ml import quality, severity
from labeler.ml.config import SeverityConfig
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


def _spy_device(monkeypatch, module) -> list[str]:
    """Mock the device choice of a trainer module: CUDA 'available', the run itself on the CPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    asked: list[str] = []

    def device() -> torch.device:
        asked.append(heads_module.training_device().type)  # what the real choice says: cuda
        return torch.device("cpu")  # no GPU here: train where we can

    monkeypatch.setattr(module, "training_device", device)
    return asked


def test_quality_training_asks_for_the_device(monkeypatch):
    asked = _spy_device(monkeypatch, quality)
    cfg = QualityConfig(epochs=1)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(16, 1280)).astype(np.float32)
    y = rng.integers(0, len(cfg.classes), 16)
    E = (rng.random((16, len(cfg.explanations))) < 0.2).astype(np.float32)
    fit_heads(X, y, E, cfg)
    assert asked == ["cuda"]


def test_severity_mlp_trains_on_the_chosen_device_and_comes_back_on_the_cpu(monkeypatch):
    asked = _spy_device(monkeypatch, severity)
    moved: list[str] = []
    real_to = torch.Tensor.to

    def to(self, *args, **kwargs):  # record where the training tensors are sent
        moved.append(str(args[0]) if args else str(kwargs.get("device")))
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", to)
    cfg = SeverityConfig(epochs=2, hidden=(16,))
    rng = np.random.default_rng(2)
    X = rng.normal(size=(24, 1280)).astype(np.float32)
    t = rng.uniform(1, 5, 24)
    mlp, seconds = severity.fit_mlp(X, t, cfg)
    assert asked == ["cuda"] and len(seconds) == 2
    assert moved and set(moved) == {"cpu"}  # features, targets and permutations: the chosen device
    assert {p.device.type for p in mlp.parameters()} == {"cpu"} and not mlp.training
