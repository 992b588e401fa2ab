"""A rater's own queue: the next item, one item by its opaque id, progress per project; and the
per-project queue lock that serializes rebalancing against submitting and serving.

Everything here is rater-facing, so nothing returned tells golden from fold items: the same
columns, the same queries and the same code path for both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Connection, bindparam, exists, inspect, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from ..auth.models import User
from ..auth.token_grants import checked, confirmed, with_caller_check
from ..db import attach_row, begin_writing, require_transaction, utcnow
from ..errors import NotFound
from ..images.models import Image
from ..labeling.models import Label
from ..projects.models import MemberRole, Project, ProjectMember
from .models import ItemStatus, QueueItem, QueueTally

# The queue lock (PostgreSQL): one transaction-scoped advisory lock per project, keyed
# (QUEUE_LOCK_SPACE, project id). Rebalancing (add/remove a rater) holds it exclusively; submitting,
# skipping and serving an item for the first time hold it shared. So a rebalance waits until every
# submission in flight has committed and then sees its label (a labeled item never moves), and a
# submission that arrives during a rebalance waits, then re-reads its item and finds it moved or kept.
# Submits do not block each other (shared), and the lock costs no row writes. Row locks alone would
# not do: a rebalance reads the whole project (labels, loads, holders) to decide, and a label inserted
# after that read but before its commit is exactly the race that put one image in two queues.
# SQLite needs nothing more: its writing transactions begin IMMEDIATE (labeler/db.py), one at a time.
QUEUE_LOCK_SPACE = (
    0x4C42  # "LB": first key of the two-int advisory lock (other features pick others)
)


_LOCKS = {
    exclusive: text(f"SELECT {fn}(:space, :project)")
    for exclusive, fn in ((True, "pg_advisory_xact_lock"), (False, "pg_advisory_xact_lock_shared"))
}


# session.info: the project whose queue lock the session's innermost transaction holds, and how
# (exclusive or not). A second request for the same lock in the same transaction (submit answering with
# the next item stamps its first showing) is then no statement. Keyed by the transaction object itself:
# a new transaction, or a savepoint (whose rollback releases what it took), takes the lock again.
_HELD = "labeler_queue_lock_held"


def _innermost(session: Session):
    return session.get_nested_transaction() or session.get_transaction()


def _note_held(session: Session, project_id: int, exclusive: bool) -> None:
    session.info[_HELD] = (_innermost(session), project_id, exclusive)


def lock_project_queues(session: Session, project_id: int, *, exclusive: bool = False) -> None:
    """Hold the project's queue lock until the transaction ends: shared to submit, exclusive to rebalance."""
    if session.get_bind().dialect.name != "postgresql":
        return
    held = session.info.get(_HELD)
    if (
        held is not None
        and held[0] is _innermost(session)
        and held[1] == project_id
        and (held[2] or not exclusive)
    ):
        return
    require_transaction(session, "the queue lock")
    session.connection().execute(
        _LOCKS[exclusive], {"space": QUEUE_LOCK_SPACE, "project": project_id}
    )
    _note_held(session, project_id, exclusive)


# -- the hot path in SQLAlchemy Core: statements built once, rows instead of ORM objects -------------
# (GET .../queue/next and GET .../image run on every label; an ORM query's compile and load steps
# cost more than the indexed reads themselves)
_Q, _MEMBERS, _IMAGES = QueueItem.__table__, ProjectMember.__table__, Image.__table__
_TALLY = QueueTally.__table__


class ItemRow(NamedTuple):
    """A rater's queue item as the hot path reads it: the same columns for golden and fold items."""

    id: int
    public_id: str
    project_id: int
    rater_id: int
    position: int
    shown_at: datetime | None
    total: int = 0  # the size of the rater's queue in the project (next only)
    done: int = 0  # how many of them the rater has labeled (next only)
    display_key: str | None = None  # the image route only


_ROW_COLUMNS = (
    _Q.c.id,
    _Q.c.public_id,
    _Q.c.project_id,
    _Q.c.rater_id,
    _Q.c.position,
    _Q.c.shown_at,
)


