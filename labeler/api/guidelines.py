"""API: a project's guidelines and reference images; raters' flags and the leads' answers."""

from __future__ import annotations

from flask import jsonify, request, url_for
from flask_login import current_user

from ..allocation.queue import serve_item
from ..auth.models import Role
from ..auth.permissions import role_required
from ..db import get_session
from ..errors import NotFound, ValidationError
from ..guidelines.models import ReferenceImage
from ..guidelines.services import (
    add_reference_image,
    delete_reference_image,
    get_reference_image,
    guideline_view,
    save_guideline,
)
from ..images.serve import blob_response
from ..images.storage import InvalidKey, app_storage
from ..labeling.flags import answer_flag, flag_dict, flag_of, project_flags, set_flag
from ..labeling.services import label_dict, own_item
from ..projects.access import authorized_project, can_view_project
from ..web import accepts_upload
from .blueprint import bp
from .params import json_body

READERS = "Only the project's raters, leads and admins may read its guidelines."
REF_TYPES = {"jpg": "image/jpeg", "png": "image/png"}


def reference_url(ref: ReferenceImage, kind: str) -> str:
    return url_for("api.reference_image_file", project_id=ref.project_id, ref_id=ref.id, kind=kind)


def reference_json(ref: ReferenceImage) -> dict:
    return {
        "id": ref.id,
        "target": ref.target,
        "caption": ref.caption,
        "filename": ref.filename,
        "width": ref.width,
        "height": ref.height,
        "url": reference_url(ref, "display"),
        "thumb_url": reference_url(ref, "thumb"),
        "created_at": ref.created_at.isoformat(),
    }


@bp.get("/projects/<int:project_id>/guidelines")
@role_required(Role.rater, Role.lead, Role.admin)
def get_guidelines(project_id: int):
    project = authorized_project(project_id, can_view_project, READERS)
    return jsonify(guideline_view(get_session(), project, reference_url))


@bp.put("/projects/<int:project_id>/guidelines")
@role_required(Role.lead, Role.admin)
def put_guidelines(project_id: int):
    body = json_body()
    project = authorized_project(project_id)
    db = get_session()
    save_guideline(
        db,
        current_user,
        project,
        body.get("body"),
        body.get("definitions"),
        base_version=body.get("base_version"),
    )
    return jsonify(guideline_view(db, project, reference_url))


@bp.post("/projects/<int:project_id>/reference-images")
@role_required(Role.lead, Role.admin)
@accepts_upload()
def post_reference_image(project_id: int):
    project = authorized_project(project_id)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationError("send the image as the multipart field 'file'", field="file")
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
    return jsonify(reference_json(ref)), 201


@bp.delete("/projects/<int:project_id>/reference-images/<int:ref_id>")
@role_required(Role.lead, Role.admin)
def delete_reference(project_id: int, ref_id: int):
    project = authorized_project(project_id)
    delete_reference_image(get_session(), current_user, project, ref_id)
    return jsonify(deleted=ref_id)


@bp.get("/projects/<int:project_id>/guidelines/images/<int:ref_id>/<kind>")
@role_required(Role.rater, Role.lead, Role.admin)
def reference_image_file(project_id: int, ref_id: int, kind: str):
    project = authorized_project(project_id, can_view_project, READERS)
    if kind not in ("display", "thumb"):
        raise NotFound("a reference image has a 'display' copy and a 'thumb' only")
    ref = get_reference_image(get_session(), project, ref_id)
    key = ref.display_key if kind == "display" else ref.thumb_key
    try:
        return blob_response(
            app_storage(),
            key,
            REF_TYPES.get(key.rsplit(".", 1)[-1], "image/jpeg"),
            cache_control="private, max-age=300",
        )
    except (FileNotFoundError, InvalidKey):
        raise NotFound("the file of this reference image is missing from storage") from None


# ---- flags --------------------------------------------------------------------------------------


@bp.get("/items/<public_id>/flag")
@role_required(Role.rater)
def get_flag(public_id: str):
    db = get_session()
    item = serve_item(db, lambda: own_item(db, current_user, public_id))
    return jsonify(item=item.public_id, **flag_dict(flag_of(db, current_user, item)))


@bp.put("/items/<public_id>/flag")
@role_required(Role.rater)
def put_flag(public_id: str):
    body = json_body()
    db = get_session()
    item = own_item(db, current_user, public_id)
    flag = set_flag(
        db, current_user, item, unsure=body.get("unsure", False), comment=body.get("comment")
    )
    return jsonify(item=item.public_id, **flag_dict(flag))


def flag_row_json(row) -> dict:
    f = row.flag
    return {
        "id": f.id,
        "image_id": row.image.id,
        "filename": row.image.filename,
        "thumb_url": url_for("images.image_file", image_id=row.image.id, kind="thumb"),
        "rater": {"id": row.rater.id, "email": row.rater.email, "name": row.rater.name},
        "label": label_dict(row.label),
        "unsure": f.unsure,
        "comment": f.comment,
        "answer": f.answer,
        "answered_at": f.answered_at.isoformat() if f.answered_at else None,
        "updated_at": f.updated_at.isoformat(),
    }


@bp.get("/projects/<int:project_id>/flags")
@role_required(Role.lead, Role.admin)
def list_flags(project_id: int):
    project = authorized_project(project_id)
    status = request.args.get("status", "open")
    rows = project_flags(get_session(), project, status)
    return jsonify(status=status, flags=[flag_row_json(r) for r in rows])


@bp.post("/projects/<int:project_id>/flags/<int:flag_id>/answer")
@role_required(Role.lead, Role.admin)
def post_flag_answer(project_id: int, flag_id: int):
    body = json_body()
    project = authorized_project(project_id)
    flag = answer_flag(get_session(), current_user, project, flag_id, body.get("answer"))
    return jsonify(id=flag.id, answer=flag.answer, answered_at=flag.answered_at.isoformat())
