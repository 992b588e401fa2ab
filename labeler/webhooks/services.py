"""Webhook endpoints and their delivery log: register, list, remove, redeliver (pages, API and CLI)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..audit.services import record_event
from ..auth.models import User
from ..db import utcnow
from ..errors import Conflict, NotFound, ValidationError
from ..events import EVENTS, PENDING
from ..projects.models import Project
from ..validation import clean_text
from .delivery import new_secret, settings
from .models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from .targets import check_url, resolve

MAX_ENDPOINTS = 20  # per project: every event is sent to each, so the fan-out stays bounded
LOG_LIMIT = 100  # deliveries shown per endpoint, newest first


def clean_events(values: Any) -> list[str]:
    """A non-empty list of known event names, in the registry's order."""
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, (list, tuple)) or not values:
        raise ValidationError("choose at least one event: " + ", ".join(EVENTS), field="events")
    unknown = [v for v in values if not isinstance(v, str) or v not in EVENTS]
    if unknown:
        raise ValidationError(
            f"unknown event {str(unknown[0])[:60]!r}; the events are " + ", ".join(EVENTS),
            field="events",
        )
    return [name for name in EVENTS if name in values]


def refresh_project_events(session: Session, project: Project) -> None:
    """Keep projects.webhook_events, the union of the active endpoints' events, which emit() reads.

    The project's row is locked first (PostgreSQL; a SQLite write already holds the database), so two
    leads adding webhooks at once each count the other's: neither overwrites the other's events."""
    session.flush()
    session.execute(select(Project.id).where(Project.id == project.id).with_for_update())
    names: set[str] = set()
    for events in session.scalars(
        select(WebhookEndpoint.events).where(
            WebhookEndpoint.project_id == project.id, WebhookEndpoint.active.is_(True)
        )
    ):
        names.update(events or ())
    project.webhook_events = [n for n in EVENTS if n in names] or None
    session.flush()


def create_endpoint(
    session: Session,
    actor: User | None,
    project: Project,
    url: Any,
    events: Any,
    *,
    config: Mapping[str, Any],
    description: Any = None,
) -> tuple[WebhookEndpoint, str]:
    """Register a URL for the project's chosen events; returns the endpoint and its secret (shown once).

    The URL is resolved and refused if an address is not public (unless the network is allowed).
    """
    check_url(url)
    names = clean_events(events)
    description = clean_text(description, "the description", max_len=200, field="description")
    count = len(project_endpoints(session, project))
    if count >= MAX_ENDPOINTS:
        raise ValidationError(
            f"this project already has {MAX_ENDPOINTS} webhooks; remove one first", field="url"
        )
    target = resolve(url, settings(config)["allowed"])
    secret = new_secret()
    endpoint = WebhookEndpoint(
        project_id=project.id,
        url=url.strip(),
        events=names,
        secret=secret,
        description=description,
        created_by_id=actor.id if actor else None,
    )
    session.add(endpoint)
    session.flush()
    refresh_project_events(session, project)
    record_event(
        session,
        actor,
        "webhook.create",
        "webhook_endpoint",
        endpoint.id,
        project_id=project.id,
        host=target.host,
        events=names,
    )
    return endpoint, secret


def project_endpoints(session: Session, project: Project) -> list[WebhookEndpoint]:
    return list(
        session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.project_id == project.id)
            .order_by(WebhookEndpoint.id)
        )
    )


def get_endpoint(
    session: Session, endpoint_id: int, project: Project | None = None
) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or (project is not None and endpoint.project_id != project.id):
        raise NotFound(f"no webhook with id {endpoint_id}")
    return endpoint


def delete_endpoint(session: Session, actor: User | None, endpoint: WebhookEndpoint) -> None:
    """Remove the endpoint and its delivery log; pending deliveries to it are not sent."""
    project = session.get(Project, endpoint.project_id)
    record_event(
        session,
        actor,
        "webhook.delete",
        "webhook_endpoint",
        endpoint.id,
        project_id=endpoint.project_id,
        url=endpoint.url,
    )
    session.delete(endpoint)
    refresh_project_events(session, project)


