"""A rater's own queue: the next item, one item by its opaque id, progress per project.

Everything here is rater-facing, so nothing returned tells golden from fold items: the same
columns, the same queries and the same code path for both.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from ..auth.models import User
from ..errors import NotFound
from ..projects.models import MemberRole, Project, ProjectMember
from .models import ItemStatus, QueueItem


@dataclass(frozen=True)
class QueueProgress:
    """One project on a rater's home page."""

    project: Project
    done: int
    total: int
    next_public_id: str | None


def is_project_rater(session: Session, rater: User, project: Project) -> bool:
    return (
        session.scalar(
            select(ProjectMember.id).where(
                ProjectMember.project_id == project.id,
                ProjectMember.user_id == rater.id,
                ProjectMember.role == MemberRole.rater,
            )
        )
        is not None
    )


def next_item(session: Session, rater: User, project: Project) -> QueueItem | None:
    """The first pending item by position; skipped items come back only once nothing is pending."""
    base = select(QueueItem).where(
        QueueItem.rater_id == rater.id, QueueItem.project_id == project.id
    )
    for status in (ItemStatus.pending, ItemStatus.skipped):
        item = session.scalar(
            base.where(QueueItem.status == status).order_by(QueueItem.position).limit(1)
        )
        if item is not None:
            return item
    return None


def get_item_for_rater(session: Session, rater: User, public_id: str) -> QueueItem:
    """The rater's own item; anything else (another rater's item, an unknown id) is a plain 404."""
    item = None
    if isinstance(public_id, str) and 0 < len(public_id) <= 32:
        item = session.scalar(
            select(QueueItem).where(
                QueueItem.public_id == public_id, QueueItem.rater_id == rater.id
            )
        )
    if item is None:
        raise NotFound("no such item in your queue")
    return item


def queue_total(session: Session, item: QueueItem) -> int:
    """How many items the item's rater has in its project."""
    return (
        session.scalar(
            select(func.count(QueueItem.id)).where(
                QueueItem.rater_id == item.rater_id, QueueItem.project_id == item.project_id
            )
        )
        or 0
    )


def rater_progress(session: Session, rater: User) -> dict[int, QueueProgress]:
    """Done/total and the next item for every project in which the rater has a queue."""
    done = func.sum(case((QueueItem.status == ItemStatus.done, 1), else_=0))
    rows = session.execute(
        select(QueueItem.project_id, done, func.count(QueueItem.id))
        .where(QueueItem.rater_id == rater.id)
        .group_by(QueueItem.project_id)
    ).all()
    out: dict[int, QueueProgress] = {}
    for project_id, n_done, n_total in rows:
        project = session.get(Project, project_id)
        if project is None or not is_project_rater(session, rater, project):
            continue
        nxt = next_item(session, rater, project)
        out[project_id] = QueueProgress(
            project, int(n_done or 0), int(n_total), nxt.public_id if nxt else None
        )
    return out
