"""Capture page, the browser's quality check (model file and its settings), and the case upload.

Who may capture: the project's leads and admins (the people who may add images to a project).
Pages that run the model send a Content-Security-Policy with 'wasm-unsafe-eval'; every response
carries COOP/COEP (labeler/__init__.py), which onnxruntime-web's threads need.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    jsonify,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user

from ..auth.models import Role
from ..auth.permissions import role_required
from ..db import get_session
from ..images.storage import app_storage
from ..projects.access import authorized_project
from ..web import accepts_upload
from .browser import ORT_MODULE, check_url, runtime_installed, with_wasm
from .services import (
    MAX_PHOTOS,
    check_config,
    current_quality_model,
    import_case,
    no_model_reason,
    unavailable,
)

bp = Blueprint("capture", __name__)


@bp.get("/projects/<int:project_id>/capture")
@role_required(Role.lead, Role.admin)
def capture_page(project_id: int):
    project = authorized_project(project_id)
    return with_wasm(
        render_template(
            "capture/case_capture.html",
            project=project,
            max_photos=MAX_PHOTOS,
            check_url=check_url(project),
        )
    )


@bp.get("/projects/<int:project_id>/quality-check")
@role_required(Role.lead, Role.admin)
def check_settings(project_id: int):
    """The project's current quality model for the browser, or why there is none (always 200)."""
    project = authorized_project(project_id)
    if not runtime_installed():
        return jsonify(
            unavailable(
                "The quality check is not installed on this server, so the photos are uploaded "
                "without it. An administrator can install it."
            )
        )
    found = current_quality_model(get_session(), current_app.config, project)
    if found is None:
        return jsonify(unavailable(no_model_reason(project)))
    model_id, folder = found
    body = check_config(model_id, folder)
    body["model_url"] = url_for("capture.model_file", project_id=project.id, model_id=model_id)
    body["runtime_url"] = url_for("static", filename=ORT_MODULE)
    return jsonify(body)


@bp.get("/projects/<int:project_id>/quality-check/<model_id>.onnx")
@role_required(Role.lead, Role.admin)
def model_file(project_id: int, model_id: str):
    """The ONNX file of the project's current quality model (no other model: 404)."""
    project = authorized_project(project_id)
    found = current_quality_model(get_session(), current_app.config, project)
    if found is None or found[0] != model_id:
        abort(404, "This project does not check photos with that model.")
    # private, revalidated every time (the answer depends on who asks), a versioned file's ETag
    resp = send_file(
        found[1] / "model.onnx",
        mimetype="application/octet-stream",
        conditional=True,
        etag=model_id,
        max_age=0,
    )
    resp.headers["Cache-Control"] = "private, no-cache"
    return resp


@bp.post("/projects/<int:project_id>/capture")
@role_required(Role.lead, Role.admin)
@accepts_upload()
def upload_case(project_id: int):
    """The photos the user accepted, as one case (JSON answer for the page's script)."""
    project = authorized_project(project_id)
    photos = [(f.filename or "photo.jpg", f.stream) for f in request.files.getlist("photos") if f]
    db = get_session()
    case_id, summary = import_case(
        db,
        current_user,
        project,
        photos,
        body_site=request.form.get("body_site"),
        case_id=request.form.get("case_id"),
        storage=app_storage(),
        config=current_app.config,
        checkpoint=db.commit,
    )
    body = {"case_id": case_id, "summary": summary.line(), **summary.as_dict()}
    return jsonify(body), 201 if summary.imported else 200
