"""Allocation services (pages, API, CLI and tests call these): allocate, add/remove a rater, summaries.

Services flush and never commit. The rules are in docs/domain.md section 2; the pure dealing is in
``planning``. Rater-facing queue functions are in ``queue``.
"""

from __future__ import annotations

import base64
import logging
import random
import secrets
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from .. import events
from ..audit.services import record_event
from ..auth.models import Role, User, UserRole
from ..auth.services import find_user_by_email
from ..db import utcnow
from ..errors import Conflict, NotFound, ValidationError
from ..images.models import Image
from ..labeling.models import Label
from ..projects.models import MemberRole, Project, ProjectMember
from ..projects.services import add_member, remove_member
from ..validation import MAX_SEED, clean_int
from .models import Allocation, GoldenImage, ItemStatus, QueueItem
from .planning import AllocationPlan, plan_allocation
from .queue import get_item_for_rater, lock_project_queues, next_item

log = logging.getLogger(__name__)

__all__ = [
    "ALLOCATION_MANAGERS",
    "AllocationPlan",
    "add_rater",
    "allocate",
    "current_allocation",
    "get_item_for_rater",
    "new_public_id",
    "next_item",
    "plan_allocation",
    "plan_summary",
    "preview_allocation",
    "preview_rater_change",
    "rater_candidates",
    "remove_rater",
    "resolve_golden_refs",
    "resolve_raters",
    "summary",
]

ALLOCATION_MANAGERS = "Only the project's leads and admins manage its allocation."


PUBLIC_ID_BYTES = (
    18  # 144 random bits; 18 bytes encode to exactly 24 URL-safe characters, no padding
)


def new_public_id() -> str:
    """An opaque per-rater item id: random, never derived from the image id, name or hash."""
    return secrets.token_urlsafe(PUBLIC_ID_BYTES)


def new_public_ids(n: int) -> list[str]:
    """``n`` ids like ``new_public_id``, drawn in one call (allocation makes ~10^5 at once)."""
    text = base64.urlsafe_b64encode(secrets.token_bytes(PUBLIC_ID_BYTES * n)).decode()
    size = PUBLIC_ID_BYTES * 4 // 3
    return [text[i : i + size] for i in range(0, len(text), size)]


def new_seed() -> int:
    return secrets.randbelow(MAX_SEED)


def rater_candidates(session: Session) -> list[User]:
    """Active accounts holding the rater role, by e-mail."""
    stmt = (
        select(User)
        .join(UserRole, UserRole.user_id == User.id)
        .where(UserRole.role == Role.rater, User.active.is_(True))
        .order_by(User.email)
    )
    return list(session.scalars(stmt).unique())


def resolve_raters(session: Session, raters: Iterable[str | User]) -> list[User]:
    """Users from e-mails (or users); each must be an active account with the rater role."""
    users: dict[int, User] = {}
    unknown, not_raters = [], []
    for ref in raters:
        user = ref if isinstance(ref, User) else find_user_by_email(session, str(ref))
        if user is None:
            unknown.append(str(ref))
        elif not user.active or not user.has_role(Role.rater):
            not_raters.append(user.email)
        else:
            users[user.id] = user
    if unknown:
        raise ValidationError(f"no account for: {', '.join(unknown)}", code="unknown_raters")
    if not_raters:
        raise ValidationError(f"not active raters: {', '.join(not_raters)}", code="not_raters")
    if not users:
        raise ValidationError("choose at least one rater", code="no_raters")
    return sorted(users.values(), key=lambda u: u.id)


def resolve_golden_refs(session: Session, project: Project, refs: Iterable[str | int]) -> list[int]:
    """Image ids from ids, file names or sha256 digests (CLI golden lists); unknown refs are refused."""
    rows = session.execute(
        select(Image.id, Image.filename, Image.sha256).where(Image.project_id == project.id)
    ).all()
    by_id = {r.id: r.id for r in rows}
    by_name: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        by_name[r.filename].append(r.id)
        by_name[r.sha256].append(r.id)
    ids, unknown, ambiguous = [], [], []
    for ref in refs:
        text = str(ref).strip()
        if not text:
            continue
        if text.isdigit() and int(text) in by_id:
            ids.append(int(text))
        elif len(by_name.get(text, [])) == 1:
            ids.append(by_name[text][0])
        elif by_name.get(text):
            ambiguous.append(text)
        else:
            unknown.append(text)
    if unknown or ambiguous:
        raise ValidationError(
            f"golden list: unknown {unknown[:10]}, ambiguous {ambiguous[:10]}",
            code="unknown_images",
        )
    return ids


