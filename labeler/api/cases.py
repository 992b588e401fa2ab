"""API: a rater's cases (several photos of one patient labeled together; docs/domain.md section 11).

A case is named by the opaque id of one of the rater's items in it, and each photo by its item's id;
every answer is built by one code path for golden and fold cases alike (same keys, same headers).
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, url_for
from flask_login import current_user

from ..allocation.queue import item_and_project, rater_project
from ..auth.models import Role
from ..auth.permissions import role_required, signed_in
from ..cases.queue import case_for_rater, next_case, serve_case
from ..cases.services import case_json, skip_case, submit_case
from ..db import get_session
from ..errors import NotFound
from .blueprint import bp
from .params import json_body, query_int


def _image_url(public_id: str) -> str:
    return url_for("api.item_image", public_id=public_id)


def serve_next_case_json(db, project) -> dict[str, Any] | None:
    """Serve the caller's next case in the project (stamping its photos' first showing), or None."""
    rows = serve_case(db, lambda fresh: next_case(db, current_user, project))
    return case_json(db, current_user, project, rows, _image_url) if rows else None


@bp.get("/projects/<int:project_id>/queue/next-case")
@signed_in
def next_case_api(project_id: int):
    db = get_session()
    project = rater_project(db, current_user, project_id)
    if project is None:
        raise NotFound(f"no project with id {project_id}")
    return jsonify(case=serve_next_case_json(db, project))


@bp.get("/cases/<public_id>")
@role_required(Role.rater)
def case_api(public_id: str):
    db = get_session()
    _item, project = item_and_project(db, current_user, public_id)
    rows = serve_case(db, lambda fresh: case_for_rater(db, current_user, public_id, fresh=fresh))
    return jsonify(case=case_json(db, current_user, project, rows, _image_url))


@bp.put("/cases/<public_id>/label")
@role_required(Role.rater)
def put_case_label(public_id: str):
    # ?next=1: the answer also carries the next case, served in this same request
    with_next = query_int("next", default=0, lo=0, hi=1)
    body = json_body()
    db = get_session()
    project, rows = submit_case(db, current_user, public_id, body)
    # the saved case (without "next": the client has it, and next=1 serves the next case)
    saved = case_json(db, current_user, project, rows, _image_url, with_next=False)
    result: dict[str, Any] = {"case": saved}
    if with_next:
        result["next"] = serve_next_case_json(db, project)
    return jsonify(result)


@bp.post("/cases/<public_id>/skip")
@role_required(Role.rater)
def post_case_skip(public_id: str):
    body = json_body(optional=True)
    db = get_session()
    rows = skip_case(db, current_user, public_id, reason=body.get("reason"))
    _item, project = item_and_project(db, current_user, public_id)
    return jsonify(case=case_json(db, current_user, project, rows, _image_url))
