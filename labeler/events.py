"""Project events for webhooks, written in the transaction that made them happen (a transactional outbox).

The services call one function here after their write succeeded (one line each). `emit` writes the
event and one delivery per subscribed endpoint in the caller's session, so they commit with the
caller's work or roll back with it: a rolled-back transaction delivers nothing. Once the session
commits, labeler/webhooks/dispatch.py sends the deliveries (Celery, or a local thread).

A project nobody subscribed to costs nothing: `projects.webhook_events` (the union of its active
endpoints' events, kept by the webhook services) is read from the project already in the session, so
a label submit in such a project sends no extra statement (tests/labeling/test_hot_path_statements.py).

Payloads carry ids and counts only: never image bytes, never which images are golden (no golden flag
per image or item, no per-rater golden counts), so golden and fold labels give events of one shape.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .allocation.models import Allocation, ItemStatus, QueueItem
from .db import utcnow
from .labeling.models import Adjudication
from .projects.models import Project
from .training.models import TrainingRun
from .webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent

# event name -> what it means (the page's checkboxes, the OpenAPI enum, the README)
EVENTS: dict[str, str] = {
    "label.submitted": "a rater saved a label (new or changed): the project's and that rater's "
    "progress counts",
    "allocation.changed": "the project was allocated, or a rater was added or removed",
    "project.completed": "the last open queue item of the project was labeled: every queue item "
    "of every rater is done",
    "training_run.finished": "a training run succeeded, failed or was cancelled",
    "tie.adjudicated": "a lead decided a tied image",
}
PENDING = (
    "webhook_deliveries"  # session.info key: delivery ids written, sent once the session commits
)

Payload = dict[str, Any] | Callable[[], dict[str, Any] | None]


def emit(session: Session, name: str, project_id: int, payload: Payload) -> WebhookEvent | None:
    """Write event `name` of the project and its deliveries in this session's transaction.

    `payload` is a dict or a function returning one (called only when an endpoint listens, so that
    counting costs nothing otherwise; returning None writes no event). Returns the event or None.
    """
    if name not in EVENTS:
        raise ValueError(f"unknown webhook event {name!r}")
    project = session.get(Project, project_id)  # the identity map's when loaded: no statement
    if project is None or name not in (project.webhook_events or ()):
        return None
    endpoints = [
        e
        for e in session.scalars(
            select(WebhookEndpoint).where(
                WebhookEndpoint.project_id == project_id, WebhookEndpoint.active.is_(True)
            )
        )
        if name in (e.events or ())
    ]
    if not endpoints:
        return None
    data = payload() if callable(payload) else payload
    if data is None:
        return None
    event = WebhookEvent(
        msg_id=f"msg_{secrets.token_urlsafe(18)}",
        project_id=project_id,
        name=name,
        payload={"project_id": project_id, **data},
    )
    session.add(event)
    session.flush()
    now = utcnow()
    deliveries = [
        WebhookDelivery(endpoint_id=e.id, event_id=event.id, next_attempt_at=now) for e in endpoints
    ]
    session.add_all(deliveries)
    session.flush()
    session.info.setdefault(PENDING, []).extend(d.id for d in deliveries)
    return event


# -- the events, one function per hook ------------------------------------------------------------


def _progress(session: Session, project_id: int, rater_id: int | None = None) -> dict[str, Any]:
    """Done and total queue items of the project (and of one rater), in one query."""
    done = QueueItem.status == ItemStatus.done
    cols = [func.count(QueueItem.id), func.count(QueueItem.id).filter(done)]
    if rater_id is not None:
        mine = QueueItem.rater_id == rater_id
        cols += [func.count(QueueItem.id).filter(mine), func.count(QueueItem.id).filter(mine, done)]
    row = session.execute(select(*cols).where(QueueItem.project_id == project_id)).one()
    out: dict[str, Any] = {"project": {"items_total": row[0], "items_done": row[1]}}
    if rater_id is not None:
        out["rater"] = {"id": rater_id, "items_total": row[2], "items_done": row[3]}
    return out


def label_submitted(session: Session, item: QueueItem, version: int, newly_done: bool) -> None:
    """A label was saved (version 1 or a change); `newly_done`: its queue item was not done before,
    so this label may have completed the project."""
    pid, rater = item.project_id, item.rater_id
    emit(
        session,
        "label.submitted",
        pid,
        lambda: {"version": version, **_progress(session, pid, rater)},
    )
    if newly_done:
        emit(session, "project.completed", pid, lambda: _completed(session, pid))


def _completed(session: Session, project_id: int) -> dict[str, Any] | None:
    """The project.completed payload when no queue item of the project is open any more, else None."""
    counts = _progress(session, project_id)["project"]
    if counts["items_total"] == 0 or counts["items_done"] < counts["items_total"]:
        return None
    raters = session.scalar(
        select(func.count(func.distinct(QueueItem.rater_id))).where(
            QueueItem.project_id == project_id
        )
    )
    return {**counts, "raters": raters}


def allocation_changed(
    session: Session, allocation: Allocation, change: str, rater_id: int | None = None
) -> None:
    """The allocation was created ("created") or a rater added ("rater_added") or removed ("rater_removed")."""
    pid = allocation.project_id

    def payload() -> dict[str, Any]:
        items, raters = session.execute(
            select(func.count(QueueItem.id), func.count(func.distinct(QueueItem.rater_id))).where(
                QueueItem.project_id == pid
            )
        ).one()
        out = {"change": change, "allocation_id": allocation.id, "version": allocation.version}
        if rater_id is not None:
            out["rater_id"] = rater_id
        return {**out, "raters": raters, "items_total": items}

    emit(session, "allocation.changed", pid, payload)


def training_run_finished(session: Session, run: TrainingRun) -> None:
    """A training run ended: succeeded, failed or cancelled."""
    emit(
        session,
        "training_run.finished",
        run.project_id,
        lambda: {
            "run_id": run.id,
            "kind": run.kind.value,
            "status": run.status.value,
            "model_id": run.model_id,
        },
    )


def tie_adjudicated(session: Session, adjudication: Adjudication, replaced: bool) -> None:
    """A lead decided a tied image; `replaced`: it had a decision before."""
    emit(
        session,
        "tie.adjudicated",
        adjudication.project_id,
        {
            "adjudication_id": adjudication.id,
            "image_id": adjudication.image_id,
            "replaced": replaced,
        },
    )
