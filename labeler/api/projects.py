"""API: projects, their settings and members, and image import."""

from __future__ import annotations

from flask import current_app, jsonify, request, url_for
from flask_login import current_user

from ..auth.models import Role
from ..auth.permissions import role_required
from ..db import database, get_session
from ..errors import NotFound, ValidationError
from ..images.import_jobs import job_json, receive_upload
from ..images.models import ImportJob
from ..images.storage import app_storage
from ..projects.access import authorized_project
from ..projects.members import add_project_member, list_members, remove_project_member
from ..projects.services import create_project, update_settings, visible_projects
from ..projects.settings import with_defaults
from ..web import accepts_upload
from .blueprint import bp
from .params import json_body


def project_json(project) -> dict:
    return {
        "id": project.id,
        "name": project.name,
        "protocol": project.protocol.value,
        "settings": with_defaults(project.protocol, project.settings),
        "created_at": project.created_at.isoformat(),
    }


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
    project = create_project(db, current_user, body.get("name"), str(body.get("protocol") or ""))
    return jsonify(project_json(project)), 201


@bp.post("/projects/<int:project_id>/images")
@role_required(Role.lead, Role.admin)
@accepts_upload()
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
    result = receive_upload(
        db,
        current_user,
        project,
        files,
        storage=app_storage(),
        config=current_app.config,
        factory=database(current_app).session_factory,
        source_label="api",
        checkpoint=db.commit,
    )
    if isinstance(result, ImportJob):  # a large upload: imported by a worker
        job = result
        url = url_for("api.import_job_api", job_id=job.id)
        return jsonify(job=job_json(job, current_app.config), url=url), 202, {"Location": url}
    summary = result
    return jsonify(summary.as_dict()), 201 if summary.imported else 200


@bp.get("/import-jobs/<int:job_id>")
@role_required(Role.lead, Role.admin)
def import_job_api(job_id: int):
    """A large upload's import: status, progress (files looked at of total) and, once done, the
    per-file result (imported, duplicates, rejected with the reason)."""
    job = get_session().get(ImportJob, job_id)
    if job is None:
        raise NotFound("no such import")
    authorized_project(job.project_id)
    resp = jsonify(job_json(job, current_app.config))
    resp.headers["Cache-Control"] = "no-store"
    return resp


# -- one project: settings and members ------------------------------------------------------------


def _flag(body: dict, key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise ValidationError(f"'{key}' must be true or false", field=key)
    return value


@bp.get("/projects/<int:project_id>")
@role_required(Role.lead, Role.admin)
def project_api(project_id: int):
    return jsonify(project_json(authorized_project(project_id)))


@bp.patch("/projects/<int:project_id>")
@role_required(Role.lead, Role.admin)
def update_project_api(project_id: int):
    """Change settings: {"settings": {...}, "confirm_migration": bool, "grade_mapping": {...}}."""
    project = authorized_project(project_id)
    body = json_body()
    unknown = sorted(set(body) - {"settings", "confirm_migration", "grade_mapping"})
    if unknown:
        raise ValidationError(
            f"unknown field {unknown[0]!r}: send settings, confirm_migration and grade_mapping",
            field=unknown[0],
        )
    if "settings" not in body:
        raise ValidationError("send the settings to change as 'settings'", field="settings")
    db = get_session()
    result = update_settings(
        db,
        current_user,
        project,
        body["settings"],
        confirm_migration=_flag(body, "confirm_migration"),
        grade_mapping=body.get("grade_mapping"),
        models_config=current_app.config,
    )
    return jsonify(project=project_json(project), **result)


@bp.get("/projects/<int:project_id>/members")
@role_required(Role.lead, Role.admin)
def members_api(project_id: int):
    project = authorized_project(project_id)
    return jsonify(members=[m.as_dict() for m in list_members(get_session(), project)])


@bp.post("/projects/<int:project_id>/members")
@role_required(Role.lead, Role.admin)
def add_member_api(project_id: int):
    """Add a lead or rater by e-mail: {"email", "role", "name"?}; unknown addresses are invited."""
    project = authorized_project(project_id)
    body = json_body()
    db = get_session()
    result = add_project_member(
        db,
        current_user,
        project,
        str(body.get("email") or ""),
        body.get("role"),
        name=str(body.get("name") or ""),
    )
    return jsonify(result), 201


@bp.delete("/projects/<int:project_id>/members")
@role_required(Role.lead, Role.admin)
def remove_member_api(project_id: int):
    """Remove a lead or rater: {"email", "role", "confirm": true} as a JSON body or as query parameters
    (some clients send no body with DELETE); removing a rater needs confirm."""
    project = authorized_project(project_id)
    body = json_body(optional=True)
    if not body:
        body = request.args.to_dict()
        confirm = body.get("confirm", "false").lower()
        if confirm not in {"true", "false"}:
            raise ValidationError("'confirm' must be true or false", field="confirm")
        body["confirm"] = confirm == "true"
    db = get_session()
    result = remove_project_member(
        db,
        current_user,
        project,
        str(body.get("email") or ""),
        body.get("role"),
        confirm=_flag(body, "confirm"),
    )
    return jsonify(result)
