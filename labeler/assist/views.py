"""Pages: a lead's "Model in the loop" page (suggestions, pre-labeling, reader studies), a study's
report, and a rater's reading page (one reading at a time, the form of the project's protocol)."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import event

from .. import protocols
from ..allocation.queue import rater_project
from ..auth.models import Role
from ..auth.permissions import role_required
from ..db import get_session
from ..errors import NotFound, ValidationError, on_form_error
from ..projects.access import authorized_project
from ..projects.models import Project
from ..projects.services import update_settings
from ..projects.settings import read_settings
from ..training.services import project_models
from .compute import launch_job
from .jobs import job_dict, project_jobs, start_job
from .studies import (
    answer_reading,
    close_study,
    create_study,
    get_study,
    next_reading,
    open_study,
    own_reading,
    project_studies,
    reading_json,
    study_dict,
)
from .study_report import study_report
from .suggestions import suggestions_ready

bp = Blueprint("assist", __name__)


def _assist_page(project: Project, error: str | None = None, status: int = 200):
    db = get_session()
    kind = protocols.get(project.protocol).model_kind
    models = [m for m in project_models(db, current_app.config, project) if m["kind"] == kind]
    prelabel = read_settings(project.settings).suggestions_model_id
    return render_template(
        "assist/assist_page.html",
        project=project,
        models=models,
        jobs=[job_dict(j) for j in project_jobs(db, project)],
        prelabel=prelabel,
        prelabel_ready=bool(prelabel) and suggestions_ready(db, project.id, prelabel),
        studies=[study_dict(s) for s in project_studies(db, project)],
        error=error,
    ), status


@bp.get("/projects/<int:project_id>/assist")
@role_required(Role.lead, Role.admin)
def assist_page(project_id: int):
    return _assist_page(authorized_project(project_id))


def _lead_form(project_id: int) -> Project:
    project = authorized_project(project_id)
    on_form_error(lambda exc: _assist_page(project, exc.message, exc.status))
    return project


@bp.post("/projects/<int:project_id>/assist/suggestions")
@role_required(Role.lead, Role.admin)
def compute_suggestions(project_id: int):
    db = get_session()
    project = _lead_form(project_id)
    job = start_job(db, current_app.config, current_user, project, request.form.get("model_id"))
    config, job_id = current_app.config, job.id
    event.listen(db, "after_commit", lambda _s: launch_job(config, job_id), once=True)
    flash(f"Computing the suggestions of {job.model_id} (job {job.id}).")
    return redirect(url_for("assist.assist_page", project_id=project.id))


@bp.post("/projects/<int:project_id>/assist/prelabel")
@role_required(Role.lead, Role.admin)
def set_prelabel(project_id: int):
    db = get_session()
    project = _lead_form(project_id)
    model_id = request.form.get("model_id") or None
    update_settings(
        db,
        current_user,
        project,
        {"suggestions_model_id": model_id},
        models_config=current_app.config,
    )
    flash(f"Raters see the suggestions of {model_id}." if model_id else "Pre-labeling is off.")
    return redirect(url_for("assist.assist_page", project_id=project.id))


@bp.post("/projects/<int:project_id>/reader-studies")
@role_required(Role.lead, Role.admin)
def create_study_form(project_id: int):
    db = get_session()
    project = _lead_form(project_id)
    form = request.form
    if not form.get("washout_days", "").strip():
        raise ValidationError("give the washout period in days", field="washout_days")
    study = create_study(
        db,
        current_user,
        project,
        model_id=form.get("model_id"),
        washout_days=form.get("washout_days"),
        seed=form.get("seed") or "0",
        from_text=True,
    )
    flash(f"Reader study {study.id} started.")
    return redirect(url_for("assist.assist_page", project_id=project.id))


@bp.post("/projects/<int:project_id>/reader-studies/<int:study_id>/close")
@role_required(Role.lead, Role.admin)
def close_study_form(project_id: int, study_id: int):
    db = get_session()
    project = _lead_form(project_id)
    close_study(db, current_user, get_study(db, project, study_id))
    flash(f"Reader study {study_id} closed.")
    return redirect(url_for("assist.assist_page", project_id=project.id))


@bp.get("/projects/<int:project_id>/reader-studies/<int:study_id>")
@role_required(Role.lead, Role.admin)
def study_report_page(project_id: int, study_id: int):
    db = get_session()
    project = authorized_project(project_id)
    report = study_report(db, get_study(db, project, study_id))
    return render_template("assist/study_report.html", project=project, report=report)


# -- raters -----------------------------------------------------------------------------------------


def _rater_project(project_id: int) -> Project:
    project = rater_project(get_session(), current_user, project_id)
    if project is None:
        raise NotFound(f"no project with id {project_id}")
    return project


def _reading_page(project: Project, error: str | None = None, status: int = 200):
    db = get_session()
    study = open_study(db, project)
    reading = state = None
    if study is not None:
        reading, state = next_reading(db, study, current_user)
    return render_template(
        "assist/reading_page.html",
        project=project,
        study=study,
        state=state,
        reading=reading_json(db, reading, study, state) if reading else None,
        image_url=url_for("api.reading_image", reading_id=reading.public_id) if reading else None,
        spec=protocols.form_spec(project.protocol, project.settings),
        protocol=protocols.get(project.protocol),
        error=error,
    ), status


@bp.get("/projects/<int:project_id>/reader-study")
@role_required(Role.rater)
def reading_page(project_id: int):
    return _reading_page(_rater_project(project_id))


@bp.post("/projects/<int:project_id>/reader-study/<public_id>")
@role_required(Role.rater)
def answer_reading_form(project_id: int, public_id: str):
    db = get_session()
    project = _rater_project(project_id)
    on_form_error(lambda exc: _reading_page(project, exc.message, exc.status))
    reading, study = own_reading(db, current_user, public_id)
    if study.project_id != project.id:
        raise NotFound("no such reading in your reader study")
    form = request.form
    kind, _, value = (form.get("answer") or "").partition(":")
    data = {
        "decision": value if kind == "decision" else None,
        "icd10": (form.get("icd10") or "").strip() or None,
        "explanations": form.getlist("explanations"),
        "grade": None,
    }
    if kind == "grade":
        try:
            data["decision"], data["grade"] = "graded", float(value)
        except ValueError:
            raise ValidationError("choose a grade of the scale", field="grade") from None
    elif kind != "decision":
        raise ValidationError("choose an answer", field="decision")
    answer_reading(db, current_user, reading, study, data, time_spent_ms=None)
    return redirect(url_for("assist.reading_page", project_id=project.id))