def current_allocation(session: Session, project: Project) -> Allocation | None:
    return session.scalar(select(Allocation).where(Allocation.project_id == project.id))


def _existing_allocation(session: Session, project: Project) -> Allocation | None:
    """The pre-check before inserting (a separate function so the race test can widen the window)."""
    return current_allocation(session, project)


def _project_images(session: Session, project: Project) -> dict[int, str | None]:
    return dict(
        session.execute(select(Image.id, Image.case_id).where(Image.project_id == project.id)).all()
    )


def _check_seed(seed: int | None) -> int:
    if seed is None:
        return new_seed()
    return clean_int(seed, "seed", lo=0, hi=MAX_SEED, code="seed")


def preview_allocation(
    session: Session,
    project: Project,
    raters: Iterable[str | User],
    *,
    golden_size: int | None = None,
    golden_image_ids: Sequence[int] | None = None,
    overlap: int = 1,
    seed: int | None = None,
) -> dict[str, Any]:
    """The summary an allocation would have, without writing anything."""
    users = resolve_raters(session, raters)
    seed = _check_seed(seed)
    plan = plan_allocation(
        _project_images(session, project),
        [u.id for u in users],
        overlap=overlap,
        seed=seed,
        golden_size=golden_size,
        golden_ids=golden_image_ids,
    )
    return plan_summary(plan, users)


def allocate(
    session: Session,
    actor: User | None,
    project: Project,
    raters: Iterable[str | User],
    *,
    golden_size: int | None = None,
    golden_image_ids: Sequence[int] | None = None,
    overlap: int = 1,
    seed: int | None = None,
) -> Allocation:
    """Write the project's one allocation: golden set, raters' queue items, memberships, audit event.

    A project has at most one allocation (unique constraint); a second attempt, even a concurrent
    one, raises Conflict and the caller rolls back.
    """
    users = resolve_raters(session, raters)
    seed = _check_seed(seed)
    if _existing_allocation(session, project) is not None:
        raise Conflict(
            "this project already has an allocation; add or remove raters instead",
            code="already_allocated",
        )
    plan = plan_allocation(
        _project_images(session, project),
        [u.id for u in users],
        overlap=overlap,
        seed=seed,
        golden_size=golden_size,
        golden_ids=golden_image_ids,
    )
    allocation = Allocation(
        project_id=project.id,
        seed=seed,
        overlap=overlap,
        golden_size=len(plan.golden),
        version=1,
        created_by_id=actor.id if actor else None,
    )
    session.add(allocation)
    try:  # first write of the transaction: a concurrent allocate waits here, then fails on the constraint
        session.flush()
    except IntegrityError:
        raise Conflict(
            "this project already has an allocation (created concurrently)",
            code="already_allocated",
        ) from None
    except OperationalError as exc:
        # SQLite: another writer committed after this transaction's first read, so its snapshot can't
        # be upgraded to a write (SQLITE_BUSY_SNAPSHOT); PostgreSQL waits on the constraint instead.
        if session.get_bind().dialect.name == "sqlite" and "locked" in str(exc.orig):
            raise Conflict(
                "the project changed while this allocation was prepared (another allocation?); "
                "reload and try again",
                code="concurrent_change",
            ) from None
        raise
    for user in users:
        add_member(session, actor, project, user, MemberRole.rater)
    if plan.golden:
        session.execute(
            insert(GoldenImage), [{"project_id": project.id, "image_id": i} for i in plan.golden]
        )
    golden = set(plan.golden)
    now = utcnow()
    ids = iter(new_public_ids(sum(len(q) for q in plan.queues.values())))
    rows = [
        {
            "public_id": next(ids),
            "project_id": project.id,
            "rater_id": rater_id,
            "image_id": image_id,
            "position": pos,
            "is_golden": image_id in golden,
            "status": ItemStatus.pending,
            "created_at": now,
        }
        for rater_id, queue in plan.queues.items()
        for pos, image_id in enumerate(queue, start=1)
    ]
    insert_items(session, rows)
    record_event(
        session,
        actor,
        "allocation.create",
        "allocation",
        allocation.id,
        project_id=project.id,
        seed=seed,
        overlap=overlap,
        golden=len(plan.golden),
        raters=[u.id for u in users],
        items=len(rows),
        golden_source="list" if golden_image_ids is not None else "size",
    )
    events.allocation_changed(session, allocation, "created")
    log.info("allocated project %s: %d items for %d raters", project.id, len(rows), len(users))
    return allocation


