"""queue_tallies: each rater's item and done counts per project, kept by triggers on queue_items
(migration 0012), whatever statement changes the items; the next item carries them."""

import uuid

from helpers import image_row, queue_tally_mismatches
from sqlalchemy import delete, select, text, update

from labeler.allocation.models import ItemStatus, QueueItem, QueueTally
from labeler.allocation.queue import next_item_row
from labeler.allocation.services import insert_items
from labeler.db import utcnow
from labeler.projects.models import MemberRole
from labeler.projects.services import add_member


def _items(db, project, rater, n, start=1):
    """n items of new images at the end of the rater's queue, inserted as an allocation inserts them."""
    images = [image_row(project.id) for _ in range(n)]
    db.add_all(images)
    db.flush()
    rows = [
        {
            "public_id": uuid.uuid4().hex,
            "project_id": project.id,
            "rater_id": rater.id,
            "image_id": image.id,
            "position": position,
            "is_golden": False,
            "status": ItemStatus.pending,
            "created_at": utcnow(),
        }
        for position, image in enumerate(images, start=start)
    ]
    insert_items(db, rows)
    return db.scalars(
        select(QueueItem)
        .where(QueueItem.image_id.in_([i.id for i in images]))
        .order_by(QueueItem.position)
    ).all()


def _tally(db, project, rater):
    row = db.execute(
        select(QueueTally.total, QueueTally.done).where(
            QueueTally.project_id == project.id, QueueTally.rater_id == rater.id
        )
    ).one_or_none()
    return tuple(row) if row else None


def test_every_kind_of_change_is_tallied(db, make_project, make_user):
    project, a, b = make_project(), make_user(), make_user()
    items = _items(db, project, a, 5)
    assert _tally(db, project, a) == (5, 0)
    _items(db, project, a, 2, start=6)  # a second insert adds to the tally
    assert _tally(db, project, a) == (7, 0)
    # status changes in bulk (Core), one by one (ORM) and back
    db.execute(
        update(QueueItem)
        .where(QueueItem.id.in_([items[0].id, items[1].id]))
        .values(status=ItemStatus.done)
    )
    items[2].status = ItemStatus.skipped
    db.flush()
    assert _tally(db, project, a) == (7, 2)
    db.execute(update(QueueItem).where(QueueItem.id == items[1].id).values(status="pending"))
    assert _tally(db, project, a) == (7, 1)
    # a column the tally does not count, and a status set to what it was: no change
    db.execute(update(QueueItem).where(QueueItem.id == items[0].id).values(position=99))
    db.execute(update(QueueItem).where(QueueItem.id == items[0].id).values(status="done"))
    assert _tally(db, project, a) == (7, 1)
    # items moved to another rater (one done, one not)
    db.execute(
        update(QueueItem).where(QueueItem.id.in_([items[0].id, items[3].id])).values(rater_id=b.id)
    )
    assert (_tally(db, project, a), _tally(db, project, b)) == ((5, 0), (2, 1))
    # deleted items, and a deleted image taking its item with it (the foreign key's cascade)
    db.execute(delete(QueueItem).where(QueueItem.id == items[4].id))
    db.execute(text("DELETE FROM images WHERE id = :id"), {"id": items[3].image_id})
    assert (_tally(db, project, a), _tally(db, project, b)) == ((4, 0), (1, 1))
    assert queue_tally_mismatches(db.connection()) == []


def test_the_next_item_carries_the_tally(db, make_project, make_user):
    project, rater = make_project(), make_user()
    add_member(db, None, project, rater, MemberRole.rater)
    items = _items(db, project, rater, 4)
    items[0].status = ItemStatus.done
    db.flush()
    row = next_item_row(db, rater.id, project.id)
    assert (row.public_id, row.total, row.done) == (items[1].public_id, 4, 1)


def test_the_mismatch_check_sees_a_tally_left_behind(db, make_project, make_user):
    """The check every test runs at teardown (tests/conftest.py) fails when a trigger is missing."""
    project, rater = make_project(), make_user()
    items = _items(db, project, rater, 2)
    savepoint = db.begin_nested()
    on_table = " ON queue_items" if db.get_bind().dialect.name == "postgresql" else ""
    db.execute(text("DROP TRIGGER queue_tally_update" + on_table))
    db.execute(update(QueueItem).where(QueueItem.id == items[0].id).values(status="done"))
    assert queue_tally_mismatches(db.connection()) == [
        f"project {project.id} rater {rater.id}: counted (2, 1), tallied (2, 0)"
    ]
    savepoint.rollback()  # the trigger and the item as they were
    assert queue_tally_mismatches(db.connection()) == []


def test_home_progress_and_an_items_queue_size_read_the_tallies(db, make_project, make_user):
    """The rater's home page (queue_progress) and an item's queue size (queue_total) come from the
    tallies, not from counting the queue: a tally changed behind the items shows (the conftest's
    check would fail on that, so it is put back), and a queue whose items all moved away is gone."""
    from labeler.allocation.queue import queue_progress, queue_total

    project, other, rater, b = make_project(), make_project(), make_user(), make_user()
    for p in (project, other):
        add_member(db, None, p, rater, MemberRole.rater)
    items = _items(db, project, rater, 3)
    moved = _items(db, other, rater, 2)
    items[0].status = ItemStatus.done
    db.flush()
    progress = queue_progress(db, rater)
    assert {p: (q.done, q.total) for p, q in progress.items()} == {
        project.id: (1, 3),
        other.id: (0, 2),
    }
    assert queue_total(db, items[1]) == 3
    savepoint = db.begin_nested()
    db.execute(update(QueueTally).where(QueueTally.project_id == project.id).values(total=30))
    assert queue_progress(db, rater)[project.id].total == 30 and queue_total(db, items[1]) == 30
    savepoint.rollback()
    db.execute(
        update(QueueItem).where(QueueItem.id.in_([m.id for m in moved])).values(rater_id=b.id)
    )
    assert set(queue_progress(db, rater)) == {project.id}  # its tally row stays, at 0
