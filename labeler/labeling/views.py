"""Rater pages: the labeling page of one queue item, and the rater's own labels."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, current_app, render_template, url_for
from flask_login import current_user

from ..allocation.queue import serve_item
from ..auth.models import Role
from ..auth.permissions import role_required
from ..db import get_session
from ..guidelines.services import guideline_view
from ..guidelines.views import reference_url
from ..projects.models import Project
from .flags import flag_dict, flag_of
from .protocols import decision_name, explanation_name, form_spec
from .services import current_label, label_dict, my_labels, own_item, queue_context

bp = Blueprint("labeling", __name__)
# every page names decisions and explanations in words ("No skin"), never by their codes
bp.add_app_template_filter(decision_name)
bp.add_app_template_filter(explanation_name)
ID = "__ID__"  # placeholder the page script replaces with an item's public id
OPENSEADRAGON = "vendor/node_modules/openseadragon/build/openseadragon/openseadragon.min.js"


def openseadragon_url() -> str | None:
    """OpenSeadragon's script, installed from npm by `make install`; None (no deep zoom) without it."""
    static = current_app.static_folder
    if static and (Path(static) / OPENSEADRAGON).is_file():
        return url_for("static", filename=OPENSEADRAGON)
    current_app.logger.warning("deep zoom is off: run `make install` to install OpenSeadragon")
    return None


@bp.get("/items/<public_id>")
@role_required(Role.rater)
def item_page(public_id: str):
    db = get_session()
    item = serve_item(db, lambda: own_item(db, current_user, public_id))
    project = db.get(Project, item.project_id)
    spec = form_spec(project.protocol.value, project.settings or {})
    state = {
        "item": item.public_id,
        "status": item.status.value,
        "label": label_dict(current_label(db, current_user, item)),
        "flag": flag_dict(flag_of(db, current_user, item)),
        "queue": queue_context(db, current_user, item).as_dict(),
        "protocol": project.protocol.value,
        "urls": {
            "page": url_for("labeling.item_page", public_id=ID),
            "label": url_for("api.get_label", public_id=ID),
            "skip": url_for("api.post_skip", public_id=ID),
            "image": url_for("api.item_image", public_id=ID),
            "icd10": url_for("api.icd10_search"),
            "done": url_for("labeling.my_labels_page"),
            "flag": url_for("api.put_flag", public_id=ID),
            "tiles": url_for("api.item_tiles", public_id=ID),
            "osd": openseadragon_url(),
        },
    }
    guide = guideline_view(db, project, reference_url)
    cards = {s["target"]: s for s in guide["sections"] if s["definition"] or s["images"]}
    return render_template(
        "labeling/item_page.html",
        project=project,
        spec=spec,
        state=state,
        queue=state["queue"],
        guide=guide,
        cards=cards,
    )


@bp.get("/my-labels")
@role_required(Role.rater)
def my_labels_page():
    rows = my_labels(get_session(), current_user)
    return render_template("labeling/my_labels.html", rows=rows)
