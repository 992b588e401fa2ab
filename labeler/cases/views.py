"""Rater page: a case, all its photos side by side, answered once per case or once per photo."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for
from flask_login import current_user

from ..allocation.queue import item_and_project, rater_project
from ..auth.models import Role
from ..auth.permissions import role_required
from ..db import get_session
from ..errors import NotFound
from ..labeling.views import openseadragon_url
from ..projects.settings import read_settings
from ..protocols import form_spec, skin_type_question
from .queue import case_for_rater, next_case, serve_case
from .services import case_json

bp = Blueprint("cases", __name__)
ID = "__ID__"  # placeholder the page script replaces with a case's or photo's opaque id


def _image_url(public_id: str) -> str:
    return url_for("api.item_image", public_id=public_id)


@bp.get("/cases/<public_id>")
@role_required(Role.rater)
def case_page(public_id: str):
    db = get_session()
    _item, project = item_and_project(db, current_user, public_id)
    rows = serve_case(db, lambda fresh: case_for_rater(db, current_user, public_id, fresh=fresh))
    case = case_json(db, current_user, project, rows, _image_url)
    spec = form_spec(project.protocol, project.settings)
    state = {
        "case": case,
        "spec": spec,
        "urls": {
            "page": url_for("cases.case_page", public_id=ID),
            "case": url_for("api.case_api", public_id=ID),
            "label": url_for("api.put_case_label", public_id=ID),
            "skip": url_for("api.post_case_skip", public_id=ID),
            "icd10": url_for("api.icd10_search"),
            "done": url_for("labeling.my_labels_page"),
            # full resolution per photo once zoomed in (deep-zoom.js), as on the labeling page
            "tiles": url_for("api.item_tiles", public_id=ID),
            "osd": openseadragon_url(),
        },
    }
    # the optional skin-type second question, where the project asks it (answered per unit too)
    skin = skin_type_question.form_spec() if read_settings(project.settings).ask_skin_type else None
    return render_template(
        "cases/case_page.html", project=project, spec=spec, state=state, skin_question=skin
    )


@bp.get("/projects/<int:project_id>/next-case")
@role_required(Role.rater)
def next_case_page(project_id: int):
    """The rater's next case in the project (its page), or their labels once all are done."""
    db = get_session()
    project = rater_project(db, current_user, project_id)
    if project is None:
        raise NotFound(f"no project with id {project_id}")
    rows = next_case(db, current_user, project)
    if not rows:
        return redirect(url_for("labeling.my_labels_page"))
    return redirect(url_for("cases.case_page", public_id=rows[0][0].public_id))
