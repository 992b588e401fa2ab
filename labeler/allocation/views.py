"""Allocation page for leads and admins: choose raters, golden set, overlap and seed; preview; commit;
add or remove a rater later. Also ``item_url``, the one place that builds a rater's link to an item."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from ..auth.models import Role
from ..auth.permissions import role_required
from ..db import get_session
from ..errors import ValidationError, on_form_error
from ..projects.access import authorized_project, can_allocate
from ..projects.members import member_raters
from ..validation import DB_INT_MAX, clean_int
from . import services

bp = Blueprint("allocation", __name__)


def item_url(public_id: str) -> str:
    """Where a rater opens an item: the labeling page once it exists, else the item's JSON.

    The labeling page (``labeling.item_page``) is built by another feature; until its blueprint is
    registered, links fall back to ``/api/v1/items/<public_id>`` so no link is ever broken.
    """
    if "labeling.item_page" in current_app.view_functions:
        return url_for("labeling.item_page", public_id=public_id)
    return url_for("api.item_api", public_id=public_id)


def _int_field(name: str, *, default: int | None = None) -> int | None:
    return clean_int(
        request.form.get(name),
        name.replace("_", " "),
        lo=0,
        hi=DB_INT_MAX,
        default=default,
        from_text=True,
    )


def form_params() -> dict[str, Any]:
    """Service arguments from the allocation form (golden: a size, or a list of image ids)."""
    golden_list = (request.form.get("golden_list") or "").replace(",", " ").split()
    mode = request.form.get("golden_mode", "size")
    params: dict[str, Any] = {
        "raters": request.form.getlist("raters"),
        "overlap": _int_field("overlap", default=1),
        "seed": _int_field("seed"),
        "golden_size": None,
        "golden_image_ids": None,
    }
    if mode == "list":
        if not all(x.isdigit() for x in golden_list):
            raise ValidationError("the golden list takes image ids (whole numbers)")
        params["golden_image_ids"] = [int(x) for x in golden_list]
    else:
        params["golden_size"] = _int_field("golden_size", default=0)
    if params["seed"] is None:
        params["seed"] = services.new_seed()  # shown in the preview and committed as is
    return params


def _page(project, *, preview=None, params=None, error=None, status=200, change=None):
    db = get_session()
    return render_template(
        "allocation/allocation_page.html",
        project=project,
        summary=services.summary(db, project),
        candidates=member_raters(db, project),
        preview=preview,
        params=params or {},
        error=error,
        change=change,
    ), status


def _project(project_id: int):
    return authorized_project(project_id, can_allocate, services.ALLOCATION_MANAGERS)


@bp.get("/projects/<int:project_id>/allocation")
@role_required(Role.lead, Role.admin)
def allocation_page(project_id: int):
    return _page(_project(project_id))


@bp.post("/projects/<int:project_id>/allocation/preview")
@role_required(Role.lead, Role.admin)
def allocation_preview(project_id: int):
    project = _project(project_id)
    on_form_error(
        lambda exc: _page(
            project, params=request.form.to_dict(), error=exc.message, status=exc.status
        )
    )
    params = form_params()
    preview = services.preview_allocation(get_session(), project, **params)
    return _page(project, preview=preview, params=params)


@bp.post("/projects/<int:project_id>/allocation")
@role_required(Role.lead, Role.admin)
def allocation_commit(project_id: int):
    db = get_session()
    project = _project(project_id)
    on_form_error(
        lambda exc: _page(
            project, params=request.form.to_dict(), error=exc.message, status=exc.status
        )
    )
    params = form_params()
    services.allocate(db, current_user, project, params.pop("raters"), **params)
    flash("Allocation saved: every rater now has a queue.")
    return redirect(url_for("allocation.allocation_page", project_id=project.id))


@bp.post("/projects/<int:project_id>/allocation/raters")
@role_required(Role.lead, Role.admin)
def rater_add(project_id: int):
    return _change_rater(
        project_id, services.add_rater, "Added {rater}: {fold} fold items and the golden set."
    )


@bp.post("/projects/<int:project_id>/allocation/raters/preview")
@role_required(Role.lead, Role.admin)
def rater_change_preview(project_id: int):
    """What adding or removing the rater would move (form: email, action=add|remove); writes nothing."""
    project = _project(project_id)
    on_form_error(lambda exc: _page(project, error=exc.message, status=exc.status))
    change = services.preview_rater_change(
        get_session(),
        project,
        request.form.get("email", ""),
        remove=request.form.get("action") == "remove",
    )
    return _page(project, change=change)


@bp.post("/projects/<int:project_id>/allocation/raters/remove")
@role_required(Role.lead, Role.admin)
def rater_remove(project_id: int):
    return _change_rater(
        project_id,
        services.remove_rater,
        "Removed {rater}: {kept_labeled} labeled items stay; unlabeled work moved.",
    )


def _change_rater(project_id: int, change, message: str):
    db = get_session()
    project = _project(project_id)
    on_form_error(lambda exc: _page(project, error=exc.message, status=exc.status))
    result = change(db, current_user, project, request.form.get("email", ""))
    flash(message.format(**result))
    return redirect(url_for("allocation.allocation_page", project_id=project.id))
