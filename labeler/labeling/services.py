"""Labels: submit (validated, versioned, idempotent), skip, history, the rater's own list.

Services take the session and an explicit rater, flush and never commit.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, insert, literal, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from .. import events
from ..allocation.models import ItemStatus, QueueItem
from ..allocation.queue import get_item_for_rater, lock_item_for_rater
from ..assist.suggestions import prelabel_model
from ..audit.services import record_event
from ..auth.models import User
from ..cases.units import per_case
from ..db import built, utcnow
from ..errors import Conflict, NotFound, ValidationError
from ..projects.models import MemberRole, Project, ProjectMember
from ..projects.settings import read_settings
from ..protocols import skin_type_question, validate_submission
from ..protocols.base import MAX_TEXT, CleanLabel
from ..validation import clean_text, text_problem
from . import icd10
from .models import Label, LabelRevision

log = logging.getLogger(__name__)
# One submission adds at most an hour to a label's time: longer is a tab left open, not work, and the
# cap keeps the accumulated total (a 64-bit column) from ever overflowing.
MAX_TIME_SPENT_MS = 3600 * 1000


def known_code(code: str) -> str | None:
    entry = icd10.lookup(code)
    return entry.code if entry else None


def own_item(session: Session, rater: User, public_id: str) -> QueueItem:
    """The rater's own queue item, or NotFound (another rater's item is indistinguishable from none)."""
    return get_item_for_rater(session, rater, public_id)


def _check_owner(rater: User, item: QueueItem) -> None:
    if item.rater_id != rater.id:
        raise NotFound("no such item in your queue")


def current_label(
    session: Session, rater: User, item: QueueItem, *, for_update: bool = False
) -> Label | None:
    """The rater's current label of the item's image, if any."""
    stmt = select(Label).where(Label.rater_id == rater.id, Label.image_id == item.image_id)
    if for_update:
        # the locked row's values, not the ones the session already holds: the label may have been
        # read before another transaction changed it (allocation.queue.item_for_submit waits for the
        # item's lock, then returns the label as it was when its statement began)
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return session.scalar(stmt)


def label_dict(label: Label | None) -> dict[str, Any] | None:
    """The JSON form of a label (its owner's view)."""
    if label is None:
        return None
    entry = icd10.lookup(label.icd10) if label.icd10 else None
    return {
        "decision": label.decision,
        "icd10": label.icd10,
        "icd10_name": entry.name if entry else None,
        "icd10_missing_text": label.icd10_missing_text,
        "explanations": list(label.explanations or []),
        "grade": label.grade,
        "skin_type": label.skin_type,
        "version": label.version,
        "assisted": label.assisted,
        "time_spent_ms": label.time_spent_ms,
        "updated_at": label.updated_at.isoformat(),
    }


def revision_dict(rev: LabelRevision) -> dict[str, Any]:
    return {
        "version": rev.version,
        "decision": rev.decision,
        "icd10": rev.icd10,
        "icd10_missing_text": rev.icd10_missing_text,
        "explanations": list(rev.explanations or []),
        "grade": rev.grade,
        "skin_type": rev.skin_type,
        "assisted": rev.assisted,
        "time_spent_ms": rev.time_spent_ms,
        "author_id": rev.author_id,
        "created_at": rev.created_at.isoformat(),
    }


def _clean_time(time_spent_ms: Any) -> int:
    """Milliseconds spent on this submission: a finite number >= 0, clipped to MAX_TIME_SPENT_MS."""
    if time_spent_ms is None:
        return 0
    if (
        isinstance(time_spent_ms, bool)
        or not isinstance(time_spent_ms, (int, float))
        or not math.isfinite(time_spent_ms)
        or time_spent_ms < 0
    ):
        raise ValidationError(
            "'time_spent_ms' must be a non-negative number of milliseconds", field="time_spent_ms"
        )
    return int(min(time_spent_ms, MAX_TIME_SPENT_MS))


def _clean_submission_id(submission_id: Any) -> str | None:
    if submission_id is None:
        return None
    if (
        not isinstance(submission_id, str)
        or not 1 <= len(submission_id) <= 64
        or text_problem(submission_id)
    ):
        raise ValidationError(
            "'submission_id' must be text of 1 to 64 characters", field="submission_id"
        )
    return submission_id


def _clean_base_version(base_version: Any) -> int | None:
    if base_version is None:
        return None
    if isinstance(base_version, bool) or not isinstance(base_version, int) or base_version < 0:
        raise ValidationError(
            "'base_version' must be the label version you started from (0 for a new label)",
            field="base_version",
        )
    return base_version


def _conflict(label: Label, message: str) -> Conflict:
    return Conflict(message, current=label_dict(label))


def submit_label(
    session: Session,
    rater: User,
    item: QueueItem,
    data: Mapping[str, Any],
    *,
    base_version: int | None,
    submission_id: str | None,
    time_spent_ms: int | None,
    project: Project | None = None,
    as_case: bool = False,
    labeled: bool | None = None,
) -> Label:
    """Save the rater's label of the item: validated, one current label, the change kept as a new revision.

    ``project``: the item's project when the caller already read it (allocation.queue.item_and_project).
    ``as_case``: written as one photo of a per-case answer (labeler/cases/services.submit_case); any
    other submission to a project that answers per case is refused.
    ``labeled``: whether the rater has a label of the image, when the caller read that with the item
    under the queue lock (allocation.queue.item_for_submit): no second read for a first label. None:
    not read (a label that exists is read FOR UPDATE either way).

    A retry with a submission_id already recorded returns the label unchanged. A base_version other than the
    current version (0 or None for "no label yet") is refused with 409 carrying the current value.
    """
    _check_owner(rater, item)
    if project is None or project.id != item.project_id:
        project = session.get(Project, item.project_id)
    if not as_case and per_case(project.protocol, project.settings):
        # one answer per case is written on every photo of the case at once (labeler/cases/)
        raise Conflict(
            "this project answers once per case: label this photo on its case's page",
            code="label_per_case",
        )
    clean = validate_submission(project.protocol, project.settings, data, known_code)
    # the optional second answer (1-6, 0 cannot assess, None), refused where the project does not ask it
    skin = skin_type_question.clean_answer(
        read_settings(project.settings).ask_skin_type, data.get(skin_type_question.FIELD)
    )
    base_version = _clean_base_version(base_version)
    submission_id = _clean_submission_id(submission_id)
    spent = _clean_time(time_spent_ms)
    # pre-labeling: the model whose suggestion the rater was shown (the project's, on every item alike)
    shown = prelabel_model(session, project)
    # the item is the rater's until commit: no rebalance moves it while this label is written, and one
    # that moved it before we got here answers 404 without writing (see allocation.queue)
    item = lock_item_for_rater(session, rater, item)

    if labeled is not False:
        # a change locks the label itself: a scale migration (projects.services) rewrites labels
        # under FOR UPDATE, and a first label has no row to lock (its insert is checked instead)
        label = current_label(session, rater, item, for_update=True)
    else:
        label = None
    if label is not None and submission_id is not None and label.submission_id == submission_id:
        return label  # a retried submit of the latest version: already recorded (no query)
    if label is None:
        if base_version:
            log.info(
                "label of item %s: base_version %s but no label yet", item.public_id, base_version
            )
        label = _insert_first_label(session, rater, item, clean, skin, submission_id, spent, shown)
        if label.id is None:  # another request created it between our read and our insert
            existing = current_label(session, rater, item)
            if existing is None:
                raise Conflict("this label could not be saved; please submit it again")
            if _already_recorded(session, existing, submission_id):
                return existing  # the same submission sent twice at once: both get the one label
            raise _conflict(
                existing, "this image was labeled meanwhile (another tab?); review the saved answer"
            )
        events.label_submitted(session, item, 1, item.status is not ItemStatus.done)
        set_committed_value(item, "status", ItemStatus.done)
        set_committed_value(item, "skip_reason", None)
        return label
    else:
        if base_version != label.version:
            # a retry of an older submission started from an older version: find it among the
            # revisions (a genuine retry always lands here or above, so a fresh edit needs no query)
            if _already_recorded(session, label, submission_id):
                return label
            raise _conflict(
                label,
                f"this label was changed meanwhile (now version {label.version}, you started "
                f"from {base_version or 'no label'}); review the saved answer and submit again",
            )
        old = {
            "decision": label.decision,
            "icd10": label.icd10,
            "grade": label.grade,
            "explanations": list(label.explanations or []),
            "icd10_missing_text": label.icd10_missing_text,
            "skin_type": label.skin_type,
        }
        label.version += 1
        label.time_spent_ms = (label.time_spent_ms or 0) + spent
        label.updated_at = utcnow()
        label.assisted, label.suggestion_model_id = shown is not None, shown
        _apply(label, clean, submission_id, skin)
        record_event(
            session,
            rater,
            "label.change",
            "label",
            label.id,
            project_id=item.project_id,
            item=item.public_id,
            version=label.version,
            before=old,
            after={**clean.as_dict(), "skin_type": skin},
        )
    session.add(
        LabelRevision(
            label_id=label.id,
            version=label.version,
            author_id=rater.id,
            decision=clean.decision,
            icd10=clean.icd10,
            icd10_missing_text=clean.icd10_missing_text,
            explanations=list(clean.explanations),
            grade=clean.grade,
            skin_type=skin,
            time_spent_ms=spent,
            submission_id=submission_id,
            assisted=shown is not None,
            suggestion_model_id=shown,
        )
    )
    newly_done = item.status is not ItemStatus.done
    item.status = ItemStatus.done
    item.skip_reason = None
    session.flush()
    events.label_submitted(session, item, label.version, newly_done)
    return label


# -- a first label, the hot path's write, in SQLAlchemy Core ------------------------------------------
# The label (INSERT ... ON CONFLICT DO NOTHING: a concurrent first label of the same image by the same
# rater inserts nothing and is found afterwards, without a savepoint's two round trips), its first
# revision and the queue item's status. PostgreSQL writes all three in one statement (data-modifying
# CTEs); SQLite, which has none, in three.
_LABELS, _REVISIONS, _ITEMS = Label.__table__, LabelRevision.__table__, QueueItem.__table__
_ANSWER_COLUMNS = (
    "decision",
    "icd10",
    "icd10_missing_text",
    "explanations",
    "grade",
    "skin_type",
    "assisted",
    "suggestion_model_id",
    "time_spent_ms",
    "submission_id",
)
_FIRST_LABEL: dict[str, Any] = {}  # dialect name -> its statements, built once


def _first_label_statements(dialect: str) -> Any:
    if dialect in _FIRST_LABEL:
        return _FIRST_LABEL[dialect]
    dialect_insert = postgresql_insert if dialect == "postgresql" else sqlite_insert

    def param(name: str, table=_LABELS):
        # bind names are prefixed: an INSERT or UPDATE would also SET any column named by a parameter
        return bindparam("v_" + name, type_=table.c[name].type)

    label_values = {
        "project_id": param("project_id"),
        "rater_id": param("rater_id"),
        "image_id": param("image_id"),
        "version": 1,
        "created_at": param("created_at"),
        "updated_at": param("created_at"),
        **{c: param(c) for c in _ANSWER_COLUMNS},
    }
    insert_label = (
        dialect_insert(_LABELS)
        .values(label_values)
        .on_conflict_do_nothing(index_elements=["rater_id", "image_id"])
        .returning(_LABELS.c.id)
    )
    revision_columns = ["label_id", "version", "author_id", "created_at", *_ANSWER_COLUMNS]
    mark_done = (
        update(_ITEMS)
        .where(_ITEMS.c.id == bindparam("v_item_id"))
        .values(status=ItemStatus.done, skip_reason=None)
    )
    if dialect == "postgresql":
        label = insert_label.cte("first_label")
        revision = insert(_REVISIONS).from_select(
            revision_columns,
            select(
                label.c.id,
                literal(1),
                param("rater_id"),
                param("created_at"),
                *(param(c) for c in _ANSWER_COLUMNS),
            ),
        )
        done = mark_done.where(exists(select(label.c.id)))
        stmts = select(label.c.id).add_cte(
            revision.cte("first_revision"), done.cte("item_done"), nest_here=True
        )
    else:
        revision = insert(_REVISIONS).values(
            {
                "label_id": bindparam("v_label_id"),
                "version": 1,
                "author_id": param("rater_id"),
                "created_at": param("created_at"),
                **{c: param(c) for c in _ANSWER_COLUMNS},
            }
        )
        stmts = (insert_label, revision, mark_done)
    _FIRST_LABEL[dialect] = stmts
    return stmts


def _insert_first_label(
    session: Session,
    rater: User,
    item: QueueItem,
    clean: CleanLabel,
    skin: int | None,
    submission_id: str | None,
    spent: int,
    shown: str | None,
) -> Label:
    """Write the rater's first label of the item's image, its revision and the item's status (Core);
    the Label returned carries what was written, its id None if another request inserted it first."""
    now = utcnow()
    values = {
        "project_id": item.project_id,
        "rater_id": rater.id,
        "image_id": item.image_id,
        "created_at": now,
        "decision": clean.decision,
        "icd10": clean.icd10,
        "icd10_missing_text": clean.icd10_missing_text,
        "explanations": list(clean.explanations),
        "grade": clean.grade,
        "skin_type": skin,
        "assisted": shown is not None,
        "suggestion_model_id": shown,
        "time_spent_ms": spent,
        "submission_id": submission_id,
    }
    conn = session.connection()
    stmts = _first_label_statements(conn.dialect.name)
    params = {"v_" + k: v for k, v in values.items()}
    if conn.dialect.name == "postgresql":
        label_id = conn.execute(stmts, {**params, "v_item_id": item.id}).scalar()
    else:
        insert_label, revision, mark_done = stmts
        label_id = conn.execute(insert_label, params).scalar()
        if label_id is not None:
            conn.execute(revision, {**params, "v_label_id": label_id})
            conn.execute(mark_done, {"v_item_id": item.id})
    session.info["wrote"] = True
    # built as a query's loader builds it (no constructor, no attribute events): nothing flushes it
    return built(Label, {**values, "id": label_id, "version": 1, "updated_at": now})


def _already_recorded(session: Session, label: Label, submission_id: str | None) -> bool:
    """The submission id is one of the label's revisions (a retry, or a duplicate sent at once)."""
    if submission_id is None:
        return False
    return (
        session.scalar(
            select(LabelRevision.id).where(
                LabelRevision.label_id == label.id, LabelRevision.submission_id == submission_id
            )
        )
        is not None
    )


def _apply(
    label: Label, clean: CleanLabel, submission_id: str | None, skin_type: int | None = None
) -> None:
    label.decision = clean.decision
    label.icd10 = clean.icd10
    label.icd10_missing_text = clean.icd10_missing_text
    label.explanations = list(clean.explanations)
    label.grade = clean.grade
    label.skin_type = skin_type
    label.submission_id = submission_id


def skip_item(
    session: Session, rater: User, item: QueueItem, *, reason: str | None = None
) -> QueueItem:
    """Put the item aside (served again after the unlabeled ones). A skip is not a label; a labeled item stays done."""
    _check_owner(rater, item)
    reason = clean_text(reason, "the reason", max_len=MAX_TEXT, field="reason")
    item = lock_item_for_rater(session, rater, item)
    if item.status is ItemStatus.done:
        return item
    item.status = ItemStatus.skipped
    item.skip_reason = reason
    record_event(
        session,
        rater,
        "item.skip",
        "queue_item",
        item.public_id,
        project_id=item.project_id,
        reason=reason,
    )
    session.flush()
    return item


def label_history(session: Session, rater: User, item: QueueItem) -> list[LabelRevision]:
    """Every version of the rater's label of the item, oldest first."""
    _check_owner(rater, item)
    label = current_label(session, rater, item)
    if label is None:
        return []
    return list(
        session.scalars(
            select(LabelRevision)
            .where(LabelRevision.label_id == label.id)
            .order_by(LabelRevision.version)
        )
    )


@dataclass(frozen=True)
class LabeledItem:
    item: QueueItem
    label: Label
    project: Project


def my_labels(session: Session, rater: User, project: Project | None = None) -> list[LabeledItem]:
    """The rater's labeled items (most recently changed first), each with its current label; none of a
    project the rater was removed from (the labels stay, for the project's leads only)."""
    stmt = (
        select(QueueItem, Label, Project)
        .join(
            Label, and_(Label.rater_id == QueueItem.rater_id, Label.image_id == QueueItem.image_id)
        )
        .join(Project, Project.id == QueueItem.project_id)
        .join(
            ProjectMember,
            and_(
                ProjectMember.project_id == QueueItem.project_id,
                ProjectMember.user_id == rater.id,
                ProjectMember.role == MemberRole.rater,
            ),
        )
        .where(QueueItem.rater_id == rater.id)
        .order_by(Label.updated_at.desc(), QueueItem.id.desc())
    )
    if project is not None:
        stmt = stmt.where(QueueItem.project_id == project.id)
    return [LabeledItem(i, lbl, p) for i, lbl, p in session.execute(stmt)]


@dataclass(frozen=True)
class QueueContext:
    position: int  # 1-based place of the item in the rater's queue
    total: int
    done: int
    previous: str | None  # public ids
    next: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "total": self.total,
            "done": self.done,
            "previous": self.previous,
            "next": self.next,
        }


