"""Recording audit events."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ..auth.models import User
from .models import AuditEvent


def record_event(
    session: Session,
    actor: User | None,
    action: str,
    object_type: str,
    object_id: Any = None,
    *,
    project_id: int | None = None,
    **details: Any,
) -> AuditEvent:
    """Add an audit event to the session (flushed with the change it describes)."""
    event = AuditEvent(
        actor_id=actor.id if actor else None,
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        project_id=project_id,
        details=details,
    )
    session.add(event)
    return event
