"""API: projects and image import."""

from __future__ import annotations

from flask import current_app, jsonify, request
from flask_login import current_user

from ..auth.models import Role
from ..auth.permissions import role_required
from ..db import get_session
from ..errors import ValidationError
from ..images.services import import_uploads
from ..images.storage import app_storage
from ..projects.access import authorized_project
from ..projects.services import create_project, visible_projects
from .blueprint import bp


def project_json(project) -> dict:
    return {
        "id": project.id,
        "name": project.name,
        "protocol": project.protocol.value,
        "settings": project.settings,
        "created_at": project.created_at.isoformat(),
    }


def json_body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValidationError("the request body must be a JSON object", status=400, code="bad_json")
    return body


@bp.get("/projects")
@role_required(Role.rater, Role.lead, Role.admin)
def list_projects():
    return jsonify(
        projects=[project_json(p) for p in visible_projects(get_session(), current_user)]
    )


@bp.post("/projects")
@role_required(Role.lead, Role.admin)
def create_project_api():
    body = json_body()
    db = get_session()
    project = create_project(
        db, current_user, str(body.get("name") or ""), str(body.get("protocol") or "")
    )
    db.commit()
    return jsonify(project_json(project)), 201


@bp.post("/projects/<int:project_id>/images")
@role_required(Role.lead, Role.admin)
def upload_images_api(project_id: int):
    project = authorized_project(project_id)
    files = [(f.filename or "upload", f.stream) for f in request.files.getlist("files") if f]
    if not files:
        raise ValidationError(
            "send the images as multipart field 'files' (one or many, or a .zip)",
            status=400,
            code="no_files",
        )
    db = get_session()
    summary = import_uploads(
        db,
        current_user,
        project,
        files,
        storage=app_storage(),
        config=current_app.config,
        source_label="api",
        checkpoint=db.commit,
    )
    db.commit()
    return jsonify(summary.as_dict()), 201 if summary.imported else 200
