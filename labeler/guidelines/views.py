"""Guideline pages: leads write the guidelines and attach reference images; the project's raters read them."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from ..auth.models import Role
from ..auth.permissions import role_required
from ..db import get_session
from ..errors import on_form_error
from ..images.storage import app_storage
from ..projects.access import authorized_project, can_manage_project, can_view_project
from ..projects.models import Project
from ..web import accepts_upload
from .services import (
    MAX_BODY,
    MAX_CAPTION,
    MAX_DEFINITION,
    add_reference_image,
    delete_reference_image,
    get_guideline,
    guideline_view,
    save_guideline,
    targets,
)

bp = Blueprint("guidelines", __name__)
EDITORS = "Only the project's leads and admins edit its guidelines."
READERS = "Only the project's raters, leads and admins may read its guidelines."


def reference_url(ref, kind: str) -> str:
    return url_for("api.reference_image_file", project_id=ref.project_id, ref_id=ref.id, kind=kind)


def _editor(project: Project, *, error=None, status=200, form=None):
    db = get_session()
    guideline = get_guideline(db, project)
    return render_template(
        "guidelines/edit_page.html",
        project=project,
        guideline=guideline,
        view=guideline_view(db, project, reference_url),
        targets=targets(project),
        form=form,
        error=error,
        limits={"body": MAX_BODY, "definition": MAX_DEFINITION, "caption": MAX_CAPTION},
    ), status


@bp.get("/projects/<int:project_id>/guidelines")
@role_required(Role.lead, Role.admin)
def edit_page(project_id: int):
    return _editor(authorized_project(project_id, message=EDITORS))


@bp.post("/projects/<int:project_id>/guidelines")
@role_required(Role.lead, Role.admin)
def save(project_id: int):
    project = authorized_project(project_id, message=EDITORS)
    form = request.form
    on_form_error(lambda exc: _editor(project, error=exc.message, status=exc.status, form=form))
    definitions = {
        t.key: form.get(f"def-{t.key}", "") for t in targets(project) if f"def-{t.key}" in form
    }
    base = form.get("base_version", "")
    save_guideline(
        get_session(),
        current_user,
        project,
        form.get("body", ""),
        definitions,
        base_version=int(base) if base.isdigit() and len(base) < 10 else None,
    )
    flash("Guidelines saved. Raters see them on the labeling page (key G).")
    return redirect(url_for("guidelines.edit_page", project_id=project.id))


@bp.post("/projects/<int:project_id>/guidelines/images")
@role_required(Role.lead, Role.admin)
@accepts_upload()
def upload_reference(project_id: int):
    project = authorized_project(project_id, message=EDITORS)
    on_form_error(lambda exc: _editor(project, error=exc.message, status=exc.status))
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _editor(project, error="Choose an image file to upload.", status=400)
    ref = add_reference_image(
        get_session(),
        current_user,
        project,
        target=request.form.get("target", "general"),
        caption=request.form.get("caption"),
        filename=upload.filename,
        data=upload.stream.read(),
        storage=app_storage(),
    )
    label = {t.key: t.label for t in targets(project)}[ref.target]
    flash(f"Reference image '{ref.filename}' added to “{label}”.")
    return redirect(url_for("guidelines.edit_page", project_id=project.id) + "#references")


@bp.post("/projects/<int:project_id>/guidelines/images/<int:ref_id>/delete")
@role_required(Role.lead, Role.admin)
def delete_reference(project_id: int, ref_id: int):
    project = authorized_project(project_id, message=EDITORS)
    on_form_error(lambda exc: _editor(project, error=exc.message, status=exc.status))
    ref = delete_reference_image(get_session(), current_user, project, ref_id)
    flash(f"Reference image '{ref.filename}' removed.")
    return redirect(url_for("guidelines.edit_page", project_id=project.id) + "#references")


@bp.get("/projects/<int:project_id>/guidelines/read")
@role_required(Role.rater, Role.lead, Role.admin)
def read_page(project_id: int):
    project = authorized_project(project_id, can_view_project, READERS)
    return render_template(
        "guidelines/read_page.html",
        project=project,
        view=guideline_view(get_session(), project, reference_url),
        can_edit=can_manage_project(current_user, project),
    )
