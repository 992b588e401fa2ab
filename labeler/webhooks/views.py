"""Webhook pages: a project's webhooks (register, remove; the secret shown once) and a delivery log."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from ..auth.models import Role
from ..auth.permissions import role_required
from ..db import get_session
from ..errors import on_form_error
from ..events import EVENTS
from ..projects.access import authorized_project
from ..projects.models import Project
from .services import (
    create_endpoint,
    delete_endpoint,
    delivery_log,
    endpoint_dict,
    get_delivery,
    get_endpoint,
    project_endpoints,
    redeliver,
)

bp = Blueprint("webhooks", __name__)
MANAGERS = "Only the project's leads and admins manage its webhooks."


def _project(project_id: int) -> Project:
    return authorized_project(project_id, message=MANAGERS)


def _page(project: Project, *, error=None, status=200, form=None, created=None):
    endpoints = [endpoint_dict(e) for e in project_endpoints(get_session(), project)]
    return render_template(
        "webhooks/webhooks_page.html",
        project=project,
        endpoints=endpoints,
        events=EVENTS,
        error=error,
        form=form or {},
        created=created,
    ), status


@bp.get("/projects/<int:project_id>/webhooks")
@role_required(Role.lead, Role.admin)
def webhooks_page(project_id: int):
    return _page(_project(project_id))


@bp.post("/projects/<int:project_id>/webhooks")
@role_required(Role.lead, Role.admin)
def webhook_add(project_id: int):
    db = get_session()
    project = _project(project_id)
    form = request.form
    chosen = form.getlist("events")
    on_form_error(
        lambda exc: _page(
            project,
            error=exc.message,
            status=exc.status,
            form={**form.to_dict(), "events": chosen},
        )
    )
    endpoint, secret = create_endpoint(
        db,
        current_user,
        project,
        form.get("url"),
        chosen,
        config=current_app.config,
        description=form.get("description"),
    )
    # rendered, not redirected: the secret must not travel in the (signed, readable) session cookie
    return _page(
        project, status=201, created={"id": endpoint.id, "url": endpoint.url, "secret": secret}
    )


@bp.post("/projects/<int:project_id>/webhooks/<int:endpoint_id>/delete")
@role_required(Role.lead, Role.admin)
def webhook_delete(project_id: int, endpoint_id: int):
    db = get_session()
    project = _project(project_id)
    on_form_error(lambda exc: _page(project, error=exc.message, status=exc.status))
    endpoint = get_endpoint(db, endpoint_id, project)
    delete_endpoint(db, current_user, endpoint)
    flash("Webhook removed; nothing more is sent to it.")
    return redirect(url_for("webhooks.webhooks_page", project_id=project.id))


@bp.get("/projects/<int:project_id>/webhooks/<int:endpoint_id>")
@role_required(Role.lead, Role.admin)
def deliveries_page(project_id: int, endpoint_id: int):
    db = get_session()
    project = _project(project_id)
    endpoint = get_endpoint(db, endpoint_id, project)
    return render_template(
        "webhooks/deliveries_page.html",
        project=project,
        endpoint=endpoint_dict(endpoint),
        deliveries=delivery_log(db, endpoint),
    )


@bp.post("/projects/<int:project_id>/webhooks/deliveries/<int:delivery_id>/redeliver")
@role_required(Role.lead, Role.admin)
def delivery_redeliver(project_id: int, delivery_id: int):
    db = get_session()
    project = _project(project_id)
    delivery = get_delivery(db, delivery_id, project)
    redeliver(db, current_user, delivery, config=current_app.config)
    flash(f"Delivery {delivery.id} will be sent again now.")
    return redirect(
        url_for("webhooks.deliveries_page", project_id=project.id, endpoint_id=delivery.endpoint_id)
    )
