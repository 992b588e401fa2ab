"""API: allocation (leads of the project, admins) and the rater's own queue and items.

Rater-facing responses are built by one code path for golden and fold items alike: the same keys,
the same URL scheme (per-rater opaque ids) and the same headers, so nothing tells them apart.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, jsonify, url_for
from flask_login import current_user

from ..allocation import services
from ..allocation.models import QueueItem
from ..allocation.queue import (
    ItemRow,
    get_item_for_rater,
    item_image_row,
    next_item_row,
    queue_total,
    serve_item,
)
from ..auth.login import caller_checked_in_query
from ..auth.models import Role
from ..auth.permissions import role_required, signed_in
from ..db import get_session, reads_only
from ..errors import NotFound, ValidationError
from ..images.serve import blob_response
from ..images.storage import InvalidKey
from ..projects.access import authorized_project, can_allocate
from ..validation import DB_INT_MAX, clean_ids, clean_int
from .blueprint import bp
from .params import json_body

DISPLAY_TYPES = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
}
RATER_IMAGE_CACHE = "private, no-store"  # an item's image is never cached (blinding)


def display_type(key: str) -> str:
    """The media type of a stored display copy, by its key's extension."""
    return DISPLAY_TYPES.get(key.rsplit(".", 1)[-1].lower(), "application/octet-stream")


def allocation_params(body: dict) -> dict[str, Any]:
    """Validate {raters, golden_size | golden_image_ids, overlap, seed} into service arguments."""
    raters = body.get("raters")
    if not isinstance(raters, list) or not all(isinstance(r, str) for r in raters):
        raise ValidationError("raters must be a list of e-mail addresses", code="invalid_raters")
    golden_ids = body.get("golden_image_ids")
    if golden_ids is not None:
        golden_ids = clean_ids(golden_ids, "golden_image_ids", code="invalid_golden_image_ids")
    golden_size = _count(body, "golden_size")
    if golden_size is None and golden_ids is None:
        golden_size = 0
    return {
        "raters": raters,
        "golden_size": golden_size,
        "golden_image_ids": golden_ids,
        "overlap": _count(body, "overlap", default=1),
        "seed": body.get("seed"),  # checked (a whole number from 0 to MAX_SEED) by the service
    }


def _count(body: dict, name: str, *, default: int | None = None) -> int | None:
    """A whole number that fits the database; what it may be (overlap <= raters...) is the service's."""
    return clean_int(
        body.get(name), name, lo=0, hi=DB_INT_MAX, default=default, code="invalid_" + name
    )


def _email(body: dict) -> str:
    email = body.get("email")
    if not isinstance(email, str) or not email.strip():
        raise ValidationError('send {"email": "<the rater\'s e-mail>"}', code="invalid_email")
    return email


def _managed_project(project_id: int):
    return get_session(), authorized_project(project_id, can_allocate, services.ALLOCATION_MANAGERS)


@bp.post("/projects/<int:project_id>/allocation")
@role_required(Role.lead, Role.admin)
def create_allocation_api(project_id: int):
    db, project = _managed_project(project_id)
    params = allocation_params(json_body())
    services.allocate(db, current_user, project, params.pop("raters"), **params)
    return jsonify(services.summary(db, project)), 201


@bp.get("/projects/<int:project_id>/allocation")
@role_required(Role.lead, Role.admin)
def get_allocation_api(project_id: int):
    db, project = _managed_project(project_id)
    return jsonify(services.summary(db, project))


@bp.post("/projects/<int:project_id>/allocation/raters")
@role_required(Role.lead, Role.admin)
def add_rater_api(project_id: int):
    db, project = _managed_project(project_id)
    change = services.add_rater(db, current_user, project, _email(json_body()))
    return jsonify(change=change, summary=services.summary(db, project)), 201


@bp.post("/projects/<int:project_id>/allocation/raters/preview")
@role_required(Role.lead, Role.admin)
def rater_change_preview_api(project_id: int):
    """What adding ({"email"}) or removing ({"email", "remove": true}) a rater would move; writes nothing."""
    db, project = _managed_project(project_id)
    body = json_body()
    remove = body.get("remove", False)
    if not isinstance(remove, bool):
        raise ValidationError("remove must be true or false", code="invalid_remove")
    return jsonify(services.preview_rater_change(db, project, _email(body), remove=remove))


@bp.post("/projects/<int:project_id>/allocation/raters/remove")
@role_required(Role.lead, Role.admin)
def remove_rater_api(project_id: int):
    db, project = _managed_project(project_id)
    change = services.remove_rater(db, current_user, project, _email(json_body()))
    return jsonify(change=change, summary=services.summary(db, project))


def item_json(item: QueueItem | ItemRow, total: int) -> dict[str, Any]:
    """What a rater learns about one of their items (identical keys for every item)."""
    return {
        "id": item.public_id,
        "image_url": url_for("api.item_image", public_id=item.public_id),
        "position": item.position,
        "total": total,
    }


@bp.get("/projects/<int:project_id>/queue/next")
@caller_checked_in_query
@signed_in
def queue_next_api(project_id: int):
    # a 404 unless the caller is one of the project's raters (see next_item_row)
    return jsonify(item=serve_next_json(get_session(), project_id))


def serve_next_json(db, project_id: int) -> dict[str, Any] | None:
    """Serve the caller's next item in the project (stamping its first showing): its JSON, or None."""
    item = serve_item(db, lambda: next_item_row(db, current_user.id, project_id))
    return {**item_json(item, item.total), "done": item.done} if item else None


@bp.get("/items/<public_id>")
@signed_in
def item_api(public_id: str):
    db = get_session()
    item = serve_item(db, lambda: get_item_for_rater(db, current_user, public_id))
    body = item_json(item, queue_total(db, item))
    body["status"] = item.status.value
    return jsonify(item=body)


@bp.get("/items/<public_id>/image")
@caller_checked_in_query
@signed_in
@reads_only
def item_image(public_id: str):
    """The display image, streamed from storage (ranges too); no ETag, no Last-Modified, no file
    name, never cached (blinding). api/hot_image.py answers the common case below Flask with this
    route's statement and headers: a check or header added here must be added there too."""
    db = get_session()
    # one query: the rater's own item and its image's display key
    display_key = serve_item(db, lambda: item_image_row(db, current_user.id, public_id)).display_key
    try:
        return blob_response(
            current_app.extensions["labeler_storage"],
            display_key,
            display_type(display_key),
            cache_control=RATER_IMAGE_CACHE,
        )
    except (FileNotFoundError, InvalidKey):
        raise NotFound("the image of this item is missing from storage") from None
