"""submit_label / skip_item / label_history / my_labels: versions, retries, conflicts, ownership."""

# ruff: noqa: F811  (fixtures imported from labeling_fixtures are used as arguments)
from __future__ import annotations

import pytest
from labeling_fixtures import make_item, severity_project  # noqa: F401  (fixtures)
from sqlalchemy import func, select

from labeler.allocation.models import ItemStatus
from labeler.audit.models import AuditEvent
from labeler.errors import Conflict, NotFound, ValidationError
from labeler.labeling.models import Label, LabelRevision
from labeler.labeling.services import (
    MAX_TIME_SPENT_MS,
    label_history,
    my_labels,
    queue_context,
    skip_item,
    submit_label,
)

LESION = {"decision": "lesion", "icd10": "L70.0"}
POOR = {"decision": "poor_quality", "explanations": ["blurry"]}


@pytest.fixture()
def setup(make_user, make_project, make_item):
    rater = make_user(None, "rater")
    project = make_project()
    return rater, project, make_item(rater, project)


def submit(db, rater, item, data, base=0, sid=None, ms=1000):
    return submit_label(
        db, rater, item, data, base_version=base, submission_id=sid, time_spent_ms=ms
    )


def test_first_submit_creates_the_label_and_its_first_revision(db, setup):
    rater, _project, item = setup
    label = submit(db, rater, item, LESION, sid="s1")
    assert (label.version, label.decision, label.icd10, label.time_spent_ms) == (
        1,
        "lesion",
        "L70.0",
        1000,
    )
    assert item.status is ItemStatus.done
    (rev,) = label_history(db, rater, item)
    assert (rev.version, rev.author_id, rev.decision, rev.submission_id) == (
        1,
        rater.id,
        "lesion",
        "s1",
    )
    assert rev.created_at is not None


def test_a_change_keeps_the_old_version(db, setup):
    rater, _project, item = setup
    submit(db, rater, item, LESION, sid="s1", ms=1000)
    label = submit(db, rater, item, POOR, base=1, sid="s2", ms=500)
    assert (label.version, label.decision, label.icd10, label.explanations) == (
        2,
        "poor_quality",
        None,
        ["blurry"],
    )
    assert label.time_spent_ms == 1500  # total over both visits; each revision keeps its own
    history = label_history(db, rater, item)
    assert [(r.version, r.decision, r.time_spent_ms) for r in history] == [
        (1, "lesion", 1000),
        (2, "poor_quality", 500),
    ]
    assert history[0].icd10 == "L70.0"
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "label.change"))
    assert event.actor_id == rater.id and event.details["before"]["decision"] == "lesion"
    assert db.scalar(select(func.count(Label.id))) == 1


def test_a_retried_submit_creates_no_second_revision(db, setup):
    rater, _project, item = setup
    first = submit(db, rater, item, LESION, sid="same")
    again = submit(db, rater, item, LESION, sid="same")  # the client did not see the first answer
    assert again.id == first.id and again.version == 1
    submit(db, rater, item, POOR, base=1, sid="s2")
    late = submit(
        db, rater, item, LESION, base=0, sid="same"
    )  # a very late retry of the first submit
    assert late.version == 2 and late.decision == "poor_quality"
    assert db.scalar(select(func.count(LabelRevision.id))) == 2


def test_a_stale_base_version_gets_409_with_the_current_value(db, setup):
    rater, _project, item = setup
    submit(db, rater, item, LESION, sid="tab-a")
    with pytest.raises(Conflict) as err:  # a second tab that opened the item before the first label
        submit(db, rater, item, POOR, base=0, sid="tab-b")
    assert err.value.status == 409
    assert (
        err.value.extra["current"]["decision"] == "lesion"
        and err.value.extra["current"]["version"] == 1
    )
    with pytest.raises(Conflict):
        submit(db, rater, item, POOR, base=None, sid="tab-c")
    label = submit(db, rater, item, POOR, base=1, sid="tab-b2")
    with pytest.raises(Conflict, match="now version 2"):
        submit(db, rater, item, LESION, base=1, sid="tab-a2")
    assert label.version == 2 and len(label_history(db, rater, item)) == 2


def test_an_invalid_change_loses_nothing_already_saved(db, setup):
    rater, _project, item = setup
    submit(db, rater, item, LESION, sid="s1")
    with pytest.raises(ValidationError, match="at least one explanation"):
        submit(db, rater, item, {"decision": "poor_quality"}, base=1, sid="s2")
    label = db.scalar(select(Label))
    assert (label.version, label.decision, label.icd10) == (1, "lesion", "L70.0")
    assert len(label_history(db, rater, item)) == 1


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("base", -1, "base_version"),
        ("base", "1", "base_version"),
        ("sid", 5, "submission_id"),
        ("sid", "x" * 65, "submission_id"),
        ("ms", -5, "time_spent_ms"),
        ("ms", "10", "time_spent_ms"),
        ("ms", float("nan"), "time_spent_ms"),
        ("ms", float("inf"), "time_spent_ms"),
        ("ms", -float("inf"), "time_spent_ms"),
        ("sid", "a\x00b", "submission_id"),
        ("sid", "\ud800", "submission_id"),
    ],
)
def test_bookkeeping_fields_are_checked(db, setup, field, value, message):
    rater, _project, item = setup
    kwargs = {"base": 0, "sid": "s", "ms": 10, field: value}
    with pytest.raises(ValidationError, match=message):
        submit(db, rater, item, LESION, **kwargs)