# -- changing raters later ------------------------------------------------------------------------
# What may move (docs/domain.md section 2): a remaining rater's item moves only if it was never shown
# to them (queue_items.shown_at is NULL), is not labeled and not skipped, and is not golden; a removed
# rater's unlabeled work all moves (they lose access). Labels never move. Moved items land at random
# places among the receiving rater's unseen items. Every change holds the project's queue lock
# exclusively (allocation.queue.lock_project_queues), so no label is written while it decides.

MOVE_RULE = (
    "Only items that their rater has never been shown and has not labeled move; golden items and "
    "labels never move."
)
REMOVE_RULE = (
    "The removed rater's unlabeled items move to the other raters (the removed rater loses access); "
    "their labels stay, read-only, in your dashboards and exports. Other raters' items do not move."
)


def _require_allocation(session: Session, project: Project) -> Allocation:
    allocation = current_allocation(session, project)
    if allocation is None:
        raise NotFound("this project has no allocation yet")
    return allocation


def _active_rater_ids(session: Session, project: Project) -> list[int]:
    """Rater members of the project who hold queue items in it."""
    stmt = (
        select(ProjectMember.user_id)
        .where(
            ProjectMember.project_id == project.id,
            ProjectMember.role == MemberRole.rater,
            ProjectMember.user_id.in_(
                select(QueueItem.rater_id).where(QueueItem.project_id == project.id)
            ),
        )
        .order_by(ProjectMember.user_id)
    )
    return list(session.scalars(stmt))


class _Items:
    """The project's queue items in memory, with the labels that pin them."""

    def __init__(self, session: Session, project: Project) -> None:
        stmt = (
            select(
                QueueItem.id,
                QueueItem.rater_id,
                QueueItem.image_id,
                QueueItem.position,
                QueueItem.is_golden,
                QueueItem.status,
                QueueItem.shown_at,
                Image.case_id,
            )
            .join(Image, Image.id == QueueItem.image_id)
            .where(QueueItem.project_id == project.id)
        )
        self.rows = session.execute(stmt).all()
        self.labeled = set(
            session.execute(
                select(Label.rater_id, Label.image_id).where(Label.project_id == project.id)
            ).all()
        )
        self.by_rater: dict[int, list[Any]] = defaultdict(list)
        for row in self.rows:
            self.by_rater[row.rater_id].append(row)
        for items in self.by_rater.values():
            items.sort(key=lambda r: r.position)

    def images_of(self, rater_id: int) -> set[int]:
        return {r.image_id for r in self.by_rater.get(rater_id, [])}

    def fold_load(self, rater_id: int) -> int:
        return sum(1 for r in self.by_rater.get(rater_id, []) if not r.is_golden)

    def is_unlabeled(self, row: Any) -> bool:
        """Never done, no label by this rater on this image (a removed rater's work that moves)."""
        return (
            row.status is not ItemStatus.done and (row.rater_id, row.image_id) not in self.labeled
        )

    def is_unseen(self, row: Any) -> bool:
        """Never shown, never skipped, unlabeled: the only items a remaining rater may lose or gain around."""
        return row.shown_at is None and row.status is ItemStatus.pending and self.is_unlabeled(row)

    def movable_groups(self, rater_id: int) -> list[list[Any]]:
        """The rater's unseen fold items grouped by case, the group reached last in the queue first.

        A case moves whole, so a case with any item already shown (or labeled) stays.
        """
        groups: dict[Any, list[Any]] = {}
        pinned: set[Any] = set()
        for row in self.by_rater.get(rater_id, []):
            if row.is_golden:
                continue
            key = ("case", row.case_id) if row.case_id else ("image", row.image_id)
            groups.setdefault(key, []).append(row)
            if not self.is_unseen(row):
                pinned.add(key)
        movable = [g for k, g in groups.items() if k not in pinned]
        return sorted(movable, key=lambda g: max(r.position for r in g), reverse=True)


