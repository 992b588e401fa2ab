"""Active learning: fold items in the model's uncertainty order; golden, shown and labeled items stay.

The blinding tests of test_allocation_blinding.py run here a second time with active learning on:
their ``allocated`` fixture is replaced by one whose queues were re-ordered by uncertainty.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict

import pytest
from sqlalchemy import select
from test_allocation_blinding import (  # noqa: F401 (collected again, with this module's fixture)
    test_counts_do_not_tell_golden_apart,
    test_golden_and_fold_items_are_indistinguishable,
    test_golden_images_have_unrelated_addresses_for_each_rater,
    test_next_item_json_is_the_same_for_golden_and_fold,
)

from labeler.allocation import services
from labeler.allocation.active import order_fold_items, uses_uncertainty_order
from labeler.allocation.models import ItemStatus, QueueItem
from labeler.audit.models import AuditEvent
from labeler.db import utcnow
from labeler.errors import ValidationError
from labeler.projects.settings import merge_settings, read_settings


def _uncertainty(image_ids, seed: int) -> dict[int, float]:
    rng = random.Random(seed)
    return {i: rng.random() for i in image_ids}


def _queues(db, project) -> dict[int, list[QueueItem]]:
    out = defaultdict(list)
    for it in db.scalars(
        select(QueueItem).where(QueueItem.project_id == project.id).order_by(QueueItem.position)
    ):
        out[it.rater_id].append(it)
    return out


def _use_uncertainty(db, project) -> None:
    project.settings = merge_settings(
        project.protocol, project.settings or {}, {"queue": {"order": "uncertainty"}}
    )
    db.flush()


@pytest.fixture()
def allocated(db, team, make_images):
    """The blinding tests' allocation, re-ordered by a model's (random) uncertainty."""
    images = make_images(team.project, 30, store=True)
    raters = team.raters(3)
    services.allocate(db, team.lead, team.project, raters, golden_size=6, overlap=2, seed=31)
    _use_uncertainty(db, team.project)
    result = order_fold_items(db, None, team.project, _uncertainty([im.id for im in images], 5))
    assert result["moved"] > 0  # the order really changed
    db.commit()
    return team, raters, {im.id: im for im in images}


def test_fold_items_take_their_own_positions_in_uncertainty_order(db, team, make_images):
    images = make_images(team.project, 60)
    raters = team.raters(3)
    services.allocate(db, team.lead, team.project, raters, golden_size=9, overlap=1, seed=7)
    before = _queues(db, team.project)
    rater = raters[0]
    mine = before[rater.id]
    folds = [it for it in mine if not it.is_golden]
    shown, labeled = folds[3], folds[5]
    shown.shown_at = utcnow()
    labeled.shown_at, labeled.status = utcnow(), ItemStatus.done
    db.flush()
    fixed = {it.id: it.position for q in before.values() for it in q}
    scores = _uncertainty([im.id for im in images[:-4]], 11)  # 4 images get no prediction
    _use_uncertainty(db, team.project)
    result = order_fold_items(db, None, team.project, scores, model_id="quality-x")
    db.expire_all()
    after = _queues(db, team.project)
    assert result["moved"] > 0
    for rater_id, queue in after.items():
        for it in queue:
            if it.is_golden or it.shown_at is not None:
                assert it.position == fixed[it.id]  # golden, shown and labeled items stay
        golden_slots = {it.position for it in before[rater_id] if it.is_golden}
        assert {it.position for it in queue if it.is_golden} == golden_slots
        movable = [it for it in queue if not it.is_golden and it.shown_at is None]
        assert sorted(it.position for it in movable) == sorted(
            fixed[it.id] for it in movable
        )  # the fold items' own positions
        ranked = [it.image_id for it in sorted(movable, key=lambda it: it.position)]
        with_score = [i for i in ranked if i in scores]
        assert [scores[i] for i in with_score] == sorted(
            (scores[i] for i in with_score), reverse=True
        )
        assert ranked[: len(with_score)] == with_score  # unscored images come last
    events = db.scalars(select(AuditEvent).where(AuditEvent.action == "queue.reorder")).all()
    assert len(events) == 1 and events[0].details["model_id"] == "quality-x"


def test_golden_positions_stay_spread_like_fold_positions(db, team, make_images):
    """After a re-order the golden items still sit where the seeded shuffle put them."""
    images = make_images(team.project, 200)
    raters = team.raters(4)
    services.allocate(db, team.lead, team.project, raters, golden_size=20, overlap=1, seed=2024)
    golden_before = {
        (it.rater_id, it.position)
        for q in _queues(db, team.project).values()
        for it in q
        if it.is_golden
    }
    order_fold_items(db, None, team.project, {im.id: float(im.id) for im in images})
    db.expire_all()
    queues = _queues(db, team.project)
    golden_after = {(it.rater_id, it.position) for q in queues.values() for it in q if it.is_golden}
    assert golden_after == golden_before
    for queue in queues.values():  # and the fold items really follow the uncertainty
        fold = [it.image_id for it in queue if not it.is_golden]
        assert fold == sorted(fold, reverse=True)


def test_queue_order_setting():
    assert read_settings(None).queue_order == "seeded"
    new = merge_settings("quality", {}, {"queue": {"order": "uncertainty"}})
    assert (
        new["queue"] == {"order": "uncertainty"} and read_settings(new).queue_order == "uncertainty"
    )
    with pytest.raises(ValidationError, match="labeling order must be 'Seeded shuffle'"):
        merge_settings("quality", {}, {"queue": {"order": "hardest"}})
    with pytest.raises(ValidationError, match="unknown setting"):
        merge_settings("quality", {}, {"queue": {"by": "uncertainty"}})


def test_uses_uncertainty_order(db, team):
    assert not uses_uncertainty_order(team.project)
    _use_uncertainty(db, team.project)
    assert uses_uncertainty_order(team.project)


def test_the_settings_page_sets_the_labeling_order(db, team, client_for):
    client = client_for(team.lead)
    url = f"/projects/{team.project.id}/settings"
    page = client.get(url).get_data(as_text=True)
    assert 'name="queue_order"' in page and '<option value="seeded" selected>' in page
    form = {
        "csrf_token": client.csrf,
        "method": "plurality",
        "explanation_k": "1",
        "tie_policy": "unresolved",
        "min_pair_images": "1",
        "min_group_images": "30",
        "min_eval_images": "20",
    }
    resp = client.post(url, data={**form, "queue_order": "uncertainty"})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    db.expire_all()
    assert uses_uncertainty_order(team.project)
    assert '<option value="uncertainty" selected>' in client.get(url).get_data(as_text=True)
    bad = client.post(url, data={**form, "queue_order": "hardest"})
    assert bad.status_code == 422 and "labeling order must be" in bad.get_data(as_text=True)


def test_the_api_sets_the_labeling_order_and_documents_it(db, team, client):
    from labeler.auth.services import create_token

    headers = {"Authorization": f"Bearer {create_token(db, team.lead, team.lead, 't')[1]}"}
    db.flush()
    url = f"/api/v1/projects/{team.project.id}"
    assert client.get(url, headers=headers).json["settings"]["queue"] == {"order": "seeded"}
    ok = client.patch(url, json={"settings": {"queue": {"order": "uncertainty"}}}, headers=headers)
    assert (
        ok.status_code == 200 and ok.json["project"]["settings"]["queue"]["order"] == "uncertainty"
    )
    bad = client.patch(url, json={"settings": {"queue": {"order": 3}}}, headers=headers)
    assert bad.status_code == 422 and "labeling order" in bad.json["error"]["message"]
    doc = client.get("/api/v1/openapi.json").json
    schema = json.dumps(doc)
    assert '"order": {"enum": ["seeded", "uncertainty"]}' in schema
