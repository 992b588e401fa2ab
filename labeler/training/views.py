"""Lead pages: a project's models (start training, runs with progress, prescreen), a model's report."""

from __future__ import annotations

import json

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from .. import ml, protocols
from ..auth.models import Role
from ..auth.permissions import role_required
from ..db import get_session
from ..errors import NotFound, ValidationError, on_form_error
from ..images.storage import app_storage
from ..ml.config import BACKBONE_BLOCKS
from ..projects.access import authorized_project
from ..projects.models import Project
from ..projects.settings import read_settings
from .control import cancel_run, retry_run
from .model_store import model_folder
from .models import ModelKind
from .services import (
    get_run,
    model_report,
    project_models,
    project_runs,
    run_dict,
    run_for_model,
    set_prescreen_model,
)
from .simulations import curve_points, read_simulation
from .worker import launch_run, training_unavailable

bp = Blueprint("training", __name__)


def project_model(project: Project, model_id: str):
    """(folder, run) of a model trained from this project; 404 for anything else."""
    run = run_for_model(get_session(), model_id)
    if run is None or run.project_id != project.id:
        raise NotFound(f"no model {model_id!r} in this project", code="model_not_found")
    return model_folder(current_app.config, model_id), run


def _models_page(project: Project, error: str | None = None, status: int = 200):
    db = get_session()
    runs = project_runs(db, project)
    curve = read_simulation(app_storage(), project.id)  # stored by `labeler ml simulate-active`
    page = render_template(
        "training/models_page.html",
        project=project,
        protocol=protocols.get(project.protocol),
        runs=[run_dict(r) for r in runs],
        models=project_models(db, current_app.config, project),
        kinds=list(ModelKind),
        prescreen=read_settings(project.settings).prescreen_model_id,
        training_unavailable=training_unavailable(),
        error=error,
        curve=curve,
        curve_geometry=curve_points(curve) if curve else None,
        backbone_blocks=BACKBONE_BLOCKS,
    )
    return page, status


@bp.get("/projects/<int:project_id>/models")
@role_required(Role.lead, Role.admin)
def models_page(project_id: int):
    return _models_page(authorized_project(project_id))


@bp.post("/projects/<int:project_id>/models/train")
@role_required(Role.lead, Role.admin)
def train(project_id: int):
    db = get_session()
    project = authorized_project(project_id)
    on_form_error(lambda exc: _models_page(project, exc.message, exc.status))
    if not request.form.get("kind"):
        raise ValidationError("choose the kind of model to train")
    run = launch_run(
        db,
        current_app.config,
        current_user,
        project,
        kind=request.form.get("kind"),
        seed=request.form.get("seed"),
        epochs=request.form.get("epochs"),
        fine_tune_blocks=request.form.get("fine_tune_blocks") or None,
        checkpoint=db.commit,
    )
    flash(f"Training run {run.id} started.")
    return redirect(url_for("training.models_page", project_id=project.id))


def _project_run(project_id: int, run_id: int):
    """The project (authorized) and its run, for a form that acts on one run."""
    project = authorized_project(project_id)
    on_form_error(lambda exc: _models_page(project, exc.message, exc.status))
    run = get_run(get_session(), run_id)
    if run.project_id != project.id:
        raise NotFound(f"no training run with id {run_id}")
    return project, run


@bp.post("/projects/<int:project_id>/training-runs/<int:run_id>/cancel")
@role_required(Role.lead, Role.admin)
def cancel(project_id: int, run_id: int):
    db = get_session()
    project, run = _project_run(project_id, run_id)
    cancel_run(db, current_user, run)
    flash(f"Training run {run.id} cancelled.")
    return redirect(url_for("training.models_page", project_id=project.id))


@bp.post("/projects/<int:project_id>/training-runs/<int:run_id>/retry")
@role_required(Role.lead, Role.admin)
def retry(project_id: int, run_id: int):
    db = get_session()
    project, run = _project_run(project_id, run_id)
    unavailable = training_unavailable()
    if unavailable:
        raise ml.MLUnavailable(unavailable)
    retry_run(db, current_app.config, current_user, run, checkpoint=db.commit)
    flash(f"Training run {run.id} queued again.")
    return redirect(url_for("training.models_page", project_id=project.id))


@bp.post("/projects/<int:project_id>/models/prescreen")
@role_required(Role.lead, Role.admin)
def prescreen(project_id: int):
    db = get_session()
    project = authorized_project(project_id)
    on_form_error(lambda exc: _models_page(project, exc.message, exc.status))
    set_prescreen_model(db, current_user, project, request.form.get("model_id"), current_app.config)
    model_id = read_settings(project.settings).prescreen_model_id
    flash(
        f"Imports are prescreened with {model_id}." if model_id else "Prescreen on import is off."
    )
    return redirect(url_for("training.models_page", project_id=project.id))


@bp.get("/projects/<int:project_id>/models/<model_id>")
@role_required(Role.lead, Role.admin)
def model_report_page(project_id: int, model_id: str):
    project = authorized_project(project_id)
    folder, run = project_model(project, model_id)
    return render_template(
        "training/model_report.html", project=project, report=model_report(folder, run)
    )


@bp.get("/projects/<int:project_id>/models/<model_id>/report.json")
@role_required(Role.lead, Role.admin)
def model_report_json(project_id: int, model_id: str):
    project = authorized_project(project_id)
    folder, run = project_model(project, model_id)
    body = json.dumps(model_report(folder, run), indent=2)
    return Response(
        body,
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="{model_id}-report.json"'},
    )
