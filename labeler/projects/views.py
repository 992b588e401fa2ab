"""Pages: home (by role), project list, project page, new project."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from .. import protocols
from ..allocation.queue import queue_progress
from ..allocation.views import item_url
from ..assist.studies import studies_in_progress
from ..auth.models import Role
from ..auth.permissions import require, role_required, signed_in
from ..db import get_session
from ..errors import on_form_error
from ..images.models import Image
from ..labeling.flags import open_flag_count
from .access import can_manage_project, can_view_project
from .services import create_project, get_project, visible_projects

bp = Blueprint("projects", __name__)


@bp.app_template_filter("protocol_title")
def protocol_title(protocol: object) -> str:
    """A project's protocol in words ('Fitzpatrick skin type'), never its stored name."""
    return protocols.get(protocol).title


@bp.get("/")
@signed_in
def home():
    db = get_session()
    queues = queue_progress(
        db, current_user
    )  # projects the user labels: done/total and where to resume
    continue_urls = {
        pid: item_url(q.next_public_id) for pid, q in queues.items() if q.next_public_id
    }
    return render_template(
        "projects/home.html",
        projects=visible_projects(db, current_user),
        queues=queues,
        continue_urls=continue_urls,
        studies=studies_in_progress(db, list(queues)),  # projects with a reader study to read
    )


@bp.get("/projects")
@role_required(Role.lead, Role.admin)
def project_list():
    db = get_session()
    projects = visible_projects(db, current_user)
    counts = dict(
        db.execute(select(Image.project_id, func.count(Image.id)).group_by(Image.project_id)).all()
    )
    return render_template("projects/project_list.html", projects=projects, counts=counts)


@bp.get("/projects/new")
@role_required(Role.lead, Role.admin)
def project_new():
    return render_template("projects/project_new.html", protocols=protocols.all(), error=None)


@bp.post("/projects/new")
@role_required(Role.lead, Role.admin)
def project_create():
    db = get_session()
    on_form_error(
        lambda exc: (
            render_template(
                "projects/project_new.html", protocols=protocols.all(), error=exc.message
            ),
            exc.status,
        )
    )
    project = create_project(
        db, current_user, request.form.get("name", ""), request.form.get("protocol", "")
    )
    return redirect(url_for("projects.project_page", project_id=project.id))


@bp.get("/projects/<int:project_id>")
@role_required(Role.lead, Role.admin)
def project_page(project_id: int):
    db = get_session()
    project = get_project(db, project_id)
    require(can_view_project(current_user, project) and can_manage_project(current_user, project))
    total = db.scalar(select(func.count(Image.id)).where(Image.project_id == project.id)) or 0
    recent = db.scalars(
        select(Image).where(Image.project_id == project.id).order_by(Image.id.desc()).limit(12)
    ).all()
    return render_template(
        "projects/project_page.html",
        project=project,
        total=total,
        recent=recent,
        open_flags=open_flag_count(db, project),
    )