def _core_still_a_rater(project_column):
    """As _still_a_rater, with the rater as the statement's :rater parameter."""
    return exists().where(
        _MEMBERS.c.project_id == project_column,
        _MEMBERS.c.user_id == bindparam("rater"),
        _MEMBERS.c.role == MemberRole.rater,
    )


_MINE = (_Q.c.rater_id == bindparam("rater"), _Q.c.project_id == bindparam("project"))
# the first item of a status by position, with the queue's size and progress riding along (the
# queue's tally, read by primary key: counting read the rater's whole queue index on every serve),
# only while the caller is one of the project's raters: one statement for the common case
_NEXT_ROW = (
    select(*_ROW_COLUMNS, _TALLY.c.total, _TALLY.c.done)
    .outerjoin(  # outer: a missing tally (never: see QueueTally) hides no item
        _TALLY,
        (_TALLY.c.project_id == _Q.c.project_id) & (_TALLY.c.rater_id == _Q.c.rater_id),
    )
    .where(*_MINE, _Q.c.status == bindparam("status"), _core_still_a_rater(_Q.c.project_id))
    .order_by(_Q.c.position)
    .limit(1)
)
_IS_RATER = select(_core_still_a_rater(bindparam("project")))
_ITEM_IMAGE_ROW = (
    select(*_ROW_COLUMNS, _IMAGES.c.display_key)
    .join(_IMAGES, _IMAGES.c.id == _Q.c.image_id)
    .where(
        _Q.c.public_id == bindparam("public_id"),
        _Q.c.rater_id == bindparam("rater"),
        _core_still_a_rater(_Q.c.project_id),
    )
)
# each also in the forms that check a caller taken on trust (auth.token_grants): the request's first read
_NEXT = with_caller_check(_NEXT_ROW)
_ITEM_IMAGE = with_caller_check(_ITEM_IMAGE_ROW)
# the first showing, stamped only while the item is still the rater's and was never shown
_STAMP_FIRST_SHOWING = (
    update(_Q)
    .where(
        _Q.c.id == bindparam("item"),
        _Q.c.rater_id == bindparam("rater"),
        _Q.c.shown_at.is_(None),
        _core_still_a_rater(_Q.c.project_id),
    )
    .values(shown_at=bindparam("now", type_=_Q.c.shown_at.type))
)


def next_item_row(session: Session, rater_id: int, project_id: int) -> ItemRow | None:
    """The rater's next item in the project (pending by position, then skipped) with the queue's size,
    or None when nothing is left; NotFound unless the caller is one of the project's raters.
    The first read also checks a bearer token taken on trust (auth.token_grants)."""
    conn = session.connection()
    params = {"rater": rater_id, "project": project_id}
    for status in (ItemStatus.pending, ItemStatus.skipped):
        stmt, args = checked(session, _NEXT, {**params, "status": status})
        row = confirmed(session, conn.execute(stmt, args).first())
        if row is not None:
            return ItemRow(*row)
    if not conn.execute(_IS_RATER, params).scalar():
        raise NotFound(f"no project with id {project_id}")
    return None


def item_image_row(session: Session, rater_id: int, public_id: str) -> ItemRow:
    """One of the rater's own items with its image's display key (one statement); anything else
    (another rater's item, an unknown id, a project the rater was removed from) is a plain 404."""
    params = {"public_id": public_id, "rater": rater_id}
    stmt, args = checked(session, _ITEM_IMAGE, params)
    row = confirmed(session, _image_row(session.connection(), stmt, args))
    if row is None:
        raise NotFound("no such item in your queue")
    return row


def trusted_item_image_row(
    conn: Connection, rater_id: int, public_id: str, check: dict[str, Any]
) -> ItemRow | None:
    """item_image_row for a caller taken on trust, read outside any request session
    (api/hot_image.py): the same statement with the caller's check in it. ``check``: a bearer
    token's (PendingCheck.params: TOKEN_STILL_VALID) or a cookie session's (:auth_user and
    :auth_generation alone: SESSION_STILL_VALID). None says only that no row came back: not the
    rater's item, or the caller no longer passes; the caller answers neither and leaves the request to
    the route's full check."""
    stmt = _ITEM_IMAGE.token if "auth_token" in check else _ITEM_IMAGE.session
    return _image_row(conn, stmt, {"public_id": public_id, "rater": rater_id, **check})