def queue_context(session: Session, rater: User, item: QueueItem) -> QueueContext:
    """Where the item sits in the rater's queue, the item before it, and the one to show after it.

    "Next" follows the queue rule: the first unlabeled item after this one by position, then the unlabeled
    ones before it, skipped items last.
    """
    _check_owner(rater, item)
    mine = (QueueItem.rater_id == rater.id, QueueItem.project_id == item.project_id)
    total, done, before = session.execute(
        select(
            func.count(QueueItem.id),
            func.count(QueueItem.id).filter(QueueItem.status == ItemStatus.done),
            func.count(QueueItem.id).filter(QueueItem.position < item.position),
        ).where(*mine)
    ).one()
    previous = session.scalar(
        select(QueueItem.public_id)
        .where(*mine, QueueItem.position < item.position)
        .order_by(QueueItem.position.desc())
        .limit(1)
    )
    nxt = None
    for status in (ItemStatus.pending, ItemStatus.skipped):
        base = select(QueueItem.public_id).where(
            *mine, QueueItem.status == status, QueueItem.id != item.id
        )
        nxt = session.scalar(
            base.where(QueueItem.position > item.position).order_by(QueueItem.position).limit(1)
        ) or session.scalar(base.order_by(QueueItem.position).limit(1))
        if nxt:
            break
    return QueueContext(position=before + 1, total=total, done=done, previous=previous, next=nxt)


def lesion_diagnoses(session: Session, image_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Per image, the diagnoses given with the current lesion votes (for the leads' ties page):
    ICD-10 code and name, or the free text of "ICD-10 missing", with how many raters gave it."""
    if not image_ids:
        return {}
    rows = session.execute(
        select(Label.image_id, Label.icd10, Label.icd10_missing_text).where(
            Label.image_id.in_(image_ids), Label.decision == "lesion"
        )
    ).all()
    counts: dict[int, dict[tuple[str | None, str], int]] = {}
    for image_id, code, text in rows:
        entry = icd10.lookup(code) if code else None
        key = (code, entry.name if entry else (text or "no diagnosis given"))
        per_image = counts.setdefault(image_id, {})
        per_image[key] = per_image.get(key, 0) + 1
    return {
        image_id: [
            {"code": code, "name": name, "count": n}
            for (code, name), n in sorted(per.items(), key=lambda kv: (-kv[1], kv[0][0] or "~"))
        ]
        for image_id, per in counts.items()
    }
