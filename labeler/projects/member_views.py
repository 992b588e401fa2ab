"""Members page: the project's leads and admins add and remove leads and raters by e-mail."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from ..auth.models import Role
from ..auth.permissions import role_required
from ..db import get_session
from ..errors import on_form_error
from .access import authorized_project, can_manage_project
from .members import (
    add_project_member,
    list_members,
    member_user,
    parse_member_role,
    removal_preview,
    remove_project_member,
)
from .models import MemberRole, Project
from .views import bp

MEMBER_MANAGERS = "Only the project's leads and admins manage its members."


def _project(project_id: int) -> Project:
    return authorized_project(project_id, message=MEMBER_MANAGERS)


def _page(project: Project, *, error=None, status=200, form=None, confirm=None):
    return render_template(
        "projects/members_page.html",
        project=project,
        members=list_members(get_session(), project),
        roles=list(MemberRole),
        error=error,
        form=form or {},
        confirm=confirm,
    ), status


@bp.get("/projects/<int:project_id>/members")
@role_required(Role.lead, Role.admin)
def members_page(project_id: int):
    return _page(_project(project_id))


@bp.post("/projects/<int:project_id>/members")
@role_required(Role.lead, Role.admin)
def member_add(project_id: int):
    db = get_session()
    project = _project(project_id)
    form = request.form
    on_form_error(
        lambda exc: _page(project, error=exc.message, status=exc.status, form=form.to_dict())
    )
    result = add_project_member(
        db,
        current_user,
        project,
        form.get("email", ""),
        form.get("role", ""),
        name=form.get("name", ""),
    )
    invited = " (invited: they can sign in with this address)" if result["invited"] else ""
    queue = result["queue"]
    given = f" They have a queue: the golden set and {queue['fold']} fold items." if queue else ""
    granted = ""
    if result["granted_role"]:
        granted = f" Their account now holds the {result['role']} role"
        granted += ": sign in again to go on." if result["email"] == current_user.email else "."
    flash(f"Added {result['email']} as {result['role']}{invited}.{given}{granted}")
    return redirect(url_for("projects.members_page", project_id=project.id))


@bp.post("/projects/<int:project_id>/members/remove")
@role_required(Role.lead, Role.admin)
def member_remove(project_id: int):
    db = get_session()
    project = _project(project_id)
    email, confirmed = request.form.get("email", ""), request.form.get("confirm") == "1"
    on_form_error(lambda exc: _page(project, error=exc.message, status=exc.status))
    role = parse_member_role(request.form.get("role"))
    if role is MemberRole.rater and not confirmed:  # ask first, on the page
        user = member_user(db, project, email, role)
        return _page(project, confirm={"user": user, **removal_preview(db, project, user)})
    result = remove_project_member(db, current_user, project, email, role, confirm=confirmed)
    queue = result["queue"]
    moved = (
        f" Their {queue['kept_labeled']} labeled items stay; their unlabeled work moved to the other raters."
        if queue
        else ""
    )
    flash(f"Removed {result['email']} as {result['role']}.{moved}")
    if not can_manage_project(current_user, project):  # a lead who stepped down
        return redirect(url_for("projects.home"))
    return redirect(url_for("projects.members_page", project_id=project.id))
