"""API: agreement figures, exports, ties and their adjudication (leads of the project and admins)."""

from __future__ import annotations

from flask import jsonify, request
from flask_login import current_user

from ..auth.models import Role
from ..auth.permissions import role_required
from ..db import get_session
from ..reports.http import export_response, managed_project
from ..reports.services import adjudicate, check_scope, project_agreement, tie_list
from ..validation import clean_flag
from .blueprint import bp
from .params import json_body


@bp.get("/projects/<int:project_id>/agreement")
@role_required(Role.lead, Role.admin)
def agreement_api(project_id: int):
    project = managed_project(project_id)
    assisted = clean_flag(request.args.get("assisted"), "'assisted'", field="assisted")
    return jsonify(
        project_agreement(
            get_session(), project, check_scope(request.args.get("scope")), assisted=assisted
        )
    )


@bp.get("/projects/<int:project_id>/export")
@role_required(Role.lead, Role.admin)
def export_api(project_id: int):
    return export_response(managed_project(project_id))


@bp.get("/projects/<int:project_id>/ties")
@role_required(Role.lead, Role.admin)
def ties_api(project_id: int):
    flagged = request.args.get("flagged") in {"1", "true", "yes"}  # only images raters flagged
    return jsonify(ties=tie_list(get_session(), managed_project(project_id), flagged_only=flagged))


@bp.post("/projects/<int:project_id>/ties/<int:image_id>")
@role_required(Role.lead, Role.admin)
def adjudicate_api(project_id: int, image_id: int):
    """Adjudicate one tied image (the page's form posts to the same path)."""
    db = get_session()
    project = managed_project(project_id)
    body = json_body()
    adj = adjudicate(
        db,
        current_user,
        project,
        image_id,
        str(body.get("decision") or ""),
        body.get("note"),
    )
    return jsonify(
        image_id=adj.image_id,
        decision=adj.decision,
        note=adj.note,
        decided_at=adj.decided_at.isoformat(),
    ), 200
