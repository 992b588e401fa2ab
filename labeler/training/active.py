"""After a training run: re-order the project's never-shown fold items by the new model's
uncertainty, when the project asks for it (``queue.order = "uncertainty"``; allocation/active.py
does the re-ordering and keeps golden and shown items where they are)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from .. import ml
from ..allocation.active import movable_fold_items, order_fold_items, uses_uncertainty_order
from ..errors import LabelerError
from ..images.models import Image
from ..ml.active import prediction_uncertainty
from ..projects.models import Project
from .model_store import model_folder

log = logging.getLogger(__name__)


def image_uncertainty(model: Any, images: list[Image], storage: Any) -> dict[int, float]:
    """Image id -> the model's uncertainty (labeler.ml.active) from each image's display copy;
    an image that cannot be read or predicted gets none (it keeps its seeded order)."""
    edges = getattr(model.config, "edges", None)
    out: dict[int, float] = {}
    for image in images:
        try:
            with storage.open(image.display_key) as fh:
                pred = ml.predict(model, fh.read(), cams=False)
        except FileNotFoundError:
            log.warning("active learning: image %s is missing from storage", image.id)
            continue
        except LabelerError as exc:
            log.warning("active learning: image %s not predicted: %s", image.id, exc.message)
            continue
        out[image.id] = prediction_uncertainty(pred, edges)
    return out


def fold_uncertainty(
    session: Session, project: Project, model_folder: str | Path, storage: Any
) -> tuple[str, dict[int, float]] | dict[str, Any]:
    """The model's id and its uncertainty on each never-shown fold image of the project (reads
    only; the slow part, so it holds no lock), or why there is nothing to do."""
    if not uses_uncertainty_order(project):
        return {"status": "off"}
    model = ml.load_model(model_folder)
    if model.kind != getattr(project.protocol, "value", project.protocol):
        return {"status": "skipped", "reason": f"a {model.kind} model"}
    ids = sorted({row.image_id for row in movable_fold_items(session, project)})
    images = list(session.scalars(select(Image).where(Image.id.in_(ids)))) if ids else []
    return model.id, image_uncertainty(model, images, storage)


def refresh_after_run(
    factory: sessionmaker, config: Mapping[str, Any], project_id: int, model_id: str, storage: Any
) -> dict[str, Any]:
    """The hook at the end of a successful training run (worker.py): predict in one transaction,
    re-order and commit in a second (the worker's own sessions; requests never call this). A
    failure is logged and reported, never turned into a failed run."""
    try:
        with factory() as s:
            found = fold_uncertainty(
                s, s.get(Project, project_id), model_folder(config, model_id, storage), storage
            )
        if isinstance(found, dict):
            return found
        with factory() as s:
            counts = order_fold_items(
                s, None, s.get(Project, project_id), found[1], model_id=found[0]
            )
            s.commit()
        return {"status": "done", "model_id": found[0], "scored": len(found[1]), **counts}
    except (LabelerError, OSError, SQLAlchemyError) as exc:
        reason = exc.message if isinstance(exc, LabelerError) else str(exc)
        log.warning("active learning: project %s not re-ordered: %s", project_id, reason)
        return {"status": "skipped", "reason": reason}
