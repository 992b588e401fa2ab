"""Prescreen on import (seed 001 step 0): the project's quality model judges each new image.

Off unless the project's ``prescreen_model_id`` setting names one of its quality models. The
prediction is stored on the image (``meta["prescreen"]``) so a lead can review the images the
model flags as poor quality before allocating them. The import never fails because of the
prescreen: when the model cannot be used, the summary says it was skipped and why.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import LabelerError
from ..images.models import Image
from ..projects.models import Project

log = logging.getLogger(__name__)
FLAG_CLASS = "poor_quality"
_CACHE: OrderedDict[tuple[str, float], Any] = OrderedDict()
_CACHE_SIZE = 4
_LOCK = threading.Lock()


def loaded_model(folder: Path):  # a labeler.ml LoadedModel
    """A model folder opened once per process (the ONNX session is reused across requests)."""
    from .. import ml

    key = (str(folder), (folder / "model.onnx").stat().st_mtime)
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    model = ml.load_model(folder)
    with _LOCK:
        _CACHE[key] = model
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return model


def prescreen_images(
    session: Session,
    config: Mapping[str, Any],
    project: Project,
    image_ids: Iterable[int],
    storage: Any,
) -> dict[str, Any]:
    """Predict each image's quality class from its display derivative; store it; summarise.

    Returns ``{"status": "off" | "done" | "skipped", ...}``; flushes, never commits.
    """
    from .. import ml
    from .services import models_dir

    model_id = (project.settings or {}).get("prescreen_model_id")
    ids = list(image_ids)
    if not model_id:
        return {"status": "off"}
    if not ids:
        return {"status": "done", "model_id": model_id, "screened": 0, "flagged": 0}
    try:
        model = loaded_model(ml.resolve_model(models_dir(config), model_id))
        if model.kind != "quality":
            raise ml.MLError(f"model {model_id} is a {model.kind} model, not a quality model")
    except (LabelerError, OSError) as exc:
        reason = exc.message if isinstance(exc, LabelerError) else str(exc)
        log.warning("prescreen skipped for project %s: %s", project.id, reason)
        return {"status": "skipped", "model_id": model_id, "reason": reason}
    screened = flagged = 0
    failed: list[dict[str, Any]] = []
    for image in session.scalars(select(Image).where(Image.id.in_(ids))):
        path = storage.path(image.display_key)
        try:
            pred = ml.predict(model, path, cams=False)
        except LabelerError as exc:
            failed.append({"image_id": image.id, "error": exc.message})
            continue
        is_flagged = pred["class"] == FLAG_CLASS
        image.meta = {
            **(image.meta or {}),
            "prescreen": {
                "model_id": model_id,
                "class": pred["class"],
                "probability": pred["probabilities"][pred["class"]],
                "flagged": is_flagged,
                "issues": [{"name": i["name"], "text": i["text"]} for i in pred["issues"]],
            },
        }
        screened += 1
        flagged += is_flagged
    session.flush()
    return {
        "status": "done",
        "model_id": model_id,
        "screened": screened,
        "flagged": flagged,
        "failed": failed,
    }


def prescreen_import(
    session: Session, config: Mapping[str, Any], project: Project, summary: Any, storage: Any
) -> dict[str, Any]:
    """The step right after an import: prescreen the images it added and attach the result to its summary."""
    result = prescreen_images(
        session, config, project, [r["id"] for r in summary.imported if r.get("id")], storage
    )
    summary.prescreen = result
    return result


def flagged_filter():  # a SQL expression
    """Images the prescreen flagged as poor quality (portable JSON path: SQLite and PostgreSQL)."""
    return Image.meta[("prescreen", "class")].as_string() == FLAG_CLASS
