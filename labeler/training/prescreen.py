"""Prescreen on import (step 0 of the Microsoft/Nestlé acne severity study): the project's quality model judges each new image.

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

from flask import Flask
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from .. import ml
from ..errors import LabelerError
from ..images.models import Image
from ..images.services import ImportHook, register_import_hook
from ..jobs.queue import broker_url, send_prescreen
from ..projects.models import Project
from ..projects.settings import read_settings
from .model_store import model_folder

log = logging.getLogger(__name__)
FLAG_CLASS = "poor_quality"
_CACHE: OrderedDict[tuple[str, float], Any] = OrderedDict()
_CACHE_SIZE = 4
_LOCK = threading.Lock()


def loaded_model(folder: Path):  # a labeler.ml LoadedModel
    """A model folder opened once per process (the ONNX session is reused across requests)."""
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
    """The import hook. With a Celery broker (LABELER_CELERY_BROKER_URL) the new images are sent to
    a worker once the import is committed (``{"status": "queued", ...}``; the worker runs
    screen_images and stores each result on its image); without one they are screened here."""
    model_id = read_settings(project.settings).prescreen_model_id
    ids = list(image_ids)
    if not model_id:
        return {"status": "off"}
    if ids and broker_url(config):
        project_id = project.id

        def send(_session: Session) -> None:
            try:
                send_prescreen(config, project_id, ids)
            except Exception:  # the import stands; its images are simply not prescreened
                log.exception(
                    "prescreen of %s images of project %s not queued", len(ids), project_id
                )

        event.listen(session, "after_commit", send, once=True)
        return {"status": "queued", "model_id": model_id, "images": len(ids)}
    return screen_images(session, config, project, ids, storage)


def screen_images(
    session: Session,
    config: Mapping[str, Any],
    project: Project,
    image_ids: Iterable[int],
    storage: Any,
) -> dict[str, Any]:
    """Predict each image's quality class from its display derivative; store it; summarise.
    Storing the same prediction twice changes nothing, so a task delivered twice is harmless.

    Returns ``{"status": "off" | "done" | "skipped", ...}``; flushes, never commits.
    """
    model_id = read_settings(project.settings).prescreen_model_id
    ids = list(image_ids)
    if not model_id:
        return {"status": "off"}
    if not ids:
        return {"status": "done", "model_id": model_id, "screened": 0, "flagged": 0}
    try:
        model = loaded_model(model_folder(config, model_id, storage))
        if model.kind != "quality":
            raise ml.MLError(f"model {model_id} is a {model.kind} model, not a quality model")
    except (LabelerError, OSError) as exc:
        reason = exc.message if isinstance(exc, LabelerError) else str(exc)
        log.warning("prescreen skipped for project %s: %s", project.id, reason)
        return {"status": "skipped", "model_id": model_id, "reason": reason}
    screened = flagged = 0
    failed: list[dict[str, Any]] = []
    for image in session.scalars(select(Image).where(Image.id.in_(ids))):
        try:
            with storage.open(image.display_key) as fh:  # any backend: the bytes, not a path
                data = fh.read()
            pred = ml.predict(model, data, cams=False)
        except FileNotFoundError:
            failed.append({"image_id": image.id, "error": "the image file is missing from storage"})
            continue
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


def describe_prescreen(result: dict[str, Any]) -> str | None:
    """The prescreen's words in an import's summary line."""
    if result.get("status") == "done":
        return f"prescreen flagged {result['flagged']} of {result['screened']} as poor quality"
    if result.get("status") == "skipped":
        return f"prescreen skipped: {result['reason']}"
    if result.get("status") == "queued":
        return f"prescreen of {result['images']} images queued: their results appear as a worker screens them"
    return None


PRESCREEN_HOOK = ImportHook("prescreen", prescreen_images, describe_prescreen)


def init_app(_app: Flask) -> None:
    """Prescreen every import with the project's quality model (when its settings name one)."""
    register_import_hook(PRESCREEN_HOOK)


def flagged_filter():  # a SQL expression
    """Images the prescreen flagged as poor quality (portable JSON path: SQLite and PostgreSQL)."""
    return Image.meta[("prescreen", "class")].as_string() == FLAG_CLASS
