"""Lead pages: project images (paginated thumbnails), upload; image bytes for leads."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from ..auth.models import Role
from ..auth.permissions import require, role_required
from ..capture.browser import with_wasm
from ..db import database, get_session
from ..projects.access import authorized_project, can_manage_project
from ..projects.services import get_project
from ..training.prescreen import flagged_filter
from ..web import accepts_upload
from .import_jobs import job_json, receive_upload
from .models import Image, ImportJob
from .serve import blob_response
from .storage import app_storage

bp = Blueprint("images", __name__)
PAGE_SIZE = 48


@bp.get("/projects/<int:project_id>/images")
@role_required(Role.lead, Role.admin)
def project_images(project_id: int):
    db = get_session()
    project = authorized_project(project_id)
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    flagged = request.args.get("flagged") == "1"  # only images the prescreen judged poor quality
    where = [Image.project_id == project.id]
    if flagged:
        where.append(flagged_filter())
    total = db.scalar(select(func.count(Image.id)).where(*where)) or 0
    pages = max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    page = min(page, pages)  # ?page=10**20 shows the last page (and never reaches SQL's OFFSET)
    images = db.scalars(
        select(Image)
        .where(*where)
        .order_by(Image.id)
        .offset((page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    ).all()
    return render_template(
        "images/image_list.html",
        project=project,
        images=images,
        page=page,
        pages=pages,
        total=total,
        flagged=flagged,
    )


@bp.get("/projects/<int:project_id>/upload")
@role_required(Role.lead, Role.admin)
def upload_form(project_id: int):
    page = render_template(
        "images/image_upload.html", project=authorized_project(project_id), summary=None
    )
    return with_wasm(page)  # the selected files are checked in the browser before upload


@bp.post("/projects/<int:project_id>/upload")
@role_required(Role.lead, Role.admin)
@accepts_upload()
def upload(project_id: int):
    project = authorized_project(project_id)
    files = [(f.filename or "upload", f.stream) for f in request.files.getlist("files") if f]
    if not files:
        return render_template(
            "images/image_upload.html",
            project=project,
            summary=None,
            error="Choose one or more image files or a .zip.",
        ), 400
    db = get_session()
    result = receive_upload(
        db,
        current_user,
        project,
        files,
        storage=app_storage(),
        config=current_app.config,
        factory=database(current_app).session_factory,
        source_label="upload",
        checkpoint=db.commit,
    )
    if isinstance(result, ImportJob):  # a large upload: imported by a worker
        job = result
        return redirect(url_for("images.import_job_page", project_id=project.id, job_id=job.id))
    summary = result
    return with_wasm(render_template("images/image_upload.html", project=project, summary=summary))


@bp.get("/projects/<int:project_id>/imports/<int:job_id>")
@role_required(Role.lead, Role.admin)
def import_job_page(project_id: int, job_id: int):
    """A large upload being imported by a worker: progress (the page polls the API), then the
    per-file result."""
    project = authorized_project(project_id)
    job = get_session().get(ImportJob, job_id)
    if job is None or job.project_id != project.id:
        abort(404)
    state = job_json(job, current_app.config)
    return render_template(
        "images/import_job.html",
        project=project,
        job=state,
        poll_url=url_for("api.import_job_api", job_id=job.id),
    )


@bp.get("/images/<int:image_id>/<any(thumb, display, original):kind>")
@role_required(Role.lead, Role.admin)
def image_file(image_id: int, kind: str):
    db = get_session()
    image = db.get(Image, image_id)
    if image is None:
        abort(404)
    require(can_manage_project(current_user, get_project(db, image.project_id)))
    key = {"thumb": image.thumb_key, "display": image.display_key, "original": image.original_key}[
        kind
    ]
    try:  # streamed from any backend, with ranges (leads only: the hash is no secret to them)
        resp = blob_response(
            app_storage(), key, _mime(key), cache_control="private, max-age=3600", etag=image.sha256
        )
    except FileNotFoundError:
        abort(404, "the file for this image is missing from storage")
    if kind == "original":
        resp.headers["Content-Disposition"] = (
            f'attachment; filename="image-{image.id}.{key.rsplit(".", 1)[-1]}"'
        )
    return resp


def _mime(key: str) -> str:
    ext = key.rsplit(".", 1)[-1]
    return {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp", "tif": "image/tiff"}.get(
        ext, "application/octet-stream"
    )
