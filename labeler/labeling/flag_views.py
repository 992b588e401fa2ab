"""Lead page: the images raters flagged "unsure" or left a note on, with their label, and the answers."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from ..auth.models import Role
from ..auth.permissions import role_required
from ..db import get_session
from ..errors import on_form_error
from ..projects.access import authorized_project
from ..projects.models import Project
from ..protocols import answer_name
from .flags import FLAG_STATUSES, answer_flag, project_flags

bp = Blueprint("flags", __name__)
LEADS = "Only the project's leads and admins read raters' flags."


def _page(project: Project, status: str, *, error=None, code=200):
    if status not in FLAG_STATUSES:
        status = "open"
    return render_template(
        "labeling/flags_page.html",
        project=project,
        rows=project_flags(get_session(), project, status),
        status=status,
        statuses=FLAG_STATUSES,
        answer_name=lambda label: answer_name(project.protocol, project.settings, label),
        error=error,
    ), code


@bp.get("/projects/<int:project_id>/flags")
@role_required(Role.lead, Role.admin)
def flags_page(project_id: int):
    return _page(authorized_project(project_id, message=LEADS), request.args.get("status", "open"))


@bp.post("/projects/<int:project_id>/flags/<int:flag_id>/answer")
@role_required(Role.lead, Role.admin)
def answer(project_id: int, flag_id: int):
    project = authorized_project(project_id, message=LEADS)
    status = request.form.get("status", "open")
    on_form_error(lambda exc: _page(project, status, error=exc.message, code=exc.status))
    answer_flag(get_session(), current_user, project, flag_id, request.form.get("answer"))
    flash("Answer sent: the rater sees it on that image.")
    return redirect(url_for("flags.flags_page", project_id=project.id, status=status))
