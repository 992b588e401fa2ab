"""API: a project's webhooks (register, list, remove), an endpoint's delivery log, redelivery by hand.

For the project's leads and admins. The signing secret is in the answer to the POST that creates
the endpoint, and nowhere else.
"""

from __future__ import annotations

from flask import current_app, jsonify
from flask_login import current_user

from ..auth.models import Role
from ..auth.permissions import role_required
from ..db import get_session
from ..events import EVENTS
from ..projects.access import authorized_project
from ..webhooks.services import (
    create_endpoint,
    delete_endpoint,
    delivery_log,
    endpoint_dict,
    get_delivery,
    get_endpoint,
    project_endpoints,
    redeliver,
)
from .blueprint import bp
from .params import json_body

MANAGERS = "Only the project's leads and admins manage its webhooks."


def _endpoint(endpoint_id: int):
    endpoint = get_endpoint(get_session(), endpoint_id)
    authorized_project(endpoint.project_id, message=MANAGERS)
    return endpoint


@bp.get("/projects/<int:project_id>/webhooks")
@role_required(Role.lead, Role.admin)
def webhooks_api(project_id: int):
    project = authorized_project(project_id, message=MANAGERS)
    return jsonify(webhooks=[endpoint_dict(e) for e in project_endpoints(get_session(), project)])


@bp.post("/projects/<int:project_id>/webhooks")
@role_required(Role.lead, Role.admin)
def webhook_create_api(project_id: int):
    db = get_session()
    project = authorized_project(project_id, message=MANAGERS)
    body = json_body()
    endpoint, secret = create_endpoint(
        db,
        current_user,
        project,
        body.get("url"),
        body.get("events"),
        config=current_app.config,
        description=body.get("description"),
    )
    return jsonify({**endpoint_dict(endpoint), "secret": secret}), 201


@bp.get("/webhooks/<int:endpoint_id>")
@role_required(Role.lead, Role.admin)
def webhook_api(endpoint_id: int):
    return jsonify(endpoint_dict(_endpoint(endpoint_id)))


@bp.delete("/webhooks/<int:endpoint_id>")
@role_required(Role.lead, Role.admin)
def webhook_delete_api(endpoint_id: int):
    delete_endpoint(get_session(), current_user, _endpoint(endpoint_id))
    return "", 204


@bp.get("/webhooks/<int:endpoint_id>/deliveries")
@role_required(Role.lead, Role.admin)
def webhook_deliveries_api(endpoint_id: int):
    return jsonify(deliveries=delivery_log(get_session(), _endpoint(endpoint_id)))


@bp.post("/webhook-deliveries/<int:delivery_id>/redeliver")
@role_required(Role.lead, Role.admin)
def webhook_redeliver_api(delivery_id: int):
    db = get_session()
    delivery = get_delivery(db, delivery_id)
    authorized_project(_endpoint(delivery.endpoint_id).project_id, message=MANAGERS)
    redeliver(db, current_user, delivery, config=current_app.config)
    return jsonify(id=delivery.id, status=delivery.status.value), 202


def _op(summary: str, params: list, *, ok: int = 200, body: dict | None = None) -> dict:
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    op: dict = {
        "summary": summary,
        "parameters": params,
        "responses": {
            str(ok): {"description": "success"},
            **{
                code: {"description": text, **error}
                for code, text in (
                    ("400", "bad request (or no CSRF token with a session)"),
                    ("401", "not signed in"),
                    ("403", "not a lead of the project, nor an admin"),
                    ("404", "not found"),
                    (
                        "422",
                        "invalid: an unknown event, or a URL that is refused (see the message)",
                    ),
                )
            },
        },
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _path_id(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}


WEBHOOK_BODY = {
    "type": "object",
    "required": ["url", "events"],
    "properties": {
        "url": {
            "type": "string",
            "maxLength": 2000,
            "description": "http(s) URL; its host must resolve to public addresses only (unless "
            "LABELER_WEBHOOK_ALLOWED_NETWORKS allows the network); no user name or password",
        },
        "events": {"type": "array", "minItems": 1, "items": {"enum": list(EVENTS)}},
        "description": {"type": "string", "maxLength": 200},
    },
}
WEBHOOK_PATHS: dict[str, dict] = {
    "/api/v1/projects/{project_id}/webhooks": {
        "get": _op("The project's webhooks (never their secrets)", [_path_id("project_id")]),
        "post": _op(
            "Register a webhook for chosen events; 201 with its signing secret (whsec_..., shown "
            "only in this answer). Deliveries are signed JSON POSTs (Standard Webhooks headers "
            "webhook-id, webhook-timestamp, webhook-signature). Events: "
            + "; ".join(f"{k}: {v}" for k, v in EVENTS.items()),
            [_path_id("project_id")],
            ok=201,
            body=WEBHOOK_BODY,
        ),
    },
    "/api/v1/webhooks/{endpoint_id}": {
        "get": _op("A webhook", [_path_id("endpoint_id")]),
        "delete": _op(
            "Remove a webhook and its delivery log; pending deliveries are not sent",
            [_path_id("endpoint_id")],
            ok=204,
        ),
    },
    "/api/v1/webhooks/{endpoint_id}/deliveries": {
        "get": _op(
            "The webhook's latest 100 deliveries, newest first: event (id, type, data), status "
            "pending|succeeded|failed, attempts, last response code and error, next attempt, and "
            "each attempt's time, code, error and duration",
            [_path_id("endpoint_id")],
        ),
    },
    "/api/v1/webhook-deliveries/{delivery_id}/redeliver": {
        "post": _op(
            "Send a delivery again now, with a fresh budget of attempts (202); 409 while one of "
            "its attempts is being sent",
            [_path_id("delivery_id")],
            ok=202,
        ),
    },
}
