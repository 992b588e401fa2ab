"""API: a rater's label of a queue item (read, write, skip), its deep-zoom tiles, the ICD-10-CM search."""

from __future__ import annotations

import logging

from flask import current_app, jsonify, request, url_for
from flask_login import current_user

from ..allocation.queue import item_for_submit, serve_item
from ..assist.suggestions import item_suggestion
from ..auth.login import caller_checked_in_query
from ..auth.models import Role
from ..auth.permissions import role_required, signed_in
from ..db import get_session, reads_only
from ..errors import NotFound
from ..images import tiles
from ..images.models import Image
from ..images.serve import blob_response
from ..images.storage import InvalidKey
from ..labeling import icd10
from ..labeling.flags import flag_dict, flag_of
from ..labeling.services import (
    current_label,
    label_dict,
    label_history,
    own_item,
    queue_context,
    revision_dict,
    skip_item,
    submit_label,
)
from .allocation import serve_next_json
from .blueprint import bp
from .params import json_body, query_int

log = logging.getLogger(__name__)
LABEL_FIELDS = ("decision", "icd10", "icd10_missing_text", "explanations", "grade", "skin_type")


@bp.get("/items/<public_id>/label")
@role_required(Role.rater)
def get_label(public_id: str):
    db = get_session()
    item = serve_item(db, lambda: own_item(db, current_user, public_id))
    body = {
        "item": item.public_id,
        "status": item.status.value,
        "label": label_dict(current_label(db, current_user, item)),
        "history": [revision_dict(r) for r in label_history(db, current_user, item)],
        "flag": flag_dict(flag_of(db, current_user, item)),
        "queue": queue_context(db, current_user, item).as_dict(),
        "suggestion": item_suggestion(db, item),  # null unless the project shows them on every item
    }
    return jsonify(body)


@bp.put("/items/<public_id>/label")
@caller_checked_in_query
@role_required(Role.rater)
def put_label(public_id: str):
    # ?next=1: the answer also carries the next item to label, served (and its first showing stamped)
    # in this same request, as GET .../queue/next would answer: one round trip fewer per label
    with_next = query_int("next", default=0, lo=0, hi=1)
    body = json_body()
    db = get_session()
    # the item, its project and whether it is labeled, read under the queue lock (two statements at most)
    item, project, label_id = item_for_submit(db, current_user, public_id)
    label = submit_label(
        db,
        current_user,
        item,
        {k: body.get(k) for k in LABEL_FIELDS},
        base_version=body.get("base_version"),
        submission_id=body.get("submission_id"),
        time_spent_ms=body.get("time_spent_ms"),
        project=project,
        labeled=label_id is not None,
    )
    result = {"item": item.public_id, **label_dict(label)}
    if with_next:
        result["next"] = serve_next_json(db, project.id)
    return jsonify(result)


@bp.post("/items/<public_id>/skip")
@role_required(Role.rater)
def post_skip(public_id: str):
    body = json_body(optional=True)
    db = get_session()
    item = own_item(db, current_user, public_id)
    skip_item(db, current_user, item, reason=body.get("reason"))
    nxt = queue_context(db, current_user, item).next
    return jsonify(item=item.public_id, status=item.status.value, next=nxt)


@bp.get("/icd10")
@signed_in
def icd10_search():
    limit = query_int("limit", default=20, lo=1, hi=icd10.MAX_RESULTS)
    return jsonify(results=[c.as_dict() for c in icd10.search(request.args.get("q", ""), limit)])


def _item_pyramid(public_id: str) -> tuple[str, Image, tiles.Pyramid | None]:
    """One of the caller's own items, its image and the image's tile pyramid, or None until the
    tiles job has built it: a request never builds one, so no image's first zoom is slower than
    another's (golden or not)."""
    db = get_session()
    item = own_item(db, current_user, public_id)
    image = db.get(Image, item.image_id)
    try:
        pyramid = tiles.stored_pyramid(current_app.extensions["labeler_storage"], image)
    except (OSError, InvalidKey) as e:  # the store did not answer: the display copy stays
        log.warning("tile pyramid of image %s not readable: %s", image.id, e)
        pyramid = None
    return item.public_id, image, pyramid


@bp.get("/items/<public_id>/tiles")
@role_required(Role.rater)
@reads_only
def item_tiles(public_id: str):
    """The deep-zoom (DZI) description of the item's full-resolution image (``tile_source`` null
    while its tiles are being prepared: the viewer keeps the display copy); never cached."""
    item_id, _image, pyramid = _item_pyramid(public_id)
    if pyramid is None:
        resp = jsonify(
            tile_source=None,
            message="Full resolution is being prepared for this image; the display copy is shown.",
        )
        resp.headers["Cache-Control"] = "private, no-store"
        return resp
    url = url_for("api.item_tiles", public_id=item_id) + "/"
    resp = jsonify(tile_source=pyramid.tile_source(url))
    resp.headers["Cache-Control"] = "private, no-store"
    return resp


@bp.get("/items/<public_id>/tiles/<index:level>/<index:col>_<index:row>.jpg")
@role_required(Role.rater)
@reads_only
def item_tile(public_id: str, level: int, col: int, row: int):
    """One tile, authorized like the display image: no ETag, no file name, never cached."""
    _item_id, image, pyramid = _item_pyramid(public_id)
    if pyramid is None or not pyramid.has_tile(level, col, row):
        raise NotFound("no such tile")
    try:
        return blob_response(
            current_app.extensions["labeler_storage"],
            tiles.tile_key(image, level, col, row),
            "image/jpeg",
            cache_control="private, no-store",
        )
    except FileNotFoundError:
        raise NotFound("this tile is missing from storage") from None
