"""Labeling a case: what the rater sees of it (JSON), and one submission that answers it.

Per case (``cases.unit`` "case"): one answer, written as one label per photo of the case in one
transaction, each with the same answer and the same submission id, so fusion, agreement and
exports read a case as one unit (labeler/cases/grouping.py) while each photo still has its label,
its versions and its revisions. Per image: each photo its own answer, all sent and saved together.
Services take the session and an explicit rater, flush and never commit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..allocation.models import ItemStatus, QueueItem
from ..allocation.queue import item_and_project, lock_project_queues
from ..auth.models import User
from ..errors import Conflict, NotFound, ValidationError
from ..images.models import Image
from ..labeling.models import Label
from ..labeling.services import label_dict, skip_item, submit_label
from ..projects.models import Project
from .queue import case_for_rater, case_of, case_progress, following_case
from .units import per_case, shown_columns

Rows = list[tuple[QueueItem, Image]]
# the answer's fields, with the optional skin-type second question (protocols/skin_type_question.py)
LABEL_FIELDS = ("decision", "icd10", "icd10_missing_text", "explanations", "grade", "skin_type")
MAX_PHOTOS_KEYED = 9  # photos 1-9 have a key on the case page; a larger case still shows them all


def labels_of(session: Session, rater: User, rows: Rows) -> dict[int, Label]:
    """The rater's current labels of the case's photos, by image id (one query)."""
    ids = [i.image_id for i, _img in rows]
    return {
        label.image_id: label
        for label in session.scalars(
            select(Label).where(Label.rater_id == rater.id, Label.image_id.in_(ids))
        )
    }


def case_status(rows: Rows) -> str:
    """done: every photo labeled; skipped: the rest put aside; else pending."""
    statuses = {i.status for i, _img in rows}
    if statuses == {ItemStatus.done}:
        return "done"
    if ItemStatus.pending not in statuses:
        return "skipped"
    return "pending"


# keys the app itself writes into an image's meta (not manifest columns): the prescreen model's
# verdict (training/prescreen.py) and the capture mark (capture/services.py); never shown to raters
APP_META_KEYS = frozenset({"prescreen", "captured"})


def _details(image: Image, columns: list[str]) -> list[dict[str, str]]:
    """The manifest columns the lead chose to show, in their order; a column the image lacks is left
    out, as is anything that is not a manifest cell (the app's own keys, nested values)."""
    meta = image.meta or {}
    out = []
    for name in columns:
        if name in APP_META_KEYS:
            continue
        value = image.fitzpatrick if name == "fitzpatrick" else meta.get(name)
        if isinstance(value, (bool, dict, list)):
            continue
        if value is not None and value != "":
            out.append({"name": name.replace("_", " "), "value": str(value)})
    return out


def case_json(
    session: Session,
    rater: User,
    project: Project,
    rows: Rows,
    image_url: Callable[[str], str],
    *,
    with_next: bool = True,
) -> dict[str, Any]:
    """What the rater learns about a case: identical keys and queries for golden and fold cases.
    ``with_next``: also the id of the case to show after it (a save's answer leaves it out)."""
    unit = "case" if per_case(project.protocol, project.settings) else "image"
    columns = shown_columns(project.settings)
    photos = []
    labels = []
    saved = labels_of(session, rater, rows)
    for item, image in rows:
        label = saved.get(item.image_id)
        labels.append(label)
        photos.append(
            {
                "item": item.public_id,
                "status": item.status.value,
                "image_url": image_url(item.public_id),
                "body_site": image.body_site,
                "details": _details(image, columns),
                "label": label_dict(label),
            }
        )
    shared = None
    if unit == "case":
        given = [lbl for lbl in labels if lbl is not None]
        if given:  # the rows of one per-case answer move together; the newest speaks for the case
            shared = label_dict(max(given, key=lambda lbl: (lbl.version, lbl.updated_at)))
    out = {
        "case": rows[0][0].public_id,
        "unit": unit,
        "status": case_status(rows),
        "photos": photos,
        "label": shared,
        "progress": case_progress(session, rater, project.id),
    }
    if with_next:
        out["next"] = following_case(session, rater, rows)
    return out


def _answer_fields(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise ValidationError(f"{what} must be an object with the answer's fields", field=what)
    return {k: data.get(k) for k in LABEL_FIELDS}


def _base_version(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(
            f"'{field}' must be the label version you started from (0 for a new label)",
            field=field,
        )
    return value


def _seen_items(items: Any) -> list[str]:
    if (
        not isinstance(items, list)
        or not 1 <= len(items) <= 100
        or not all(isinstance(i, str) and 0 < len(i) <= 32 for i in items)
    ):
        raise ValidationError(
            "'items' must list the ids of the case's photos you answered (as the case gave them)",
            field="items",
        )
    return items


def submit_case(
    session: Session, rater: User, public_id: str, body: Mapping[str, Any]
) -> tuple[Project, Rows]:
    """Answer a case in one transaction: per case ({answer, base_version}) or per image ({answers:
    {item id: {answer fields..., base_version}}}), as the project's unit says.

    ``items`` must name the photos the rater saw; if the case changed meanwhile (a photo moved away
    or joined) nothing is saved and the answer is 409. Retries with the same ``submission_id`` are
    recognised photo by photo (labeling.services.submit_label) and change nothing.
    """
    seen = _seen_items(body.get("items"))
    item, project = item_and_project(session, rater, public_id)
    unit_case = per_case(project.protocol, project.settings)
    if unit_case and "answers" in body:
        raise ValidationError(
            "this project answers once per case: send 'answer', not 'answers'", field="answers"
        )
    if not unit_case and "answer" in body:
        raise ValidationError(
            "this project answers each photo on its own: send 'answers' (one per photo id)",
            field="answer",
        )
    # under the project's queue lock (shared): no rebalance moves a photo until this commits
    lock_project_queues(session, project.id)
    rows = case_of(session, rater, item, fresh=True)
    if not rows:
        raise NotFound(
            "this case is no longer in your queue (the project's allocation changed); nothing "
            "was saved",
            code="item_moved",
        )
    current = [i.public_id for i, _img in rows]
    if sorted(current) != sorted(set(seen)) or len(seen) != len(current):
        raise Conflict(
            "the photos of this case changed since you opened it (the project's allocation "
            "changed); nothing was saved: reload the case and answer again",
            code="case_changed",
        )
    spent = body.get("time_spent_ms")
    common = {"submission_id": body.get("submission_id"), "project": project, "as_case": True}
    if unit_case:
        answer = _answer_fields(body.get("answer"), "answer")
        base = _base_version(body.get("base_version"), "base_version")
        saved = labels_of(session, rater, rows)
        versions = {i.id: saved.get(i.image_id) for i, _img in rows}
        case_version = max((lbl.version for lbl in versions.values() if lbl), default=0)
        if (base or 0) != case_version and not _is_retry(versions, common["submission_id"]):
            raise Conflict(
                f"this case's label was changed meanwhile (now version {case_version}, you "
                f"started from {base or 'no label'}); review the saved answer and submit again",
                current=label_dict(
                    max((v for v in versions.values() if v), key=lambda v: v.version)
                )
                if case_version
                else None,
            )
        shares = _split_time(spent, len(rows))
        for (item, _img), share in zip(rows, shares, strict=True):
            label = versions[item.id]
            submit_label(
                session,
                rater,
                item,
                answer,
                base_version=label.version if label else 0,
                time_spent_ms=share,
                **common,
            )
        return project, rows
    answers = body.get("answers")
    if not isinstance(answers, Mapping) or not answers:
        raise ValidationError("'answers' must map each photo's id to its answer", field="answers")
    unknown = sorted(set(answers) - set(current))
    if unknown:
        raise ValidationError(
            f"'answers' names a photo that is not in this case: {unknown[0][:32]!r}",
            field="answers",
        )
    missing = [
        i.public_id
        for i, _img in rows
        if i.status is not ItemStatus.done and i.public_id not in answers
    ]
    if missing:
        raise ValidationError(
            f"photo {current.index(missing[0]) + 1} of the case has no answer yet; answer every "
            "photo before saving the case",
            field="answers",
        )
    shares = _split_time(spent, len(answers))
    answered = [(i, img) for i, img in rows if i.public_id in answers]
    for (item, _img), share in zip(answered, shares, strict=True):
        data = answers[item.public_id]
        number = current.index(item.public_id) + 1
        fields = _answer_fields(data, f"answers.{number}")
        try:
            submit_label(
                session,
                rater,
                item,
                fields,
                base_version=_base_version(data.get("base_version"), "base_version"),
                time_spent_ms=share,
                **common,
            )
        except (ValidationError, Conflict) as exc:  # say which photo's answer was refused
            exc.message = f"Photo {number} of the case: {exc.message}"
            exc.args = (exc.message,)
            raise
    return project, rows


def _is_retry(labels: Mapping[int, Any], submission_id: Any) -> bool:
    """Every photo's current label was written by this very submission (a retried request)."""
    return (
        submission_id is not None
        and bool(labels)
        and all(lbl is not None and lbl.submission_id == submission_id for lbl in labels.values())
    )


def _split_time(spent: Any, n: int) -> list[Any]:
    """The submission's time spread over its photos (the totals stay the time the rater spent)."""
    if (
        isinstance(spent, bool)
        or not isinstance(spent, (int, float))
        or not math.isfinite(spent)
        or spent < 0
        or n == 0
    ):
        return [spent] * n  # submit_label refuses what is not a time, in words
    whole = int(spent)
    return [whole // n + (1 if k < whole % n else 0) for k in range(n)]


def skip_case(session: Session, rater: User, public_id: str, *, reason: Any = None) -> Rows:
    """Put the case's unlabeled photos aside together (served again after the unlabeled cases)."""
    item, _project = item_and_project(session, rater, public_id)
    lock_project_queues(session, item.project_id)
    rows = case_for_rater(session, rater, public_id, fresh=True)
    for item, _img in rows:
        skip_item(session, rater, item, reason=reason)
    return rows
