"""Raters' "unsure" flags and notes to the project's leads, and the leads' answers.

A flag belongs to one rater and one image, like a label. Only that rater and the project's leads
read it: no other rater ever sees a flag, a note or an answer (ratings stay independent). Nothing
here looks at whether an item is golden, so flags behave the same on golden and fold items.
Services take the session and an explicit actor, flush and never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from ..allocation.models import QueueItem
from ..allocation.queue import lock_item_for_rater
from ..audit.services import record_event
from ..auth.models import User
from ..db import utcnow
from ..errors import NotFound, ValidationError
from ..images.models import Image
from ..projects.models import Project
from ..validation import clean_text
from .models import ItemFlag, Label

MAX_COMMENT = 1_000
FLAG_STATUSES = ("open", "answered", "all")


def flag_of(session: Session, rater: User, item: QueueItem) -> ItemFlag | None:
    return session.scalar(
        select(ItemFlag).where(ItemFlag.rater_id == rater.id, ItemFlag.image_id == item.image_id)
    )


def is_flagged(flag: ItemFlag | None) -> bool:
    return bool(flag and (flag.unsure or flag.comment))


def flag_dict(flag: ItemFlag | None) -> dict[str, Any]:
    """The rater's view of their flag on an item (the answer without who wrote it)."""
    if flag is None:
        return {"unsure": False, "comment": None, "answer": None, "answered_at": None}
    return {
        "unsure": flag.unsure,
        "comment": flag.comment,
        "answer": flag.answer,
        "answered_at": flag.answered_at.isoformat() if flag.answered_at else None,
    }


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(f"{what} must be true or false", field="unsure")
    return value


def set_flag(
    session: Session, rater: User, item: QueueItem, *, unsure: Any, comment: Any
) -> ItemFlag:
    """Mark the rater's item unsure or not, with an optional note for the leads (audited).

    A changed mark or note is a new question: the flag is open again (the earlier answer stays shown
    until a lead answers again).
    """
    if item.rater_id != rater.id:
        raise NotFound("no such item in your queue")
    unsure = _bool(unsure, "'unsure'")
    comment = clean_text(
        comment, "the note to the lead", max_len=MAX_COMMENT, collapse=False, field="comment"
    )
    item = lock_item_for_rater(session, rater, item)
    flag = session.scalar(
        select(ItemFlag)
        .where(ItemFlag.rater_id == rater.id, ItemFlag.image_id == item.image_id)
        .with_for_update()
    )
    before = {"unsure": flag.unsure, "comment": flag.comment} if flag else None
    if flag is None:
        if not unsure and not comment:
            return ItemFlag(unsure=False, comment=None)  # nothing to record
        flag = ItemFlag(
            project_id=item.project_id, rater_id=rater.id, image_id=item.image_id, unsure=False
        )
        session.add(flag)
    elif before == {"unsure": unsure, "comment": comment}:
        return flag
    flag.unsure = unsure
    flag.comment = comment
    flag.updated_at = utcnow()
    session.flush()
    record_event(
        session,
        rater,
        "flag.set",
        "item_flag",
        flag.id,
        project_id=item.project_id,
        item=item.public_id,
        before=before,
        after={"unsure": unsure, "comment": comment},
    )
    session.flush()
    return flag


def answer_flag(
    session: Session, lead: User, project: Project, flag_id: int, answer: Any
) -> ItemFlag:
    """A lead's answer to a rater's flag (the rater sees it on that item; audited)."""
    flag = session.get(ItemFlag, flag_id, with_for_update=True)
    if flag is None or flag.project_id != project.id:
        raise NotFound("no such flag in this project")
    text = clean_text(
        answer, "the answer", max_len=MAX_COMMENT, required=True, collapse=False, field="answer"
    )
    before = flag.answer
    flag.answer = text
    flag.answered_by_id = lead.id
    flag.answered_at = utcnow()
    session.flush()
    record_event(
        session,
        lead,
        "flag.answer",
        "item_flag",
        flag.id,
        project_id=project.id,
        rater_id=flag.rater_id,
        image_id=flag.image_id,
        before=before,
        after=text,
    )
    session.flush()
    return flag


@dataclass(frozen=True)
class FlagRow:
    flag: ItemFlag
    rater: User
    image: Image
    label: Label | None


def project_flags(session: Session, project: Project, status: str = "open") -> list[FlagRow]:
    """The project's flagged images (unsure or with a note), each with the rater and their label.

    status: "open" (not answered since the rater last changed it), "answered", or "all". Newest first.
    """
    if status not in FLAG_STATUSES:
        raise ValidationError(f"status must be one of {', '.join(FLAG_STATUSES)}", field="status")
    stmt = (
        select(ItemFlag, User, Image, Label)
        .join(User, User.id == ItemFlag.rater_id)
        .join(Image, Image.id == ItemFlag.image_id)
        .outerjoin(
            Label, and_(Label.rater_id == ItemFlag.rater_id, Label.image_id == ItemFlag.image_id)
        )
        .where(
            ItemFlag.project_id == project.id,
            or_(ItemFlag.unsure.is_(True), ItemFlag.comment.is_not(None)),
        )
        .order_by(ItemFlag.updated_at.desc(), ItemFlag.id.desc())
    )
    answered = and_(ItemFlag.answer.is_not(None), ItemFlag.answered_at >= ItemFlag.updated_at)
    if status == "open":
        stmt = stmt.where(~answered)
    elif status == "answered":
        stmt = stmt.where(answered)
    return [FlagRow(f, u, i, lbl) for f, u, i, lbl in session.execute(stmt)]


def open_flag_count(session: Session, project: Project) -> int:
    """How many of the project's flags wait for a lead's answer (the project page says so)."""
    flagged = or_(ItemFlag.unsure.is_(True), ItemFlag.comment.is_not(None))
    answered = and_(ItemFlag.answer.is_not(None), ItemFlag.answered_at >= ItemFlag.updated_at)
    return (
        session.scalar(
            select(func.count(ItemFlag.id)).where(
                ItemFlag.project_id == project.id, flagged, ~answered
            )
        )
        or 0
    )


def unsure_by_rater_image(session: Session, project: Project) -> set[tuple[int, int]]:
    """(rater_id, image_id) of every current "unsure" mark in the project (for exports)."""
    rows = session.execute(
        select(ItemFlag.rater_id, ItemFlag.image_id).where(
            ItemFlag.project_id == project.id, ItemFlag.unsure.is_(True)
        )
    )
    return {(rater_id, image_id) for rater_id, image_id in rows}


def flagged_image_ids(session: Session, project: Project) -> set[int]:
    """Images of the project that some rater marked unsure or left a note on (dashboard filters)."""
    return set(
        session.scalars(
            select(ItemFlag.image_id).where(
                ItemFlag.project_id == project.id,
                or_(ItemFlag.unsure.is_(True), ItemFlag.comment.is_not(None)),
            )
        )
    )
