"""allocate / add_rater / remove_rater / summary / queue services on the database (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from sqlalchemy import select

from labeler.allocation import services
from labeler.allocation.models import Allocation, GoldenImage, ItemStatus, QueueItem
from labeler.allocation.queue import next_item, queue_progress
from labeler.audit.models import AuditEvent
from labeler.errors import Conflict, NotFound, ValidationError
from labeler.labeling.models import Label
from labeler.projects.models import MemberRole


def items_of(db, project):
    return list(
        db.scalars(
            select(QueueItem)
            .where(QueueItem.project_id == project.id)
            .order_by(QueueItem.rater_id, QueueItem.position)
        )
    )


def mapping(db, project):
    return sorted((i.rater_id, i.image_id, i.position, i.is_golden) for i in items_of(db, project))


def check_rules(db, project, overlap, raters=None):
    """r distinct raters per non-golden image, loads within 1, golden for all, dense 1..n positions."""
    items = items_of(db, project)
    golden = set(
        db.scalars(select(GoldenImage.image_id).where(GoldenImage.project_id == project.id))
    )
    by_rater = defaultdict(list)
    holders = defaultdict(list)
    for it in items:
        by_rater[it.rater_id].append(it)
        if not it.is_golden:
            holders[it.image_id].append(it.rater_id)
        assert it.is_golden == (it.image_id in golden)
    active = raters or list(by_rater)
    for rid in active:
        assert [it.position for it in by_rater[rid]] == list(range(1, len(by_rater[rid]) + 1))
        assert {it.image_id for it in by_rater[rid] if it.is_golden} == golden
    assert all(len(set(h)) == len(h) == overlap for h in holders.values())
    loads = [sum(1 for it in by_rater[rid] if not it.is_golden) for rid in active]
    assert max(loads) - min(loads) <= 1
    return by_rater, holders


def test_allocate_writes_queues_memberships_and_audit(db, team, make_images):
    images = make_images(team.project, 60)
    raters = team.raters(4)
    alloc = services.allocate(
        db, team.lead, team.project, [r.email for r in raters], golden_size=8, overlap=2, seed=11
    )
    assert isinstance(alloc, Allocation) and alloc.seed == 11 and alloc.golden_size == 8
    by_rater, holders = check_rules(db, team.project, 2)
    assert set(holders) | set(db.scalars(select(GoldenImage.image_id))) >= {im.id for im in images}
    assert {r.id for r in raters} == team.project.member_ids(MemberRole.rater)
    assert all(
        len(items) == 8 + 26 for items in by_rater.values()
    )  # 52 * 2 / 4 = 26 fold items each
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "allocation.create"))
    assert (
        event.actor_id == team.lead.id
        and event.details["seed"] == 11
        and event.details["items"] == 4 * 34
    )


def test_public_ids_are_opaque_and_unique(db, team, make_images):
    images = make_images(team.project, 30)
    services.allocate(db, team.lead, team.project, team.raters(3), golden_size=5, overlap=3, seed=1)
    items = items_of(db, team.project)
    ids = [it.public_id for it in items]
    assert len(set(ids)) == len(ids) and all(len(p) >= 20 for p in ids)
    by_image = {im.id: im for im in images}
    for it in items:
        im = by_image[it.image_id]
        for leak in (str(im.id), im.sha256[:8], im.filename.split(".")[0]):
            assert leak not in it.public_id or len(leak) <= 2
    # the same image gets unrelated ids for different raters
    per_image = defaultdict(set)
    for it in items:
        per_image[it.image_id].add(it.public_id)
    assert all(len(v) == 3 for v in per_image.values())


def test_second_allocation_is_a_conflict(db, team, make_images):
    make_images(team.project, 10)
    raters = team.raters(2)
    services.allocate(db, team.lead, team.project, raters, golden_size=2, seed=1)
    with pytest.raises(Conflict):
        services.allocate(db, team.lead, team.project, raters, golden_size=2, seed=1)


def test_inputs_are_validated(db, team, make_images, make_user):
    make_images(team.project, 10)
    lead_only = make_user(None, "lead")
    with pytest.raises(ValidationError, match="no account"):
        services.allocate(db, team.lead, team.project, ["nobody@example.org"], seed=1)
    with pytest.raises(ValidationError, match="not active raters"):
        services.allocate(db, team.lead, team.project, [lead_only.email], seed=1)
    with pytest.raises(ValidationError, match="seed"):
        services.allocate(db, team.lead, team.project, team.raters(1), seed=-3)
    with pytest.raises(ValidationError, match="overlap"):
        services.allocate(db, team.lead, team.project, team.raters(2), overlap=3, seed=1)
    assert db.scalar(select(Allocation).where(Allocation.project_id == team.project.id)) is None


def test_same_inputs_and_seed_give_the_same_allocation(db, team, make_images):
    make_images(team.project, 40, cases={"p1": 3, "p2": 2})
    raters = team.raters(3)
    sp = db.begin_nested()
    services.allocate(db, team.lead, team.project, raters, golden_size=6, overlap=2, seed=99)
    first = mapping(db, team.project)
    public_first = {it.public_id for it in items_of(db, team.project)}
    sp.rollback()
    db.expire_all()
    assert items_of(db, team.project) == []
    services.allocate(
        db, team.lead, team.project, list(reversed(raters)), golden_size=6, overlap=2, seed=99
    )
    assert mapping(db, team.project) == first
    assert not public_first & {
        it.public_id for it in items_of(db, team.project)
    }  # ids are fresh each time


def test_case_rule_in_the_database(db, team, make_images):
    make_images(team.project, 30, cases={f"c{i}": 2 + i % 3 for i in range(8)})
    services.allocate(
        db, team.lead, team.project, team.raters(3), golden_size=10, overlap=1, seed=5
    )
    items = items_of(db, team.project)
    from labeler.images.models import Image

    case_of = dict(
        db.execute(select(Image.id, Image.case_id).where(Image.project_id == team.project.id)).all()
    )
    raters_of_case = defaultdict(set)
    golden_of_case = defaultdict(set)
    for it in items:
        c = case_of[it.image_id]
        if c:
            golden_of_case[c].add(it.is_golden)
            if not it.is_golden:
                raters_of_case[c].add(it.rater_id)
    assert all(len(v) == 1 for v in golden_of_case.values())  # no case straddles golden and folds
    assert all(len(v) == 1 for v in raters_of_case.values())  # r = 1: one rater per case


def label(db, item):
    db.add(
        Label(
            project_id=item.project_id,
            rater_id=item.rater_id,
            image_id=item.image_id,
            decision="lesion",
        )
    )
    item.status = ItemStatus.done
    db.flush()


def test_add_rater_moves_only_unlabeled_fold_work(db, team, make_images):
    make_images(team.project, 90)
    raters = team.raters(3)
    services.allocate(db, team.lead, team.project, raters, golden_size=6, overlap=1, seed=3)
    # each rater labels their first 20 items
    labeled = set()
    for r in raters:
        for it in items_of(db, team.project):
            if it.rater_id == r.id and it.position <= 20:
                label(db, it)
                labeled.add((it.rater_id, it.image_id))
    labels_before = sorted(db.execute(select(Label.id, Label.rater_id, Label.image_id)).all())
    newcomer = team.raters(1)[0]
    result = services.add_rater(db, team.admin, team.project, newcomer.email)
    assert sum(result["moved"].values()) == result["fold"] == 21  # 84 fold items over 4 raters
    by_rater, _holders = check_rules(db, team.project, 1)
    assert (
        sorted(db.execute(select(Label.id, Label.rater_id, Label.image_id)).all()) == labels_before
    )
    for rater_id, image_id in labeled:  # labeled items stayed with their rater, still done
        it = db.scalar(
            select(QueueItem).where(QueueItem.rater_id == rater_id, QueueItem.image_id == image_id)
        )
        assert it is not None and it.status is ItemStatus.done
    assert all(it.status is not ItemStatus.done for it in by_rater[newcomer.id])
    assert newcomer.id in team.project.member_ids(MemberRole.rater)
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "allocation.rater_add"))
    assert event.actor_id == team.admin.id and event.details["user_id"] == newcomer.id
    with pytest.raises(Conflict):
        services.add_rater(db, team.admin, team.project, newcomer)


def test_remove_rater_keeps_labels_and_rebalances(db, team, make_images):
    make_images(team.project, 80)
    raters = team.raters(4)
    services.allocate(db, team.lead, team.project, raters, golden_size=8, overlap=2, seed=8)
    leaving = raters[0]
    mine = [it for it in items_of(db, team.project) if it.rater_id == leaving.id]
    for it in mine[:10]:
        label(db, it)
    kept_ids = {it.id for it in mine[:10]}
    labels_before = sorted(db.execute(select(Label.id, Label.rater_id, Label.image_id)).all())
    result = services.remove_rater(db, team.lead, team.project, leaving)
    assert result["kept_labeled"] == 10
    assert (
        sorted(db.execute(select(Label.id, Label.rater_id, Label.image_id)).all()) == labels_before
    )
    left = [it for it in items_of(db, team.project) if it.rater_id == leaving.id]
    assert {it.id for it in left} == kept_ids and all(it.status is ItemStatus.done for it in left)
    assert leaving.id not in team.project.member_ids(MemberRole.rater)
    stay = [r.id for r in raters[1:]]
    # every non-golden image still has exactly 2 raters, counting the leaver's labeled items
    holders = defaultdict(set)
    for it in items_of(db, team.project):
        if not it.is_golden:
            holders[it.image_id].add(it.rater_id)
    assert all(len(h) == 2 for h in holders.values())
    loads = Counter(
        it.rater_id for it in items_of(db, team.project) if not it.is_golden and it.rater_id in stay
    )
    assert max(loads.values()) - min(loads.values()) <= 1
    assert (
        db.scalar(select(AuditEvent).where(AuditEvent.action == "allocation.rater_remove"))
        is not None
    )
    assert next_item(db, leaving, team.project) is None
    with pytest.raises(NotFound):
        services.remove_rater(db, team.lead, team.project, leaving)


def test_remove_refuses_when_overlap_cannot_be_kept(db, team, make_images):
    make_images(team.project, 10)
    raters = team.raters(2)
    services.allocate(db, team.lead, team.project, raters, overlap=2, seed=1)
    with pytest.raises(ValidationError, match="overlap"):
        services.remove_rater(db, team.lead, team.project, raters[0])


def test_add_then_remove_returns_to_balanced_loads(db, team, make_images):
    make_images(team.project, 50, cases={"a": 3, "b": 2})
    raters = team.raters(3)
    services.allocate(db, team.lead, team.project, raters, golden_size=5, overlap=1, seed=4)
    extra = team.raters(1)[0]
    services.add_rater(db, team.lead, team.project, extra)
    check_rules(db, team.project, 1)
    services.remove_rater(db, team.lead, team.project, raters[1])
    check_rules(db, team.project, 1)
    assert (
        db.scalar(select(Allocation.version).where(Allocation.project_id == team.project.id)) == 3
    )


def test_next_item_skips_until_the_rest_are_done(db, team, make_images):
    make_images(team.project, 6)
    (rater,) = team.raters(1)
    services.allocate(db, team.lead, team.project, [rater], golden_size=1, seed=2)
    items = sorted(items_of(db, team.project), key=lambda i: i.position)
    assert next_item(db, rater, team.project).id == items[0].id
    items[0].status = ItemStatus.skipped
    items[1].status = ItemStatus.skipped
    db.flush()
    assert next_item(db, rater, team.project).id == items[2].id
    for it in items[2:]:
        it.status = ItemStatus.done
    db.flush()
    assert next_item(db, rater, team.project).id == items[0].id  # skipped ones come back, in order
    items[0].status = items[1].status = ItemStatus.done
    db.flush()
    assert next_item(db, rater, team.project) is None
    progress = queue_progress(db, rater)[team.project.id]
    assert (progress.done, progress.total, progress.next_public_id) == (6, 6, None)


def test_item_of_another_rater_is_not_found(db, team, make_images):
    make_images(team.project, 6)
    a, b = team.raters(2)
    services.allocate(db, team.lead, team.project, [a, b], golden_size=2, seed=2)
    theirs = next(it for it in items_of(db, team.project) if it.rater_id == b.id)
    assert services.get_item_for_rater(db, b, theirs.public_id).id == theirs.id
    for bad in (theirs.public_id, "nope", "", "x" * 200):
        with pytest.raises(NotFound):
            services.get_item_for_rater(db, a, bad)


def test_summary_and_preview(db, team, make_images):
    make_images(team.project, 40)
    raters = team.raters(4)
    empty = services.summary(db, team.project)
    assert empty["allocated"] is False and empty["images"] == 40
    preview = services.preview_allocation(
        db, team.project, raters, golden_size=4, overlap=1, seed=6
    )
    assert db.scalar(select(QueueItem.id).where(QueueItem.project_id == team.project.id)) is None
    services.allocate(db, team.lead, team.project, raters, golden_size=4, overlap=1, seed=6)
    s = services.summary(db, team.project)
    assert s["allocated"] and s["golden"] == 4 and s["golden_share"] == 0.1
    assert s["fold_sizes"] == {"min": 9, "max": 9} and s["items_per_rater"] == {
        "min": 13,
        "max": 13,
    }
    assert s["progress"] == {"done": 0, "total": 52, "fraction": 0.0}

    # the preview predicted exactly what was written
    def strip(d):
        return {k: v for k, v in d.items() if k not in {"allocated", "version"}}

    assert strip(preview) == strip(s)
