"""Helpers of the model-in-the-loop tests (a module of its own: conftest is not importable by name
when several test folders run together)."""

from __future__ import annotations

import io

from helpers import image_row
from PIL import Image as PILImage

from labeler.assist.models import JobStatus, Suggestion, SuggestionJob
from labeler.images.models import Image

MODEL_ID = "quality-20261130T000000-abc123"


def stored_images(app, db, project, n: int) -> list[Image]:
    rows = []
    storage = app.extensions["labeler_storage"]
    for i in range(n):
        row = image_row(project.id, size=16)
        buf = io.BytesIO()
        PILImage.new("RGB", (16, 16), (i % 256, 120, 90)).save(buf, "JPEG")
        storage.put(row.display_key, buf.getvalue())
        rows.append(row)
    db.add_all(rows)
    db.flush()
    return rows


def store_suggestions(db, project, answers: dict[int, dict | None], model_id: str = MODEL_ID):
    """Suggestions as a finished job stores them (answer None: the model could not read the image)."""
    for image_id, answer in answers.items():
        db.add(
            Suggestion(
                image_id=image_id,
                model_id=model_id,
                project_id=project.id,
                answer=answer,
                error=None if answer else "not a usable image",
            )
        )
    db.add(
        SuggestionJob(
            project_id=project.id,
            model_id=model_id,
            status=JobStatus.succeeded,
            done=len(answers),
            total=len(answers),
        )
    )
    db.flush()


def quality_answer(i: int) -> dict:
    cls = ("lesion", "no_skin", "healthy_skin", "poor_quality")[i % 4]
    issues = [{"name": "blurry", "probability": 0.82}] if cls == "poor_quality" else []
    return {"class": cls, "probability": 0.91, "issues": issues}
