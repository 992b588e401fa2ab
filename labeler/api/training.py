"""API: a project's models, training runs, and predictions with a trained model.

Predict is for leads and admins, not raters: raters label blind, and a model's opinion on a photo
would anchor theirs (the golden-set figures that set the model's bar would no longer be independent).
"""

from __future__ import annotations

from flask import current_app, jsonify, request
from flask_login import current_user

from .. import ml
from ..auth.models import Role
from ..auth.permissions import require, role_required
from ..db import get_session
from ..errors import LabelerError
from ..projects.access import authorized_project
from ..projects.models import Project
from ..training.access import can_use_model
from ..training.control import cancel_run, retry_run
from ..training.model_store import model_folder
from ..training.prescreen import loaded_model
from ..training.services import (
    get_run,
    project_models,
    run_dict,
    run_for_model,
)
from ..training.worker import launch_run, training_unavailable
from ..web import accepts_upload
from .blueprint import bp
from .params import json_body

PREDICT_MAX_BYTES = 20 * 1024 * 1024


@bp.get("/projects/<int:project_id>/models")
@role_required(Role.lead, Role.admin)
def project_models_api(project_id: int):
    db = get_session()
    models = project_models(db, current_app.config, authorized_project(project_id))
    return jsonify(models=models)


@bp.post("/projects/<int:project_id>/training-runs")
@role_required(Role.lead, Role.admin)
def start_run_api(project_id: int):
    db = get_session()
    project = authorized_project(project_id)
    body = json_body()
    run = launch_run(
        db,
        current_app.config,
        current_user,
        project,
        kind=body.get("kind"),
        seed=body.get("seed"),
        epochs=body.get("epochs"),
        fine_tune_blocks=body.get("fine_tune_blocks"),
        checkpoint=db.commit,
    )
    return jsonify(run_dict(run)), 202


@bp.get("/training-runs/<int:run_id>")
@role_required(Role.lead, Role.admin)
def run_api(run_id: int):
    db = get_session()
    run = get_run(db, run_id)
    authorized_project(run.project_id)
    return jsonify(run_dict(run))


@bp.post("/training-runs/<int:run_id>/cancel")
@role_required(Role.lead, Role.admin)
def cancel_run_api(run_id: int):
    db = get_session()
    run = get_run(db, run_id)
    authorized_project(run.project_id)
    return jsonify(run_dict(cancel_run(db, current_user, run)))


@bp.post("/training-runs/<int:run_id>/retry")
@role_required(Role.lead, Role.admin)
def retry_run_api(run_id: int):
    db = get_session()
    run = get_run(db, run_id)
    authorized_project(run.project_id)
    unavailable = training_unavailable()
    if unavailable:
        raise ml.MLUnavailable(unavailable)
    run = retry_run(db, current_app.config, current_user, run, checkpoint=db.commit)
    return jsonify(run_dict(run)), 202


@bp.post("/models/<model_id>/predict")
@role_required(Role.lead, Role.admin)
@accepts_upload(PREDICT_MAX_BYTES + 64 * 1024)  # the image plus multipart framing
def predict_api(model_id: str):
    db = get_session()
    run = run_for_model(db, model_id)
    project = db.get(Project, run.project_id) if run else None
    if run is None and not current_user.has_role(Role.admin):
        raise ml.ModelNotFound(f"unknown model id {model_id!r}", model_id=model_id)
    require(
        can_use_model(current_user, run, project),
        "Only the leads of the model's project and admins may use it.",
    )
    model = loaded_model(model_folder(current_app.config, model_id))
    data = _image_bytes()
    result = ml.predict(model, data, cams=request.args.get("cams") in ("1", "true"))
    return jsonify(result)


def _image_bytes() -> bytes:
    """The image from multipart field `image`, or the raw request body; 413 past PREDICT_MAX_BYTES."""
    if request.content_length and request.content_length > PREDICT_MAX_BYTES + 64 * 1024:
        raise _too_large()
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("image")
        if upload is None:
            raise ml.BadImage(
                "send the image as multipart field 'image' or as the raw request body",
                status=400,
                code="no_image",
            )
        data = upload.stream.read(PREDICT_MAX_BYTES + 1)
    else:
        data = request.stream.read(PREDICT_MAX_BYTES + 1)
    if len(data) > PREDICT_MAX_BYTES:
        raise _too_large()
    if not data:
        raise ml.BadImage(
            "the request has no image: send multipart field 'image' or the raw image bytes",
            status=400,
            code="no_image",
        )
    return data


def _too_large() -> LabelerError:
    return LabelerError(
        f"the image is larger than {PREDICT_MAX_BYTES // (1024 * 1024)} MB",
        status=413,
        code="too_large",
    )
