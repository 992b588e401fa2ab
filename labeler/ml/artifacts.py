"""Versioned model folders: write, list, resolve by id, load (no torch; inference is onnxruntime).

One folder per trained model, ``<models_dir>/<kind>-<YYYYmmddTHHMMSS>-<6 hex>/``:

* ``model.onnx``   backbone and heads in ONE graph (no separate backbone file), so a server
  or a browser (onnxruntime-web) needs nothing else. It computes in fp32; quality models store
  fp32 weights, severity models store their MLP weights as fp16 and the backbone's as fp16 plus an
  int8 residual (compact.py; 14.1 MB instead of 21.4 MB, scores within 1e-3 of fp32). Input
  ``image``: float32 [N, 224, 224, 3] raw RGB 0..255; the graph normalises. Quality outputs
  ``class_probs`` [N, 4], ``expl_probs`` [N, 5], ``cams`` [N, 9, 7, 7] (4 classes then 5
  explanations, each scaled to max 1). Severity output ``score`` [N] per 224x224 skin patch
  (unclipped).
* ``config.json``  the config dataclass (QualityConfig / SeverityConfig) used to train it.
* ``labels.json``  class and explanation names (in output order) and plain-language texts.
* ``thresholds.json`` per-explanation decision thresholds chosen on the validation split.
* ``model.json``   id, kind, creation time, training manifest sha256, sizes, library versions.
* ``metrics.json`` validation figures of the training run (evaluate() adds evaluation-*.json).

A folder is written under a hidden temporary name and renamed when complete, so a listed model is
always whole.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from .compact import compact_weights
from .config import QualityConfig, SeverityConfig
from .errors import ModelNotFound

MODEL_ID = re.compile(r"^(quality|severity)-\d{8}T\d{6}-[0-9a-f]{6}$")
REQUIRED = ("model.onnx", "config.json", "labels.json", "thresholds.json", "model.json")
FP32_FORMAT = "onnx fp32, backbone + heads in one graph"


def _mlp_weight(name: str) -> bool:
    return name.startswith("mlp.mlp.") and name.endswith(".weight")


def _backbone(name: str) -> bool:
    return not name.startswith("mlp.")


# How each kind's weights are stored (compact.py). The severity MLP adds 7.9 MB to the 13.5 MB
# backbone: its weight matrices lose nothing measurable in fp16 (scores move by < 1e-4), while
# the backbone's fp16 rounding moves scores by up to ~1e-2, so it keeps an 8-bit residual (24 bits
# a weight). The standardisation (mu, sd) and the biases stay fp32: rounding sd alone moved scores
# by 1.5e-3. Quality models are 14.2 MB fp32 already (and Grad-CAMs read every weight): unchanged.
COMPACT = {
    "severity": (
        {"fp16": _mlp_weight, "fp24": _backbone},
        (
            "onnx, backbone + heads in one graph computing in fp32; MLP weights stored fp16, "
            "backbone weights fp16 + int8 residual"
        ),
    ),
}


@dataclass(frozen=True)
class ModelInfo:
    """What train_* returns and list_models lists."""

    id: str
    kind: str
    path: str
    size_bytes: int
    created: str
    manifest_sha256: str
    metrics: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def new_model_id(kind: str) -> str:
    return f"{kind}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


def _dump(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def write_model(
    models_dir: str | Path,
    *,
    kind: str,
    onnx_path: Path,
    config: QualityConfig | SeverityConfig,
    labels: dict[str, Any],
    thresholds: dict[str, float],
    manifest_sha256: str,
    metrics: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> ModelInfo:
    """Move a freshly exported ONNX file and its metadata into a new versioned folder."""
    root = Path(models_dir)
    root.mkdir(parents=True, exist_ok=True)
    model_id = new_model_id(kind)
    tmp = root / f".tmp-{model_id}"
    tmp.mkdir()
    try:
        shutil.move(str(onnx_path), tmp / "model.onnx")
        fmt, weights = FP32_FORMAT, None
        if kind in COMPACT:
            select, fmt = COMPACT[kind]
            weights = compact_weights(tmp / "model.onnx", **select).to_dict()
        size = (tmp / "model.onnx").stat().st_size
        created = datetime.now(UTC).isoformat(timespec="seconds")
        _dump(tmp / "config.json", config.to_dict())
        _dump(tmp / "labels.json", labels)
        _dump(tmp / "thresholds.json", thresholds)
        _dump(tmp / "metrics.json", metrics)
        meta = {
            "id": model_id,
            "kind": kind,
            "created": created,
            "manifest_sha256": manifest_sha256,
            "size_bytes": size,
            "size_mb": round(size / 1e6, 2),
            "format": fmt,
            **({"weights": weights} if weights else {}),
            "versions": {p: version(p) for p in ("torch", "onnxruntime", "onnx")},
            **(extra or {}),
        }
        _dump(tmp / "model.json", meta)
        tmp.rename(root / model_id)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ModelInfo(model_id, kind, str(root / model_id), size, created, manifest_sha256, metrics)


def resolve_model(models_dir: str | Path, model_id: str) -> Path:
    """The folder of a model id, or ModelNotFound (ids are validated: no path tricks)."""
    if not isinstance(model_id, str) or not MODEL_ID.match(model_id):
        raise ModelNotFound(f"unknown model id {model_id!r}", model_id=str(model_id))
    folder = Path(models_dir) / model_id
    if not all((folder / f).is_file() for f in REQUIRED):
        raise ModelNotFound(f"unknown model id {model_id!r}", model_id=model_id)
    return folder


def read_info(folder: str | Path) -> ModelInfo:
    folder = Path(folder)
    try:
        meta = json.loads((folder / "model.json").read_text(encoding="utf-8"))
        metrics_path = folder / "metrics.json"
        metrics = (
            json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.exists() else {}
        )
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelNotFound(f"no usable model in {folder}") from exc
    return ModelInfo(
        meta["id"],
        meta["kind"],
        str(folder),
        meta["size_bytes"],
        meta["created"],
        meta["manifest_sha256"],
        metrics,
    )


def list_models(models_dir: str | Path, kind: str | None = None) -> list[ModelInfo]:
    """Complete model folders, newest first."""
    root = Path(models_dir)
    if not root.is_dir():
        return []
    out = [
        read_info(p)
        for p in root.iterdir()
        if MODEL_ID.match(p.name) and all((p / f).is_file() for f in REQUIRED)
    ]
    return sorted(
        (m for m in out if kind in (None, m.kind)),
        key=lambda m: m.id.split("-", 1)[1],
        reverse=True,
    )