def _reorder(
    session: Session,
    items: _Items,
    rater_id: int,
    project: Project,
    new_images: list[int],
    golden: set[int],
    rng: random.Random,
    removed: set[int],
    now: Any,
) -> None:
    """Rewrite a rater's queue: drop ``removed`` rows, place new images at random among the unseen ones,
    renumber 1..n. Items the rater has seen keep their order; nothing lands in front of them unseen
    items did not already stand in front of."""
    kept = [r for r in items.by_rater.get(rater_id, []) if r.id not in removed]
    unseen = [r for r in kept if items.is_unseen(r)]
    total = len(unseen) + len(new_images)
    slots = set(rng.sample(range(total), len(new_images)))  # a uniform interleaving of old and new
    fresh, old = iter(new_images), iter(unseen)
    merged = [next(fresh) if k in slots else next(old) for k in range(total)]
    order: list[Any] = []
    m = 0
    for row in kept:
        if items.is_unseen(row):  # new images drawn before this unseen row go in front of it
            while merged[m] is not row:
                order.append(merged[m])
                m += 1
            m += 1
        order.append(row)
    order.extend(merged[m:])
    updates, inserts = [], []
    ids = iter(new_public_ids(len(new_images)))
    for pos, entry in enumerate(order, start=1):
        if isinstance(entry, int):
            inserts.append(
                {
                    "public_id": next(ids),
                    "project_id": project.id,
                    "rater_id": rater_id,
                    "image_id": entry,
                    "position": pos,
                    "is_golden": entry in golden,
                    "status": ItemStatus.pending,
                    "created_at": now,
                }
            )
        elif entry.position != pos:
            updates.append({"id": entry.id, "position": pos})
    if updates:
        session.execute(update(QueueItem), updates)
    insert_items(session, inserts)


# PostgreSQL: every new item of an allocation or a rebalance in one INSERT from arrays (the
# driver's executemany would send one statement per row, and the trigger that tallies the queues,
# models.QueueTally, runs once per statement there: once per allocation, not once per item)
_ITEM_ARRAYS = (
    ("public_id", "varchar"),
    ("project_id", "integer"),
    ("rater_id", "integer"),
    ("image_id", "integer"),
    ("position", "integer"),
    ("is_golden", "boolean"),
    ("status", "varchar"),
    ("created_at", "timestamptz"),
)
_INSERT_ITEMS_BATCHED = insert(QueueItem.__table__).returning(QueueItem.__table__.c.id)
_INSERT_FROM_ARRAYS = text(
    f"INSERT INTO queue_items ({', '.join(name for name, _type in _ITEM_ARRAYS)}) "
    f"SELECT * FROM unnest({', '.join(f'CAST(:{n} AS {t}[])' for n, t in _ITEM_ARRAYS)})"
)


def insert_items(session: Session, rows: list[dict]) -> None:
    """New queue items (``rows``: a value for each of _ITEM_ARRAYS' columns), in Core: the ORM's
    per-row bookkeeping would double the time at 10^5 rows. SQLite: multi-row INSERTs of a thousand
    rows, which SQLAlchemy sends for an executemany with RETURNING (its "insertmanyvalues"; the ids
    are not used): a quarter faster than the driver's executemany with the tally's row triggers."""
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql":
        session.execute(_INSERT_ITEMS_BATCHED, rows).close()
        return
    arrays = {name: [row[name] for row in rows] for name, _type in _ITEM_ARRAYS}
    arrays["status"] = [ItemStatus(status).value for status in arrays["status"]]
    session.execute(_INSERT_FROM_ARRAYS, arrays)


def _delete_items(session: Session, ids: set[int]) -> None:
    if ids:
        id_list = sorted(ids)
        for start in range(0, len(id_list), 1000):
            session.execute(
                delete(QueueItem).where(QueueItem.id.in_(id_list[start : start + 1000])),
                execution_options={"synchronize_session": False},
            )


def _golden_ids(session: Session, project: Project) -> set[int]:
    return set(
        session.scalars(select(GoldenImage.image_id).where(GoldenImage.project_id == project.id))
    )


