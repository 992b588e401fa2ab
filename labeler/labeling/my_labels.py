"""The rater's own labels, filtered: by project, decision, flag and the day the label last changed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..auth.models import User
from ..errors import ValidationError
from ..protocols import all_decisions, answer_name, get
from .flags import is_flagged
from .models import ItemFlag, Label
from .services import LabeledItem, my_labels

DECISIONS = all_decisions()


@dataclass(frozen=True)
class MyLabelFilters:
    project_id: int | None = None
    decision: str | None = None
    flagged: bool = False
    since: date | None = None  # the label last changed on or after this day (UTC)
    until: date | None = None  # ... on or before this day

    @property
    def active(self) -> bool:
        return bool(self.project_id or self.decision or self.flagged or self.since or self.until)


@dataclass(frozen=True)
class MyLabelRow:
    item: object
    label: Label
    project: object
    flag: ItemFlag | None

    @property
    def flagged(self) -> bool:
        return is_flagged(self.flag)

    @property
    def answer(self) -> str:
        """The answer in words under the project's protocol (\"3 · Mild\", never \"Grade 3\")."""
        return answer_name(self.project.protocol, self.project.settings, self.label)


def _day(value: str | None, what: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"{what} must be a date such as 2026-11-30", status=400) from None


def parse_filters(args: Mapping[str, str]) -> MyLabelFilters:
    """The filters from a query string; a value that cannot be one gets 400 with a clear message."""
    project = args.get("project") or None
    if project is not None and not (project.isdigit() and len(project) < 10):
        raise ValidationError("choose a project from the list", status=400)
    decision = args.get("decision") or None
    if decision is not None and decision not in DECISIONS:
        raise ValidationError("choose an answer from the list", status=400)
    since, until = _day(args.get("since"), "'From'"), _day(args.get("until"), "'To'")
    if since and until and since > until:
        raise ValidationError("'From' must not be after 'To'", status=400)
    return MyLabelFilters(
        project_id=int(project) if project else None,
        decision=decision,
        flagged=args.get("flagged") in {"1", "true", "on"},
        since=since,
        until=until,
    )


def filtered_labels(
    session: Session, rater: User, filters: MyLabelFilters
) -> tuple[list[MyLabelRow], list[LabeledItem]]:
    """(the rater's labeled items that pass the filters, with their flags; all of them, for the
    filter choices)."""
    everything = my_labels(session, rater)
    flags = {
        f.image_id: f
        for f in session.scalars(select(ItemFlag).where(ItemFlag.rater_id == rater.id))
    }
    rows = []
    for row in everything:
        flag = flags.get(row.item.image_id)
        day = row.label.updated_at.date()
        if (
            (filters.project_id and row.project.id != filters.project_id)
            or (filters.decision and row.label.decision != filters.decision)
            or (filters.flagged and not is_flagged(flag))
            or (filters.since and day < filters.since)
            or (filters.until and day > filters.until)
        ):
            continue
        rows.append(MyLabelRow(row.item, row.label, row.project, flag))
    return rows, everything


def decision_choices(everything: list[LabeledItem]) -> list[tuple[str, str]]:
    """The answers the rater has given, as (value, words), in protocol order; a decision two of
    the rater's protocols share (a grade, a skin type) is named by each."""
    names: dict[str, set[str]] = {}
    for row in everything:
        decision = row.label.decision
        names.setdefault(decision, set()).add(get(row.project.protocol).decision_name(decision))
    return [(d, " / ".join(sorted(names[d]))) for d in DECISIONS if d in names]
