"""Suggestion jobs: checking the model a lead chooses, queueing a job, reading jobs back.

The job body and its process are labeler/assist/compute.py (it imports the ML runtime); this module
stays light so settings and pages can use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import protocols
from ..audit.services import record_event
from ..auth.models import User
from ..errors import LabelerError, ValidationError
from ..projects.models import Project
from ..training.model_store import model_folder
from ..training.prescreen import loaded_model
from .models import SuggestionJob


def check_model(config: Mapping[str, Any], project: Project, model_id: Any) -> str:
    """A model id of the project's kind that this server has, or a ValidationError in words."""
    if not isinstance(model_id, str) or not model_id.strip():
        raise ValidationError(
            "choose a model version (its id, as on the Models page)", field="model_id"
        )
    model_id = model_id.strip()
    try:
        model = loaded_model(model_folder(config, model_id))
    except LabelerError as exc:
        raise ValidationError(exc.message, field="model_id") from None
    wanted = protocols.get(project.protocol).model_kind
    if model.kind != wanted:
        asks = f"a {wanted} model" if wanted else "no model (its protocol has none)"
        raise ValidationError(
            f"model {model_id} is a {model.kind} model; this project takes {asks}", field="model_id"
        )
    return model_id


def start_job(
    session: Session, config: Mapping[str, Any], actor: User | None, project: Project, model_id: Any
) -> SuggestionJob:
    """Queue the computation of a model's suggestions for every image of the project (flushes)."""
    model_id = check_model(config, project, model_id)
    job = SuggestionJob(
        project_id=project.id, model_id=model_id, created_by_id=getattr(actor, "id", None)
    )
    session.add(job)
    session.flush()
    record_event(
        session,
        actor,
        "suggestions.start",
        "suggestion_job",
        job.id,
        project_id=project.id,
        model_id=model_id,
    )
    return job


def job_dict(job: SuggestionJob) -> dict[str, Any]:
    return {
        "id": job.id,
        "project_id": job.project_id,
        "model_id": job.model_id,
        "status": job.status.value,
        "done": job.done,
        "total": job.total,
        "error": job.error,
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def project_jobs(session: Session, project: Project) -> list[SuggestionJob]:
    return list(
        session.scalars(
            select(SuggestionJob)
            .where(SuggestionJob.project_id == project.id)
            .order_by(SuggestionJob.id.desc())
        )
    )
