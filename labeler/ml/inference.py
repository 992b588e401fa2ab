"""Load a model folder and predict on images: onnxruntime only, no torch.

``predict`` returns plain JSON-able dicts (see ``predict_quality`` / ``predict_severity``).
Callers that serve many requests should keep the LoadedModel (it holds the ORT session).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import REQUIRED, ModelInfo, read_info
from .config import QualityConfig, SeverityConfig
from .errors import BadImage, ModelNotFound
from .faces import find_patches
from .images import DECODE_SIDE, ImageInput, crop_input, load_image, to_input
from .metrics import discretize
from .runtime import session


@dataclass
class LoadedModel:
    info: ModelInfo
    config: QualityConfig | SeverityConfig
    labels: dict[str, Any]
    thresholds: dict[str, float]
    session: Any

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def kind(self) -> str:
        return self.info.kind


def load_model(folder: str | Path, *, threads: int | None = None) -> LoadedModel:
    """Open a model folder (see artifacts.py); ModelNotFound if it is missing or incomplete."""
    folder = Path(folder)
    missing = [f for f in REQUIRED if not (folder / f).is_file()]
    if missing:
        raise ModelNotFound(f"no complete model in {folder} (missing {', '.join(missing)})")
    info = read_info(folder)
    read = lambda name: json.loads((folder / name).read_text(encoding="utf-8"))
    cfg_cls = QualityConfig if info.kind == "quality" else SeverityConfig
    return LoadedModel(
        info,
        cfg_cls.from_dict(read("config.json")),
        read("labels.json"),
        read("thresholds.json"),
        session(folder / "model.onnx", threads),
    )


def predict(model: LoadedModel, image: ImageInput, *, cams: bool | str = True) -> dict[str, Any]:
    """One image (bytes, path, PIL image or HxWx3 uint8 array) -> a JSON-able result.

    Raises BadImage for input that is not a usable image.
    """
    if model.kind == "quality":
        return predict_quality(model, [image], cams=cams)[0]
    return predict_severity(model, image)


def run_quality(
    model: LoadedModel, inputs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw outputs (class probs, explanation probs, CAMs) for a float32 [N, 224, 224, 3] batch."""
    return tuple(model.session.run(["class_probs", "expl_probs", "cams"], {"image": inputs}))


def predict_quality(
    model: LoadedModel, images: Sequence[ImageInput], *, cams: bool | str = True
) -> list[dict[str, Any]]:
    """Class, probabilities, issues above threshold with plain-language text, and Grad-CAMs.

    ``cams``: True gives 7x7 maps (max 1) for the predicted class and each reported issue;
    "all" gives all 9 (4 classes then 5 explanations); False none.
    """
    batch = np.stack([to_input(load_image(im, max_side=DECODE_SIDE)) for im in images])
    probs, expl, maps = run_quality(model, batch)
    classes, names = model.labels["classes"], model.labels["explanations"]
    texts = model.labels.get("explanation_text", {})
    out = []
    for i in range(len(batch)):
        k = int(np.argmax(probs[i]))
        issues = [
            {
                "name": e,
                "probability": round(float(expl[i, j]), 4),
                "threshold": model.thresholds[e],
                "text": texts.get(e, e),
            }
            for j, e in enumerate(names)
            if expl[i, j] >= model.thresholds[e]
        ]
        issues.sort(key=lambda d: -d["probability"])
        res: dict[str, Any] = {
            "model_id": model.id,
            "kind": "quality",
            "class": classes[k],
            "probabilities": {c: round(float(probs[i, j]), 4) for j, c in enumerate(classes)},
            "explanations": {e: round(float(expl[i, j]), 4) for j, e in enumerate(names)},
            "issues": issues,
        }
        if cams:
            targets = list(classes) + list(names)
            wanted = targets if cams == "all" else [classes[k]] + [d["name"] for d in issues]
            res["cams"] = {t: np.round(maps[i, targets.index(t)], 3).tolist() for t in wanted}
        out.append(res)
    return out


def severity_patches(model: LoadedModel | SeverityConfig, image: ImageInput):
    """The image as an RGB array and its skin patches (landmark method from the model config)."""
    cfg = model.config if isinstance(model, LoadedModel) else model
    arr = np.asarray(load_image(image))
    return arr, find_patches(arr, cfg.landmarks)


def predict_severity(model: LoadedModel, image: ImageInput) -> dict[str, Any]:
    """Image score = mean of the patch scores, clipped to the scale; patch boxes with their scores."""
    if model.kind != "severity":
        raise BadImage(f"model {model.id} is a {model.kind} model")
    arr, ps = severity_patches(model, image)
    batch = np.stack([crop_input(arr, p.box) for p in ps.patches])
    raw = model.session.run(["score"], {"image": batch})[0]
    lo, hi = model.config.scale
    scores = np.clip(raw, lo, hi)
    score = float(np.clip(scores.mean(), lo, hi))
    grade: float = int(discretize([score], model.config.edges)[0])  # 1..len(edges) + 1
    values = model.config.extra.get("scale_values")  # the project's scale (models since its scale)
    if values:
        grade = values[grade - 1]
        grade = int(grade) if float(grade).is_integer() else grade
    return {
        "model_id": model.id,
        "kind": "severity",
        "score": round(score, 3),
        "grade": grade,
        "scale": [lo, hi],
        "method": ps.method,
        "face": list(ps.face) if ps.face else None,
        "image_size": [int(arr.shape[1]), int(arr.shape[0])],
        "patches": [
            {"name": p.name, "box": list(p.box), "score": round(float(s), 3)}
            for p, s in zip(ps.patches, scores, strict=True)
        ],
        # Synthetic or out-of-range raw scores are a domain-gap signal (see ml-recipe.md).
        "out_of_range": bool(np.any((raw < lo - 0.5) | (raw > hi + 0.5))),
    }
