"""API: suggestion jobs (leads), reader studies (leads create, close and read the report; raters read).

A rater's reading carries the same keys whether its image is golden or not; its image is served like
a queue item's (no ETag, no name, never cached).
"""

from __future__ import annotations

from flask import current_app, jsonify, url_for
from flask_login import current_user
from sqlalchemy import event, select

from ..allocation.queue import rater_project
from ..assist.compute import launch_job
from ..assist.jobs import job_dict, project_jobs, start_job
from ..assist.models import ReaderStudy
from ..assist.studies import (
    answer_reading,
    close_study,
    create_study,
    get_study,
    next_reading,
    open_study,
    own_reading,
    rater_phase,
    reading_json,
    study_dict,
)
from ..assist.study_report import study_report
from ..auth.models import Role
from ..auth.permissions import role_required
from ..db import get_session
from ..errors import NotFound
from ..images.models import Image
from ..images.serve import blob_response
from ..images.storage import InvalidKey
from ..projects.access import authorized_project
from .allocation import RATER_IMAGE_CACHE, display_type
from .blueprint import bp
from .params import json_body


@bp.get("/projects/<int:project_id>/suggestion-jobs")
@role_required(Role.lead, Role.admin)
def suggestion_jobs_api(project_id: int):
    db = get_session()
    return jsonify(jobs=[job_dict(j) for j in project_jobs(db, authorized_project(project_id))])


@bp.post("/projects/<int:project_id>/suggestion-jobs")
@role_required(Role.lead, Role.admin)
def start_suggestion_job_api(project_id: int):
    db = get_session()
    project = authorized_project(project_id)
    body = json_body()
    job = start_job(db, current_app.config, current_user, project, body.get("model_id"))
    config, job_id = current_app.config, job.id
    # the worker reads the job from the database: it starts once the request has committed
    event.listen(db, "after_commit", lambda _s: launch_job(config, job_id), once=True)
    return jsonify(job_dict(job)), 202


@bp.get("/projects/<int:project_id>/reader-studies")
@role_required(Role.lead, Role.admin)
def reader_studies_api(project_id: int):
    db = get_session()
    project = authorized_project(project_id)
    studies = db.scalars(
        select(ReaderStudy).where(ReaderStudy.project_id == project.id).order_by(ReaderStudy.id)
    )
    return jsonify(studies=[study_dict(s) for s in studies])


@bp.post("/projects/<int:project_id>/reader-studies")
@role_required(Role.lead, Role.admin)
def create_reader_study_api(project_id: int):
    db = get_session()
    project = authorized_project(project_id)
    body = json_body()
    study = create_study(
        db,
        current_user,
        project,
        model_id=body.get("model_id"),
        washout_days=body.get("washout_days"),
        seed=body.get("seed"),
    )
    return jsonify(study_dict(study)), 201


def _lead_study(project_id: int, study_id: int) -> ReaderStudy:
    return get_study(get_session(), authorized_project(project_id), study_id)


@bp.post("/projects/<int:project_id>/reader-studies/<int:study_id>/close")
@role_required(Role.lead, Role.admin)
def close_reader_study_api(project_id: int, study_id: int):
    study = close_study(get_session(), current_user, _lead_study(project_id, study_id))
    return jsonify(study_dict(study))


@bp.get("/projects/<int:project_id>/reader-studies/<int:study_id>/report")
@role_required(Role.lead, Role.admin)
def reader_study_report_api(project_id: int, study_id: int):
    return jsonify(study_report(get_session(), _lead_study(project_id, study_id)))


def _reading_body(db, reading, study, state) -> dict:
    body = reading_json(db, reading, study, state)
    body["image_url"] = url_for("api.reading_image", reading_id=reading.public_id)
    return body


@bp.get("/projects/<int:project_id>/reader-study/next")
@role_required(Role.rater)
def next_reading_api(project_id: int):
    """The caller's next reading in the project's open study, and where they stand."""
    db = get_session()
    project = rater_project(db, current_user, project_id)
    if project is None:
        raise NotFound(f"no project with id {project_id}")
    study = open_study(db, project)
    if study is None:
        return jsonify(study=None, state=None, reading=None)
    reading, state = next_reading(db, study, current_user)
    return jsonify(
        study={"id": study.id},
        state=state.as_dict(),
        reading=_reading_body(db, reading, study, state) if reading else None,
    )


@bp.get("/readings/<reading_id>")
@role_required(Role.rater)
def reading_api(reading_id: str):
    db = get_session()
    reading, study = own_reading(db, current_user, reading_id)
    state = rater_phase(db, study, current_user.id)
    return jsonify(reading=_reading_body(db, reading, study, state))


@bp.put("/readings/<reading_id>")
@role_required(Role.rater)
def answer_reading_api(reading_id: str):
    body = json_body()
    db = get_session()
    reading, study = own_reading(db, current_user, reading_id)
    answer_reading(
        db,
        current_user,
        reading,
        study,
        {
            k: body.get(k)
            for k in ("decision", "icd10", "icd10_missing_text", "explanations", "grade")
        },
        time_spent_ms=body.get("time_spent_ms"),
    )
    nxt, state = next_reading(db, study, current_user)
    return jsonify(
        state=state.as_dict(), next=_reading_body(db, nxt, study, state) if nxt else None
    )


@bp.get("/readings/<reading_id>/image")
@role_required(Role.rater)
def reading_image(reading_id: str):
    """The reading's display image: no ETag, no Last-Modified, no file name, never cached."""
    db = get_session()
    reading, _study = own_reading(db, current_user, reading_id)
    key = db.scalar(select(Image.display_key).where(Image.id == reading.image_id))
    try:
        return blob_response(
            current_app.extensions["labeler_storage"],
            key,
            display_type(key or ""),
            cache_control=RATER_IMAGE_CACHE,
        )
    except (FileNotFoundError, InvalidKey):
        raise NotFound("the image of this reading is missing from storage") from None