def get_delivery(
    session: Session, delivery_id: int, project: Project | None = None
) -> WebhookDelivery:
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise NotFound(f"no webhook delivery with id {delivery_id}")
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
    if project is not None and endpoint.project_id != project.id:
        raise NotFound(f"no webhook delivery with id {delivery_id}")
    return delivery


def redeliver(
    session: Session, actor: User | None, delivery: WebhookDelivery, *, config: Mapping[str, Any]
) -> WebhookDelivery:
    """Send a delivery again now, with a fresh budget of attempts (the log keeps the earlier ones)."""
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
    if not endpoint.active:
        raise ValidationError("this webhook is disabled; nothing is sent to it")
    if _on_the_wire(session, delivery):
        # an attempt is claimed and not yet logged: making the delivery due now would let a second
        # sender claim it while the first is still sending (the same event twice at once)
        raise Conflict(
            "this delivery is being sent right now; its result appears in the log within "
            "a minute, then it can be sent again"
        )
    delivery.status = DeliveryStatus.pending
    delivery.attempt_limit = delivery.attempts + settings(config)["max_attempts"]
    delivery.next_attempt_at = utcnow()
    delivery.finished_at = None
    session.flush()
    session.info.setdefault(PENDING, []).append(delivery.id)
    record_event(
        session,
        actor,
        "webhook.redeliver",
        "webhook_delivery",
        delivery.id,
        project_id=endpoint.project_id,
    )
    return delivery


def _on_the_wire(session: Session, delivery: WebhookDelivery) -> bool:
    """A sender claimed the delivery's latest attempt, has not logged it, and its lease runs still
    (delivery.deliver_once: the claim counts the attempt and moves next_attempt_at past its end)."""
    if delivery.status is not DeliveryStatus.pending or not delivery.attempts:
        return False
    due = delivery.next_attempt_at
    if due is None:
        return False
    if due.tzinfo is None:  # SQLite hands back naive UTC
        due = due.replace(tzinfo=utcnow().tzinfo)
    if due <= utcnow():
        return False
    logged = session.scalar(
        select(func.count(WebhookAttempt.id)).where(
            WebhookAttempt.delivery_id == delivery.id,
            WebhookAttempt.number == delivery.attempts,
        )
    )
    return not logged


def endpoint_dict(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """An endpoint as the API shows it (never its secret: that is shown once, when it is created)."""
    return {
        "id": endpoint.id,
        "project_id": endpoint.project_id,
        "url": endpoint.url,
        "events": list(endpoint.events or []),
        "description": endpoint.description,
        "active": endpoint.active,
        "created_at": endpoint.created_at.isoformat(),
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def attempt_dict(attempt: WebhookAttempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "at": attempt.started_at.isoformat(),
        "duration_ms": attempt.duration_ms,
        "status_code": attempt.status_code,
        "error": attempt.error,
        "ok": attempt.ok,
    }


def delivery_log(
    session: Session, endpoint: WebhookEndpoint, limit: int = LOG_LIMIT
) -> list[dict[str, Any]]:
    """The endpoint's latest deliveries, newest first, each with its event and its attempts."""
    rows = session.execute(
        select(WebhookDelivery, WebhookEvent)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.endpoint_id == endpoint.id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    ).all()
    attempts: dict[int, list[WebhookAttempt]] = {}
    ids = [d.id for d, _e in rows]
    if ids:
        for attempt in session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(ids))
            .order_by(WebhookAttempt.number)
        ):
            attempts.setdefault(attempt.delivery_id, []).append(attempt)
    return [delivery_dict(d, e, attempts.get(d.id, [])) for d, e in rows]


def delivery_dict(
    delivery: WebhookDelivery, event: WebhookEvent, attempts: Iterable[WebhookAttempt]
) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "endpoint_id": delivery.endpoint_id,
        "event": {
            "id": event.msg_id,
            "type": event.name,
            "created_at": event.created_at.isoformat(),
            "data": event.payload,
        },
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "last_attempt_at": _iso(delivery.last_attempt_at),
        "next_attempt_at": _iso(delivery.next_attempt_at)
        if delivery.status is DeliveryStatus.pending
        else None,
        "finished_at": _iso(delivery.finished_at),
        "log": [attempt_dict(a) for a in attempts],
    }
