"""Lead pages: the agreement dashboard, the tie list with adjudication, export downloads."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from .. import protocols
from ..auth.models import Role
from ..auth.permissions import role_required
from ..db import get_session
from ..errors import LabelerError, on_form_error
from ..labeling.services import lesion_diagnoses
from ..protocols.quality import QUALITY_DECISIONS
from ..validation import clean_flag
from .http import export_response, managed_project
from .services import (
    DASHBOARD_RESAMPLES,
    adjudicate,
    check_scope,
    project_agreement,
    rater_progress,
    tie_list,
)

bp = Blueprint("reports", __name__)


@bp.get("/projects/<int:project_id>/dashboard")
@role_required(Role.lead, Role.admin)
def dashboard(project_id: int):
    db = get_session()
    project = managed_project(project_id)
    scope = check_scope(request.args.get("scope"))
    assisted = clean_flag(request.args.get("assisted"), "'assisted'", field="assisted")
    return render_template(
        "reports/dashboard.html",
        project=project,
        protocol=protocols.get(project.protocol),
        scope=scope,
        figures=project_agreement(db, project, scope, DASHBOARD_RESAMPLES, assisted),
        progress=rater_progress(db, project),
        ties=len(tie_list(db, project)),
    )


@bp.get("/projects/<int:project_id>/ties")
@role_required(Role.lead, Role.admin)
def ties(project_id: int):
    project = managed_project(project_id)
    flagged = request.args.get("flagged") == "1"  # only images raters flagged
    db = get_session()
    ties = tie_list(db, project, flagged_only=flagged)
    return render_template(
        "reports/ties.html",
        project=project,
        ties=ties,
        diagnoses=lesion_diagnoses(db, [t["image_id"] for t in ties]),
        classes=QUALITY_DECISIONS,
        flagged=flagged,
    )


@bp.post("/projects/<int:project_id>/ties/<int:image_id>")
@role_required(Role.lead, Role.admin)
def adjudicate_tie(project_id: int, image_id: int):
    db = get_session()
    project = managed_project(project_id)

    def refused(exc: LabelerError):
        flash(f"Image {image_id}: {exc.message}")
        return redirect(url_for("reports.ties", project_id=project.id)), 303

    on_form_error(refused)
    adjudicate(
        db,
        current_user,
        project,
        image_id,
        request.form.get("decision", ""),
        request.form.get("note"),
    )
    flash(f"Image {image_id} adjudicated.")
    return redirect(url_for("reports.ties", project_id=project.id)), 303


@bp.get("/projects/<int:project_id>/export")
@role_required(Role.lead, Role.admin)
def download(project_id: int):
    project = managed_project(project_id)
    return export_response(project)
