"""Serving stored suggestions: which model a rater's items show (pre-labeling), one indexed read per
image, and the suggestion in plain words. Computing them is labeler/assist/compute.py (a background job).

The rule that keeps the golden set honest: a rater sees the model's suggestion on all of their items
or on none. So whether a suggestion is shown depends on the project only (its pre-labeling model,
once that model's suggestions are ready for the whole project), never on the item; an image the model
could not read shows "no suggestion for this image", golden or fold alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from ..allocation.models import QueueItem
from ..projects.models import Project
from ..projects.settings import read_settings
from ..protocols import decision_name
from ..protocols.explanations import explanation_name
from .models import JobStatus, Suggestion, SuggestionJob

NO_SUGGESTION = "The model has no suggestion for this image."


def _ready(project_id: int, model_id: str):  # a SQL EXISTS
    return exists().where(
        SuggestionJob.project_id == project_id,
        SuggestionJob.model_id == model_id,
        SuggestionJob.status == JobStatus.succeeded,
    )


def suggestions_ready(session: Session, project_id: int, model_id: str) -> bool:
    """A job has computed this model's suggestions for the whole project (a later job only adds
    the images imported since; until it finishes they show "no suggestion", like any image the
    model could not read)."""
    return bool(session.scalar(select(_ready(project_id, model_id))))


def prelabel_model(session: Session, project: Project) -> str | None:
    """The model whose suggestions every rater of the project sees while labeling, or None (off, or
    its suggestions are not computed for the whole project yet)."""
    model_id = read_settings(project.settings).suggestions_model_id
    if model_id and suggestions_ready(session, project.id, model_id):
        return model_id
    return None


def stored_suggestion(session: Session, image_id: int, model_id: str) -> Suggestion | None:
    """One indexed read (the unique (image_id, model_id) key)."""
    return session.scalar(
        select(Suggestion).where(Suggestion.image_id == image_id, Suggestion.model_id == model_id)
    )


def answer_from_prediction(pred: Mapping[str, Any]) -> dict[str, Any]:
    """What is stored of labeler.ml.predict's answer: the class (or score) and the explanations shown."""
    if "class" in pred:  # a classifier's answer (the quality model); else a score on a scale
        return {
            "class": pred["class"],
            "probability": float(pred["probabilities"][pred["class"]]),
            "issues": [
                {"name": i["name"], "probability": float(i["probability"])}
                for i in pred.get("issues", [])
            ],
        }
    return {"score": float(pred["score"]), "grade": pred["grade"]}


def grade_name(settings: Mapping[str, Any] | None, grade: Any) -> str:
    """A severity grade in the project's words ("3 · Mild")."""
    for step in read_settings(settings).scale:
        if float(step["value"]) == float(grade):
            return f"{step['value']} · {step['name']}"  # as answers read elsewhere ("3 · Mild")
    return str(grade)


def suggestion_text(answer: Mapping[str, Any] | None, settings: Mapping[str, Any] | None) -> str:
    """The suggestion in plain words: "Model suggests: Poor quality (0.91) — blurry (0.82)"."""
    if not answer:
        return NO_SUGGESTION
    if "class" in answer:
        text = f"Model suggests: {decision_name(answer['class'])} ({answer['probability']:.2f})"
        issues = ", ".join(
            f"{explanation_name(i['name']).lower()} ({i['probability']:.2f})"
            for i in answer.get("issues") or []
        )
        return f"{text} — {issues}" if issues else text
    return f"Model suggests: {grade_name(settings, answer['grade'])} (score {answer['score']:.2f})"


def suggestion_view(
    session: Session, project: Project, image_id: int, model_id: str | None
) -> dict[str, Any] | None:
    """What a rater's item carries: None when the project shows no suggestions; else the model's
    answer and its words (the same keys for every image, golden or fold)."""
    if model_id is None:
        return None
    row = stored_suggestion(session, image_id, model_id)
    answer = row.answer if row is not None else None
    return {
        "model_id": model_id,
        "answer": answer,
        "text": suggestion_text(answer, project.settings),
    }


def item_suggestion(
    session: Session, item: QueueItem, project: Project | None = None
) -> dict[str, Any] | None:
    """The suggestion a rater's queue item carries under pre-labeling (None when the project is off):
    whether the model is ready and the image's stored answer in one statement."""
    if project is None or project.id != item.project_id:
        project = session.get(Project, item.project_id)
    model_id = read_settings(project.settings).suggestions_model_id
    if not model_id:
        return None
    answer = (
        select(Suggestion.answer)
        .where(Suggestion.image_id == item.image_id, Suggestion.model_id == model_id)
        .scalar_subquery()
    )
    ready, stored = session.execute(select(_ready(project.id, model_id), answer)).one()
    if not ready:
        return None
    return {
        "model_id": model_id,
        "answer": stored,
        "text": suggestion_text(stored, project.settings),
    }
