"""Rater pages: the labeling page of one queue item, and the rater's own labels."""

from __future__ import annotations

from pathlib import Path

from flask import (
    Blueprint,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from ..allocation.queue import serve_item
from ..assist.suggestions import item_suggestion
from ..auth.models import Role
from ..auth.permissions import role_required
from ..cases.units import case_view
from ..db import get_session
from ..errors import NotFound, on_form_error
from ..guidelines.services import guideline_view
from ..guidelines.views import reference_url
from ..images.models import Image
from ..images.storage import InvalidKey, app_storage
from ..projects.models import Project
from ..projects.settings import read_settings
from ..protocols import decision_name, form_spec, skin_type_question
from ..protocols import get as get_protocol
from ..protocols.explanations import explanation_name
from .flags import flag_dict, flag_of
from .my_labels import MyLabelFilters, decision_choices, filtered_labels, parse_filters
from .services import current_label, label_dict, own_item, queue_context

bp = Blueprint("labeling", __name__)
# every page names decisions and explanations in words ("No skin"), never by their codes
bp.add_app_template_filter(decision_name)
bp.add_app_template_filter(explanation_name)
bp.add_app_template_filter(skin_type_question.answer_name, "skin_type_answer")
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
    if case_view(project.settings):  # the project shows a case's photos together (labeler/cases)
        return redirect(url_for("cases.case_page", public_id=item.public_id))
    protocol = get_protocol(project.protocol)
    spec = form_spec(protocol, project.settings)
    state = {
        "item": item.public_id,
        "status": item.status.value,
        "label": label_dict(current_label(db, current_user, item)),
        "flag": flag_dict(flag_of(db, current_user, item)),
        "queue": queue_context(db, current_user, item).as_dict(),
        "protocol": project.protocol.value,
        "suggestion": item_suggestion(db, item, project),
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
        protocol=protocol,
        spec=spec,
        state=state,
        queue=state["queue"],
        guide=guide,
        cards=cards,
        skin_question=skin_type_question.form_spec()
        if read_settings(project.settings).ask_skin_type
        else None,
    )


@bp.get("/my-labels")
@role_required(Role.rater)
def my_labels_page():
    db = get_session()

    def page(filters: MyLabelFilters, *, error=None, status=200):
        rows, everything = filtered_labels(db, current_user, filters)
        projects = {row.project.id: row.project for row in everything}
        return render_template(
            "labeling/my_labels.html",
            rows=rows,
            total=len(everything),
            filters=filters,
            projects=sorted(projects.values(), key=lambda p: p.name),
            decisions=decision_choices(everything),
            error=error,
        ), status

    on_form_error(lambda exc: page(MyLabelFilters(), error=exc.message, status=exc.status))
    return page(parse_filters(request.args))


@bp.get("/my-labels/<public_id>/thumb")
@role_required(Role.rater)
def my_label_thumb(public_id: str):
    """The thumbnail of one of the rater's items, once shown to them (never cached, no name)."""
    db = get_session()
    item = own_item(db, current_user, public_id)
    if item.shown_at is None:  # never an image the rater has not been shown on the labeling page
        raise NotFound("no such item in your queue")
    image = db.get(Image, item.image_id)
    try:
        with app_storage().open(image.thumb_key) as fh:
            data = fh.read()
    except (FileNotFoundError, InvalidKey):
        raise NotFound("the image of this item is missing from storage") from None
    resp = Response(data, mimetype="image/jpeg")
    resp.headers["Cache-Control"] = "private, no-store"
    return resp