@dataclass
class RaterChange:
    """A planned add or removal: what moves where. Planning reads only; ``_apply_change`` writes."""

    action: str  # "add" | "remove"
    user: User
    allocation: Allocation
    items: _Items
    golden: set[int]
    rng: random.Random
    removed: set[int] = field(default_factory=set)  # queue item ids leaving their rater
    incoming: dict[int, list[int]] = field(default_factory=dict)  # rater id -> images they receive
    moved_from: dict[int, int] = field(default_factory=dict)  # rater id -> items taken from them

    @property
    def moved(self) -> int:
        """Fold items changing hands (golden images given to a new rater are not moves)."""
        return sum(self.moved_from.values())


def _plan_add(session: Session, project: Project, rater: str | User) -> RaterChange:
    allocation = _require_allocation(session, project)
    (user,) = resolve_raters(session, [rater])
    active = _active_rater_ids(session, project)
    if user.id in active:
        raise Conflict(f"{user.email} already has a queue in this project", code="already_rater")
    items = _Items(session, project)
    golden = _golden_ids(session, project)
    rng = random.Random(f"{allocation.seed}:{allocation.version}:add:{user.id}")
    change = RaterChange("add", user, allocation, items, golden, rng)
    mine = items.images_of(user.id)  # a returning rater keeps what they labeled before
    new_images = sorted(golden - mine)
    loads = {r: items.fold_load(r) for r in active}
    my_load = items.fold_load(user.id)
    pools = {r: items.movable_groups(r) for r in active}
    donors = set(active)
    while donors:
        donor = max(sorted(donors), key=lambda r: loads[r])
        gap = loads[donor] - my_load
        if gap <= 1:
            break
        group = next(
            (
                g
                for g in pools[donor]
                if len(g) <= gap // 2 and not mine.intersection(r.image_id for r in g)
            ),
            None,
        )
        if group is None:
            donors.discard(donor)
            continue
        pools[donor].remove(group)
        for row in group:
            change.removed.add(row.id)
            new_images.append(row.image_id)
            mine.add(row.image_id)
        loads[donor] -= len(group)
        my_load += len(group)
        change.moved_from[donor] = change.moved_from.get(donor, 0) + len(group)
    rng.shuffle(new_images)
    change.incoming[user.id] = new_images
    return change


def _plan_remove(session: Session, project: Project, rater: str | User) -> RaterChange:
    allocation = _require_allocation(session, project)
    user = rater if isinstance(rater, User) else find_user_by_email(session, str(rater))
    active = _active_rater_ids(session, project)
    if user is None or user.id not in active:
        raise NotFound(f"{getattr(user, 'email', rater)} has no queue in this project")
    others = [r for r in active if r != user.id]
    if len(others) < allocation.overlap:
        raise ValidationError(
            f"overlap {allocation.overlap} needs at least {allocation.overlap} other raters",
            code="overlap",
        )
    items = _Items(session, project)
    golden = _golden_ids(session, project)
    rng = random.Random(f"{allocation.seed}:{allocation.version}:remove:{user.id}")
    change = RaterChange("remove", user, allocation, items, golden, rng)
    loads = {r: items.fold_load(r) for r in others}
    holds = {r: items.images_of(r) for r in others}
    incoming: dict[int, list[int]] = defaultdict(list)
    leaving = [r for r in items.by_rater.get(user.id, []) if items.is_unlabeled(r)]
    groups: dict[Any, list[Any]] = {}
    for row in leaving:
        if not row.is_golden:  # golden items simply go: every other rater holds every golden image
            key = ("case", row.case_id) if row.case_id else ("image", row.image_id)
            groups.setdefault(key, []).append(row)
    for group in sorted(groups.values(), key=lambda g: min(r.position for r in g)):
        images = [r.image_id for r in group]
        eligible = [r for r in others if not holds[r].intersection(images)]
        if not eligible:
            raise ValidationError(
                f"no rater left who can take image {images[0]} without labeling it twice",
                code="no_receiver",
            )
        receiver = min(eligible, key=lambda r: (loads[r], rng.random()))
        incoming[receiver].extend(images)
        holds[receiver].update(images)
        loads[receiver] += len(images)
    change.removed = {r.id for r in leaving}
    change.moved_from = {user.id: sum(len(v) for v in incoming.values())} if incoming else {}
    for receiver in sorted(incoming):
        rng.shuffle(incoming[receiver])
    change.incoming = dict(incoming)
    return change


