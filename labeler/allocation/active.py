"""Active learning for fold items: each rater's never-shown fold items in the current model's
uncertainty order (the project setting ``queue.order = "uncertainty"``).

Blinding: golden items keep their seeded positions, and so does every item the rater has been
shown (``shown_at``), labeled or skipped; the never-shown pending fold items are dealt, most
uncertain first, into the positions those same fold items held. So the set of positions holding
golden items is exactly the allocation's random one, and nothing about where an item stands says
whether it is golden. Images without an uncertainty (no prediction) follow, in their seeded order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from ..audit.services import record_event
from ..auth.models import User
from ..labeling.models import Label
from ..projects.models import Project
from ..projects.settings import read_settings
from .models import ItemStatus, QueueItem
from .queue import lock_project_queues


def uses_uncertainty_order(project: Project) -> bool:
    """Whether the project orders fold items by the current model's uncertainty."""
    return read_settings(project.settings).queue_order == "uncertainty"


def movable_fold_items(session: Session, project: Project) -> list[Any]:
    """Rows (id, rater_id, image_id, position) of fold items never shown to their rater, pending and
    unlabeled by that rater: the only items a reorder may move."""
    labeled = exists().where(
        Label.rater_id == QueueItem.rater_id, Label.image_id == QueueItem.image_id
    )
    return list(
        session.execute(
            select(QueueItem.id, QueueItem.rater_id, QueueItem.image_id, QueueItem.position).where(
                QueueItem.project_id == project.id,
                QueueItem.is_golden.is_(False),
                QueueItem.shown_at.is_(None),
                QueueItem.status == ItemStatus.pending,
                ~labeled,
            )
        )
    )


def order_fold_items(
    session: Session,
    actor: User | None,
    project: Project,
    uncertainty: Mapping[int, float],
    *,
    model_id: str | None = None,
) -> dict[str, Any]:
    """Deal each rater's movable fold items (see ``movable_fold_items``) into their own positions,
    most uncertain first (``uncertainty``: image id -> value, larger = label sooner; ties and
    images without a value keep their seeded order). Flushes; returns counts for the caller.

    Holds the project's queue lock exclusively (as a rebalance does), so no item is shown between
    reading which items may move and moving them."""
    lock_project_queues(session, project.id, exclusive=True)
    by_rater: dict[int, list[Any]] = defaultdict(list)
    for row in movable_fold_items(session, project):
        by_rater[row.rater_id].append(row)
    updates = []
    for rows in by_rater.values():
        slots = sorted(r.position for r in rows)
        ranked = sorted(
            rows,
            key=lambda r: (
                r.image_id not in uncertainty,
                -uncertainty.get(r.image_id, 0.0),
                r.position,
            ),
        )
        updates += [
            {"id": r.id, "position": pos}
            for r, pos in zip(ranked, slots, strict=True)
            if r.position != pos
        ]
    if updates:
        session.execute(update(QueueItem), updates)  # positions are not unique: one pass
    movable = sum(len(rows) for rows in by_rater.values())
    record_event(
        session,
        actor,
        "queue.reorder",
        "project",
        project.id,
        project_id=project.id,
        order="uncertainty",
        model_id=model_id,
        movable_items=movable,
        moved_items=len(updates),
        scored_items=sum(
            1 for rows in by_rater.values() for r in rows if r.image_id in uncertainty
        ),
    )
    session.flush()
    return {"movable": movable, "moved": len(updates), "raters": len(by_rater)}