def _image_row(conn: Connection, stmt, params: dict[str, Any]) -> ItemRow | None:
    """The item-and-display-key row, or None (none found, or an id no item can have: no statement)."""
    public_id = params["public_id"]
    if not (isinstance(public_id, str) and 0 < len(public_id) <= 32):
        return None
    row = conn.execute(stmt, params).first()
    return None if row is None else ItemRow(*row[:6], display_key=row[6])


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


def rater_project(session: Session, rater: User, project_id: int) -> Project | None:
    """The project, if the rater is one of its raters: one indexed query (the hot path's first)."""
    return session.scalar(
        select(Project).where(
            Project.id == project_id,
            exists().where(
                ProjectMember.project_id == Project.id,
                ProjectMember.user_id == rater.id,
                ProjectMember.role == MemberRole.rater,
            ),
        )
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


def _still_a_rater(rater_id: int):
    """The item's project still counts the rater among its raters (a removed rater keeps no access)."""
    return exists().where(
        ProjectMember.project_id == QueueItem.project_id,
        ProjectMember.user_id == rater_id,
        ProjectMember.role == MemberRole.rater,
    )


_ITEM_COLUMNS = inspect(QueueItem).column_attrs
_READ_UNDER_WRITE_LOCK = "item_read_under_write_lock"  # session.info: (transaction, item id)
# ORM statements of the submit path, built once (parameters :public_id, :item, :rater)
_STILL_A_RATER = exists().where(
    ProjectMember.project_id == QueueItem.project_id,
    ProjectMember.user_id == bindparam("rater"),
    ProjectMember.role == MemberRole.rater,
)
_MY_ITEM = (
    QueueItem.public_id == bindparam("public_id"),
    QueueItem.rater_id == bindparam("rater"),
    _STILL_A_RATER,
)
_GET_ITEM = select(QueueItem).where(*_MY_ITEM)
_ITEM_AND_PROJECT = select(QueueItem, Project).join(Project, Project.id == QueueItem.project_id)
_ITEM_AND_PROJECT = _ITEM_AND_PROJECT.where(*_MY_ITEM)
_LOCK_ITEM = (
    select(QueueItem)
    .where(QueueItem.id == bindparam("item"), QueueItem.rater_id == bindparam("rater"))
    .where(_STILL_A_RATER)
    .with_for_update()
    .execution_options(populate_existing=True)
)


def get_item_for_rater(session: Session, rater: User, public_id: str) -> QueueItem:
    """The rater's own item; anything else (another rater's item, an unknown id, an item of a project
    the rater was removed from) is a plain 404."""
    item = None
    if isinstance(public_id, str) and 0 < len(public_id) <= 32:
        item = session.scalar(_GET_ITEM, {"public_id": public_id, "rater": rater.id})
    if item is None:
        raise NotFound("no such item in your queue")
    return item


def item_and_project(session: Session, rater: User, public_id: str) -> tuple[QueueItem, Project]:
    """get_item_for_rater and the item's project in one query (submitting reads its protocol and settings)."""
    row = None
    if isinstance(public_id, str) and 0 < len(public_id) <= 32:
        row = session.execute(
            _ITEM_AND_PROJECT, {"public_id": public_id, "rater": rater.id}
        ).first()
    if row is None:
        raise NotFound("no such item in your queue")
    if (
        session.get_bind().dialect.name == "sqlite"
        and session.connection().get_execution_options().get("sqlite_immediate")
    ):
        session.info[_READ_UNDER_WRITE_LOCK] = (session.get_transaction(), row[0].id)
    return row[0], row[1]


# Submitting (PostgreSQL): the queue lock first, found from the item's public id (an item's project
# never changes; an unknown id locks nothing: the function is strict and gets NULL), then the item, its
# project and the id of the rater's current label of its image read under it in one statement, the item
# locked FOR UPDATE: two statements where reading, locking and re-reading took four. Only the label's id:
# a label that exists is read again FOR UPDATE before it is changed (labeling.services.submit_label), so
# its 26 columns here were converted and loaded for nothing on every first label. A Core statement: the
# item and the project are built from its row (db.attach_row), as an ORM query with populate_existing
# would load them, at a third of that query's compile and load steps.
_ITEM_KEYS = [a.key for a in inspect(QueueItem).column_attrs]
_PROJECT_KEYS = [a.key for a in inspect(Project).column_attrs]
_LOCK_BY_PUBLIC_ID = text(
    "SELECT pg_advisory_xact_lock_shared(:space, "
    "(SELECT project_id FROM queue_items WHERE public_id = :public_id))"
)
_ITEM_PROJECT_LABEL = (
    select(
        *(getattr(QueueItem, key) for key in _ITEM_KEYS),
        *(getattr(Project, key) for key in _PROJECT_KEYS),
        Label.id,
    )
    .select_from(QueueItem)
    .join(Project, Project.id == QueueItem.project_id)
    .outerjoin(
        Label, (Label.rater_id == QueueItem.rater_id) & (Label.image_id == QueueItem.image_id)
    )
    .where(*_MY_ITEM)
)
_ITEM_PROJECT_LABEL_LOCKED = _ITEM_PROJECT_LABEL.with_for_update(of=QueueItem.__table__)
_ITEM_PROJECT = with_caller_check(_ITEM_PROJECT_LABEL)
_ITEM_PROJECT_LOCKED = with_caller_check(_ITEM_PROJECT_LABEL_LOCKED)


SUBMIT_NOT_IN_QUEUE = (
    "This item is not in your queue: there is no such item, or it moved to another rater when the "
    "project's allocation changed. Nothing was saved."
)


def item_for_submit(
    session: Session, rater: User, public_id: str
) -> tuple[QueueItem, Project, int | None]:
    """The rater's own item, its project and the id of the rater's current label of its image (None:
    no label yet), read under the project's queue lock (the item stays the rater's until commit:
    lock_item_for_rater is then free).

    PostgreSQL: the shared queue lock, then one read with the item locked FOR UPDATE. SQLite: one read
    (a write request's transaction began IMMEDIATE: it holds the database's one write lock). Anything
    that is not the caller's item (another rater's, an unknown id, a removed rater's) is a plain 404.
    """
    if not isinstance(public_id, str) or not 0 < len(public_id) <= 32:
        raise NotFound("no such item in your queue")
    params = {"public_id": public_id, "rater": rater.id}
    postgresql = session.get_bind().dialect.name == "postgresql"
    if postgresql:
        require_transaction(session, "the queue lock")
        session.connection().execute(
            _LOCK_BY_PUBLIC_ID, {"space": QUEUE_LOCK_SPACE, "public_id": public_id}
        )
    elif not session.connection().get_execution_options().get("sqlite_immediate"):
        begin_writing(session)  # a caller outside a write request (tests, scripts)
    stmt, args = checked(session, _ITEM_PROJECT_LOCKED if postgresql else _ITEM_PROJECT, params)
    row = confirmed(session, session.connection().execute(stmt, args).first())
    if row is None:
        # read once, under the lock: an item a rebalance moved away before it is indistinguishable from
        # an unknown id here (and must stay so: another rater's id is a plain 404), so say both
        raise NotFound(SUBMIT_NOT_IN_QUEUE)
    n = len(_ITEM_KEYS)
    item = attach_row(session, QueueItem, dict(zip(_ITEM_KEYS, row[:n], strict=True)))
    project = attach_row(session, Project, dict(zip(_PROJECT_KEYS, row[n:-1], strict=True)))
    label_id = row[-1]
    session.info[_READ_UNDER_WRITE_LOCK] = (session.get_transaction(), item.id)
    if postgresql:
        _note_held(session, item.project_id, exclusive=False)
    return item, project, label_id


def lock_item_for_rater(session: Session, rater: User, item: QueueItem) -> QueueItem:
    """Take the project's queue lock (shared) and re-read the item: it stays the rater's until commit.

    The item was read before the lock; a rebalance that committed meanwhile may have moved it (only
    never-shown items move) or removed the rater. Either way the rater no longer holds it: a 404 that
    says so, and nothing is written.
    """
    if session.info.get(_READ_UNDER_WRITE_LOCK) == (session.get_transaction(), item.id):
        # read in this transaction under the lock that keeps rebalances out until we commit: SQLite's one
        # write lock (item_and_project or item_for_submit in a transaction that began IMMEDIATE,
        # labeler/db.py) or PostgreSQL's queue lock with the item FOR UPDATE (item_for_submit)
        return item
    lock_project_queues(session, item.project_id)
    locked = session.scalar(_LOCK_ITEM, {"item": item.id, "rater": rater.id})
    if locked is None:
        raise NotFound(
            "this item is no longer in your queue (the project's allocation changed); nothing was saved",
            code="item_moved",
        )
    return locked


Served = TypeVar("Served", QueueItem, ItemRow)


def serve_item(session: Session, pick: Callable[[], Served | None]) -> Served | None:
    """Serve the item ``pick()`` finds, recording the first time it is shown (at most one write).

    ``pick`` returns an ORM QueueItem or an ItemRow (the hot path's); the item comes back with its
    shown_at set. A rebalance moves only items never shown, so the stamp is written under the
    project's queue lock and ``pick`` runs again under it: the item served is one that can no longer move.
    """
    item = pick()
    if item is None or item.shown_at is not None:
        return item
    # read now: the restart below expires an ORM item, which may be gone
    project_id, item_id, rater_id = item.project_id, item.id, item.rater_id
    orm = isinstance(item, QueueItem)
    loaded = (
        {a.key: item.__dict__[a.key] for a in _ITEM_COLUMNS if a.key in item.__dict__}
        if orm
        else {}
    )
    # SQLite: the writer lock before the write; PostgreSQL: a transaction (a @reads_only view has none)
    begin_writing(session)
    lock_project_queues(session, project_id)
    now = utcnow()
    # under the lock: stamp the item if it is still this rater's and still never shown. One row
    # stamped means it can no longer move (a rebalance moves only never-shown items), so it is served
    # without reading it again; none (another request stamped it, or a rebalance moved it or removed
    # the rater before we took the lock) falls back to picking again under the lock.
    stamp = {"item": item_id, "rater": rater_id, "now": now}
    session.info["wrote"] = True
    if session.connection().execute(_STAMP_FIRST_SHOWING, stamp).rowcount == 1:
        return _shown(item, now, loaded)
    if orm:
        session.expire(item)
    item = pick()
    if item is not None and item.shown_at is None:
        # picked under the lock: still the rater's; stamped (nothing left for the ORM to flush)
        session.connection().execute(_STAMP_FIRST_SHOWING, {**stamp, "item": item.id})
        return _shown(item, now, {})
    return item


def _shown(item: Served, now: datetime, loaded: dict) -> Served:
    """The item with its first showing set, as stamped (an ORM item's other columns as first read)."""
    if isinstance(item, ItemRow):
        return item._replace(shown_at=now)
    # SQLite's restart expired the item: its columns as read are put back (the stamp proved it is
    # still the rater's and was never shown, so nothing that matters moved), instead of reading it,
    # the rater and the project again
    if loaded and inspect(item).expired:
        for key, value in loaded.items():
            set_committed_value(item, key, value)
    set_committed_value(item, "shown_at", now)
    return item


def queue_total(session: Session, item: QueueItem) -> int:
    """How many items the item's rater has in its project (its queue tally, read by primary key)."""
    total = session.scalar(  # a column, not the object: triggers change the row behind the ORM
        select(QueueTally.total).where(
            QueueTally.project_id == item.project_id, QueueTally.rater_id == item.rater_id
        )
    )
    return total or 0


def queue_progress(session: Session, rater: User) -> dict[int, QueueProgress]:
    """Done/total and the next item for every project in which the rater has a queue (their queue
    tallies: one row per project, not their every item)."""
    rows = session.execute(
        select(QueueTally.project_id, QueueTally.done, QueueTally.total).where(
            QueueTally.rater_id == rater.id, QueueTally.total > 0
        )
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