def test_time_spent_is_clipped_to_an_hour_per_submission(db, setup):
    rater, _project, item = setup
    assert MAX_TIME_SPENT_MS == 3600 * 1000
    assert submit(db, rater, item, LESION, ms=10**30).time_spent_ms == MAX_TIME_SPENT_MS


def test_time_spent_accumulates_without_overflow(db, setup):
    """The old int32 column took ~24 day-long edits; now each submission adds at most an hour."""
    rater, _project, item = setup
    for version in range(30):
        label = submit(db, rater, item, LESION, base=version, ms=2**31 - 1)
    db.expire_all()
    label = db.scalar(select(Label))
    assert label.version == 30
    assert label.time_spent_ms == 30 * MAX_TIME_SPENT_MS
    revisions = label_history(db, rater, item)
    assert {r.time_spent_ms for r in revisions} == {MAX_TIME_SPENT_MS}


def test_another_raters_item_can_neither_be_read_nor_written(db, setup, make_user):
    _rater, _project, item = setup
    other = make_user(None, "rater")
    with pytest.raises(NotFound):
        submit(db, other, item, LESION)
    with pytest.raises(NotFound):
        skip_item(db, other, item)
    with pytest.raises(NotFound):
        label_history(db, other, item)
    assert db.scalar(select(func.count(Label.id))) == 0


def test_skip_is_not_a_label_and_keeps_an_optional_reason(db, setup):
    rater, _project, item = setup
    skip_item(db, rater, item, reason="  need   dermoscopy ")
    assert item.status is ItemStatus.skipped and item.skip_reason == "need dermoscopy"
    assert db.scalar(select(func.count(Label.id))) == 0
    assert (
        db.scalar(select(AuditEvent).where(AuditEvent.action == "item.skip")).details["reason"]
        == "need dermoscopy"
    )
    skip_item(db, rater, item)
    assert item.skip_reason is None
    submit(db, rater, item, LESION)  # coming back to it later
    assert item.status is ItemStatus.done and item.skip_reason is None
    skip_item(db, rater, item, reason="later")  # a labeled item stays labeled
    assert item.status is ItemStatus.done


def test_skip_reason_is_checked(db, setup):
    rater, _project, item = setup
    with pytest.raises(ValidationError, match="too long"):
        skip_item(db, rater, item, reason="x" * 501)
    with pytest.raises(ValidationError, match="must be text"):
        skip_item(db, rater, item, reason=5)
    for bad in ("wait\x00", "\ud800", "bell\x07"):
        with pytest.raises(ValidationError, match="not allowed|not valid Unicode"):
            skip_item(db, rater, item, reason=bad)
    assert item.status is ItemStatus.pending and item.skip_reason is None


def test_severity_labels(db, make_user, make_item, severity_project):
    rater = make_user(None, "rater")
    item = make_item(rater, severity_project)
    label = submit(db, rater, item, {"grade": 4})
    assert (label.decision, label.grade) == ("graded", 4.0)
    label = submit(
        db, rater, item, {"decision": "cannot_assess", "explanations": ["bad_light"]}, base=1
    )
    assert (label.decision, label.grade, label.explanations) == (
        "cannot_assess",
        None,
        ["bad_light"],
    )
    with pytest.raises(ValidationError, match="off the scale"):
        submit(db, rater, item, {"grade": 7}, base=2)


def test_my_labels_lists_only_the_raters_own_labeled_items(db, make_user, make_project, make_item):
    rater, other = make_user(None, "rater"), make_user(None, "rater")
    project = make_project()
    items = [make_item(rater, project) for _ in range(3)]
    theirs = make_item(other, project, image=None)
    submit(db, rater, items[0], LESION)
    submit(db, rater, items[2], POOR)
    submit(db, other, theirs, LESION)
    rows = my_labels(db, rater)
    assert {r.item.public_id for r in rows} == {items[0].public_id, items[2].public_id}
    assert all(r.label.rater_id == rater.id and r.project.id == project.id for r in rows)
    assert my_labels(db, rater, make_project()) == []


def test_queue_context_positions_previous_and_next(db, make_user, make_project, make_item):
    rater = make_user(None, "rater")
    project = make_project()
    a, b, c, d = (make_item(rater, project) for _ in range(4))
    ctx = queue_context(db, rater, b)
    assert (ctx.position, ctx.total, ctx.done, ctx.previous, ctx.next) == (
        2,
        4,
        0,
        a.public_id,
        c.public_id,
    )
    skip_item(db, rater, c)
    assert queue_context(db, rater, b).next == d.public_id
    submit(db, rater, d, LESION)
    ctx = queue_context(db, rater, b)
    assert ctx.next == a.public_id and ctx.done == 1  # wraps to unlabeled earlier items
    submit(db, rater, a, LESION)
    assert queue_context(db, rater, b).next == c.public_id  # skipped ones last
    assert queue_context(db, rater, a).previous is None
    submit(db, rater, b, LESION)
    submit(db, rater, c, LESION)
    assert queue_context(db, rater, c).next is None
