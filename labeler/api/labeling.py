"""API: a rater's label of a queue item (read, write, skip) and the ICD-10-CM search."""

from __future__ import annotations

from flask import jsonify, request
from flask_login import current_user

from ..allocation.queue import serve_item
from ..auth.models import Role
from ..auth.permissions import role_required, signed_in
from ..db import get_session
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
from .blueprint import bp
from .params import json_body, query_int

LABEL_FIELDS = ("decision", "icd10", "icd10_missing_text", "explanations", "grade")


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
    }
    return jsonify(body)


@bp.put("/items/<public_id>/label")
@role_required(Role.rater)
def put_label(public_id: str):
    body = json_body()
    db = get_session()
    item = own_item(db, current_user, public_id)
    label = submit_label(
        db,
        current_user,
        item,
        {k: body.get(k) for k in LABEL_FIELDS},
        base_version=body.get("base_version"),
        submission_id=body.get("submission_id"),
        time_spent_ms=body.get("time_spent_ms"),
    )
    result = {"item": item.public_id, **label_dict(label)}
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
