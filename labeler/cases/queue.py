"""A rater's queue read as cases: the case of an item, the next case, serving a case, progress.

A case is the rater's items whose images share a case id in the project; an image without a case id
is a case of one photo. Allocation keeps cases whole (labeler/allocation/planning.py), so a case is
all golden or all fold, and everything here runs the same queries for both: nothing returned tells
them apart. A case is named to the rater by the opaque id of its first item in the rater's queue.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Integer, and_, case, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from ..allocation.models import ItemStatus, QueueItem
from ..allocation.queue import _still_a_rater, lock_project_queues, next_item
from ..auth.models import User
from ..db import begin_writing, utcnow
from ..errors import NotFound
from ..images.models import Image
from ..projects.models import Project


def _has_case():
    return and_(Image.case_id.is_not(None), Image.case_id != "")


def case_of(
    session: Session, rater: User, item: QueueItem, *, fresh: bool = False
) -> list[tuple[QueueItem, Image]]:
    """The rater's items (with their images) of the item's case, in queue order; [] if the rater
    no longer holds the item. ``fresh``: for a write under the queue lock, the rows are read again
    and locked FOR UPDATE (PostgreSQL), all of them before any is changed: each status change also
    locks the rater's queue tally (allocation.models.QueueTally), so a case locking its photos one at
    a time would deadlock against a single-photo skip or label of a later photo by the same rater."""
    image_case = select(Image.case_id).where(Image.id == item.image_id).scalar_subquery()
    stmt = (
        select(QueueItem, Image)
        .join(Image, Image.id == QueueItem.image_id)
        .where(
            QueueItem.rater_id == rater.id,
            QueueItem.project_id == item.project_id,
            _still_a_rater(rater.id),
            or_(
                QueueItem.id == item.id,
                and_(_has_case(), Image.case_id == image_case),
            ),
        )
        .order_by(QueueItem.position, QueueItem.id)
    )
    if fresh:
        stmt = stmt.with_for_update(of=QueueItem).execution_options(populate_existing=True)
    rows = [(i, img) for i, img in session.execute(stmt)]
    if not any(i.id == item.id for i, _img in rows):
        return []
    return rows


def case_for_rater(
    session: Session, rater: User, public_id: str, *, fresh: bool = False
) -> list[tuple[QueueItem, Image]]:
    """The case holding one of the rater's items, by that item's opaque id; NotFound otherwise."""
    item = None
    if isinstance(public_id, str) and 0 < len(public_id) <= 32:
        stmt = select(QueueItem).where(
            QueueItem.public_id == public_id,
            QueueItem.rater_id == rater.id,
            _still_a_rater(rater.id),
        )
        if fresh:
            stmt = stmt.execution_options(populate_existing=True)
        item = session.scalar(stmt)
    rows = case_of(session, rater, item, fresh=fresh) if item is not None else []
    if not rows:
        raise NotFound("no such case in your queue")
    return rows


def next_case(session: Session, rater: User, project: Project) -> list[tuple[QueueItem, Image]]:
    """The case of the rater's next item (first pending by position, then skipped); [] when done."""
    item = next_item(session, rater, project)
    return case_of(session, rater, item) if item is not None else []


def serve_case(
    session: Session, pick: Callable[[bool], list[tuple[QueueItem, Image]]]
) -> list[tuple[QueueItem, Image]]:
    """Serve the case ``pick(fresh)`` finds, recording the first showing of each of its photos.

    As allocation.queue.serve_item for one item: a rebalance moves only never-shown work, so the
    stamps are written under the project's queue lock after picking again under it; a case served
    can no longer move (photos of a case move together, and none of these is unshown any more).
    """
    rows = pick(False)
    if not rows or all(i.shown_at is not None for i, _img in rows):
        return rows
    project_id = rows[0][0].project_id
    begin_writing(session)  # SQLite: the writer lock before the write (PostgreSQL: a transaction)
    lock_project_queues(session, project_id)
    rows = pick(True)
    unshown = [i for i, _img in rows if i.shown_at is None]
    if unshown:
        now = utcnow()
        session.execute(
            update(QueueItem)
            .where(QueueItem.id.in_([i.id for i in unshown]), QueueItem.shown_at.is_(None))
            .values(shown_at=now)
            .execution_options(synchronize_session=False)
        )
        for i in unshown:
            set_committed_value(i, "shown_at", now)
        session.info["wrote"] = True
    return rows


def case_progress(session: Session, rater: User, project_id: int) -> dict[str, int]:
    """Cases and photos in the rater's queue of the project, and how many of each are labeled."""
    single = case((_has_case(), None), else_=Image.id)
    per_case = (
        select(
            func.min(case((QueueItem.status == ItemStatus.done, 1), else_=0)).label("done"),
            func.count(QueueItem.id).label("photos"),
            func.sum(case((QueueItem.status == ItemStatus.done, 1), else_=0)).label("photos_done"),
        )
        .join(Image, Image.id == QueueItem.image_id)
        .where(QueueItem.rater_id == rater.id, QueueItem.project_id == project_id)
        .group_by(case((_has_case(), Image.case_id), else_=None), single)
        .subquery()
    )
    cases, done, photos, photos_done = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(per_case.c.done.cast(Integer)), 0),
            func.coalesce(func.sum(per_case.c.photos), 0),
            func.coalesce(func.sum(per_case.c.photos_done), 0),
        ).select_from(per_case)
    ).one()
    return {
        "cases": int(cases),
        "cases_done": int(done),
        "photos": int(photos),
        "photos_done": int(photos_done),
    }


def following_case(
    session: Session, rater: User, rows: list[tuple[QueueItem, Image]]
) -> str | None:
    """The opaque id of the case to show after this one (the queue rule: the first pending item
    after this case's first one by position, then the pending ones before it, skipped last)."""
    if not rows:
        return None
    first = rows[0][0]
    ids = [i.id for i, _img in rows]
    mine = (
        QueueItem.rater_id == rater.id,
        QueueItem.project_id == first.project_id,
        QueueItem.id.not_in(ids),
    )
    for status in (ItemStatus.pending, ItemStatus.skipped):
        base = select(QueueItem).where(*mine, QueueItem.status == status)
        item = session.scalar(
            base.where(QueueItem.position > first.position).order_by(QueueItem.position).limit(1)
        ) or session.scalar(base.order_by(QueueItem.position).limit(1))
        if item is not None:
            nxt = case_of(session, rater, item)
            return nxt[0][0].public_id if nxt else None
    return None