def _apply_change(session: Session, project: Project, change: RaterChange) -> None:
    _delete_items(session, change.removed)
    now = utcnow()
    touched = set(change.moved_from) | set(change.incoming) | {change.user.id}
    for rater_id in sorted(touched):
        new_images = change.incoming.get(rater_id, [])
        _reorder(
            session,
            change.items,
            rater_id,
            project,
            new_images,
            change.golden,
            change.rng,
            change.removed,
            now,
        )
    change.allocation.version += 1
    session.flush()
    session.expire_all()  # bulk statements bypassed the identity map


def _emails(session: Session, ids: Iterable[int]) -> dict[int, str]:
    ids = list(ids)
    if not ids:
        return {}
    return dict(session.execute(select(User.id, User.email).where(User.id.in_(ids))).all())


def preview_rater_change(
    session: Session, project: Project, rater: str | User, *, remove: bool = False
) -> dict[str, Any]:
    """What adding (or removing) the rater would move, without writing: counts per rater and the rule."""
    change = (_plan_remove if remove else _plan_add)(session, project, rater)
    receivers = {r: len(v) for r, v in change.incoming.items() if r != change.user.id or remove}
    names = _emails(session, set(change.moved_from) | set(receivers))
    out: dict[str, Any] = {
        "action": change.action,
        "rater": change.user.email,
        "moves": change.moved,
        "moved_from": {names[r]: n for r, n in sorted(change.moved_from.items())},
        "rule": REMOVE_RULE if remove else MOVE_RULE,
    }
    if remove:
        out["moved_to"] = {names[r]: n for r, n in sorted(receivers.items())}
        out["kept_labeled"] = len(change.items.by_rater.get(change.user.id, [])) - len(
            change.removed
        )
    else:
        out["golden"] = len(change.golden - change.items.images_of(change.user.id))
        out["fold"] = change.items.fold_load(change.user.id) + change.moved
    return out


def add_rater(
    session: Session, actor: User | None, project: Project, rater: str | User
) -> dict[str, Any]:
    """Add a rater to an allocated project: every golden image, plus fold work never shown to its rater
    moved from the most loaded raters until loads differ by at most 1 (whole cases; labels never move)."""
    lock_project_queues(session, project.id, exclusive=True)
    change = _plan_add(session, project, rater)
    user = change.user
    add_member(session, actor, project, user, MemberRole.rater)
    golden_new = len(change.golden - change.items.images_of(user.id))
    fold = change.items.fold_load(user.id) + change.moved
    _apply_change(session, project, change)
    result = {
        "rater": user.email,
        "golden": golden_new,
        "moved": {str(k): v for k, v in sorted(change.moved_from.items())},
        "fold": fold,
    }
    record_event(
        session,
        actor,
        "allocation.rater_add",
        "allocation",
        change.allocation.id,
        project_id=project.id,
        user_id=user.id,
        version=change.allocation.version,
        **result,
    )
    events.allocation_changed(session, change.allocation, "rater_added", user.id)
    return result


def remove_rater(
    session: Session, actor: User | None, project: Project, rater: str | User
) -> dict[str, Any]:
    """Take a rater off a project: their labels and labeled items stay (read-only, for the leads); their
    unlabeled work goes, whole cases at a time, to the least loaded raters who do not hold those images;
    they keep no access to the project's items."""
    lock_project_queues(session, project.id, exclusive=True)
    change = _plan_remove(session, project, rater)
    user = change.user
    kept = len(change.items.by_rater.get(user.id, [])) - len(change.removed)
    _apply_change(session, project, change)
    remove_member(session, actor, project, user, MemberRole.rater)
    session.flush()
    result = {
        "rater": user.email,
        "kept_labeled": kept,
        "moved": {str(k): len(v) for k, v in sorted(change.incoming.items())},
    }
    record_event(
        session,
        actor,
        "allocation.rater_remove",
        "allocation",
        change.allocation.id,
        project_id=project.id,
        user_id=user.id,
        version=change.allocation.version,
        **result,
    )
    events.allocation_changed(session, change.allocation, "rater_removed", user.id)
    return result


# -- summaries ------------------------------------------------------------------------------------


def _spread(values: Sequence[int]) -> dict[str, int]:
    return {"min": min(values, default=0), "max": max(values, default=0)}


def plan_summary(plan: AllocationPlan, users: Sequence[User]) -> dict[str, Any]:
    """The preview: the same shape as ``summary`` for a plan not yet written."""
    by_id = {u.id: u for u in users}
    raters = [
        {
            "id": rid,
            "email": by_id[rid].email,
            "name": by_id[rid].name,
            "golden": len(plan.golden),
            "fold": len(plan.folds[rid]),
            "total": len(plan.queues[rid]),
            "done": 0,
            "skipped": 0,
        }
        for rid in sorted(plan.queues)
    ]
    return _summary_dict(
        allocated=False,
        seed=plan.seed,
        overlap=plan.overlap,
        version=0,
        images=plan.image_count,
        golden=len(plan.golden),
        fold_images=len({i for ids in plan.folds.values() for i in ids}),
        raters=raters,
    )


def _summary_dict(
    *,
    allocated: bool,
    seed: int | None,
    overlap: int | None,
    version: int,
    images: int,
    golden: int,
    fold_images: int,
    raters: list[dict[str, Any]],
) -> dict[str, Any]:
    totals = [r["total"] for r in raters]
    done = sum(r["done"] for r in raters)
    total = sum(totals)
    return {
        "allocated": allocated,
        "seed": seed,
        "overlap": overlap,
        "version": version,
        "images": images,
        "golden": golden,
        "golden_share": round(golden / images, 4) if images else 0.0,
        "fold_images": fold_images,
        "unallocated_images": max(images - golden - fold_images, 0),
        "fold_sizes": _spread([r["fold"] for r in raters]),
        "items_per_rater": _spread(totals),
        "golden_share_of_queue": round(golden * len(totals) / sum(totals), 4)
        if sum(totals)
        else 0.0,
        "raters": raters,
        "progress": {
            "done": done,
            "total": total,
            "fraction": round(done / total, 4) if total else 0.0,
        },
    }


def summary(session: Session, project: Project) -> dict[str, Any]:
    """Fold sizes, items per rater, golden share and progress of the project's allocation (leads, admins)."""
    allocation = current_allocation(session, project)
    images = session.scalar(select(func.count(Image.id)).where(Image.project_id == project.id)) or 0
    if allocation is None:
        return _summary_dict(
            allocated=False,
            seed=None,
            overlap=None,
            version=0,
            images=images,
            golden=0,
            fold_images=0,
            raters=[],
        )
    active = set(_active_rater_ids(session, project))
    stmt = (
        select(QueueItem.rater_id, QueueItem.is_golden, QueueItem.status, func.count())
        .where(QueueItem.project_id == project.id)
        .group_by(QueueItem.rater_id, QueueItem.is_golden, QueueItem.status)
    )
    counts: dict[int, dict[str, int]] = defaultdict(
        lambda: {"golden": 0, "fold": 0, "done": 0, "skipped": 0}
    )
    for rater_id, is_golden, status, n in session.execute(stmt):
        c = counts[rater_id]
        c["golden" if is_golden else "fold"] += n
        if status is ItemStatus.done:
            c["done"] += n
        elif status is ItemStatus.skipped:
            c["skipped"] += n
    users = (
        {u.id: u for u in session.scalars(select(User).where(User.id.in_(active)))}
        if active
        else {}
    )
    raters = [
        {
            "id": rid,
            "email": users[rid].email,
            "name": users[rid].name,
            **counts[rid],
            "total": counts[rid]["golden"] + counts[rid]["fold"],
        }
        for rid in sorted(active)
    ]
    fold_images = (
        session.scalar(
            select(func.count(func.distinct(QueueItem.image_id))).where(
                QueueItem.project_id == project.id, QueueItem.is_golden.is_(False)
            )
        )
        or 0
    )
    golden = (
        session.scalar(
            select(func.count(GoldenImage.id)).where(GoldenImage.project_id == project.id)
        )
        or 0
    )
    return _summary_dict(
        allocated=True,
        seed=allocation.seed,
        overlap=allocation.overlap,
        version=allocation.version,
        images=images,
        golden=golden,
        fold_images=fold_images,
        raters=raters,
    )
