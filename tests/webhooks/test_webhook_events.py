"""Events fire from the real service calls (label submit, allocation, raters added and removed, tie
adjudication, a training run's end), are written only when their transaction commits, and carry
nothing that tells golden items apart."""

# ruff: noqa: F811  (fixtures imported from webhook_fixtures are used as arguments)
from __future__ import annotations

import json
import os
import socket
import uuid

import pytest
from sqlalchemy import func, select
from webhook_fixtures import (  # noqa: F401  (fixtures)
    endpoint_factory,
    loopback_allowed,
    quality_images,
    receiver,
)

from labeler.allocation.models import QueueItem
from labeler.allocation.services import add_rater, allocate, remove_rater
from labeler.auth.services import create_token
from labeler.errors import LabelerError
from labeler.events import EVENTS
from labeler.labeling import services as labeling_services
from labeler.reports.services import adjudicate
from labeler.training.control import cancel_run
from labeler.training.models import ModelKind, RunStatus, TrainingRun
from labeler.training.worker import _update
from labeler.webhooks.models import WebhookDelivery, WebhookEvent

ALL = tuple(EVENTS)


def _events(db, name=None):
    db.expire_all()
    stmt = select(WebhookEvent).order_by(WebhookEvent.id)
    if name:
        stmt = stmt.where(WebhookEvent.name == name)
    return list(db.scalars(stmt))


@pytest.fixture()
def world(app, db, make_user, make_project, quality_images, endpoint_factory, receiver):
    """A quality project of 6 images (2 golden), two raters with overlap 1, a webhook for every event."""
    lead = make_user(None, "lead")
    raters = [make_user(None, "rater") for _ in range(2)]
    project = make_project(lead)
    quality_images(project, 6)
    endpoint, _secret = endpoint_factory(project, receiver.url(), ALL, actor=lead)
    allocation = allocate(db, lead, project, raters, golden_size=2, overlap=1, seed=7)
    db.flush()
    tokens = {r.id: create_token(db, r, r, "t")[1] for r in raters}
    db.flush()
    return {
        "lead": lead,
        "raters": raters,
        "project": project,
        "allocation": allocation,
        "endpoint": endpoint,
        "tokens": tokens,
    }


def _items(db, project, rater):
    return list(
        db.scalars(
            select(QueueItem)
            .where(QueueItem.project_id == project.id, QueueItem.rater_id == rater.id)
            .order_by(QueueItem.position)
        )
    )


def _submit(client, token, item, decision="healthy_skin", base_version=0):
    resp = client.put(
        f"/api/v1/items/{item.public_id}/label",
        json={
            "decision": decision,
            "base_version": base_version,
            "submission_id": uuid.uuid4().hex,
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.json


def test_allocation_fires_allocation_changed(db, world):
    (event,) = _events(db, "allocation.changed")
    assert event.payload == {
        "project_id": world["project"].id,
        "change": "created",
        "allocation_id": world["allocation"].id,
        "version": 1,
        "raters": 2,
        "items_total": db.scalar(select(func.count(QueueItem.id))),
    }
    # one delivery to the one webhook, due now
    (delivery,) = db.scalars(select(WebhookDelivery).where(WebhookDelivery.event_id == event.id))
    assert delivery.endpoint_id == world["endpoint"].id and delivery.attempts == 0


def test_golden_and_fold_label_events_look_the_same(app, db, world):
    """A rater's golden item and fold item give events that differ only by the progress they count."""
    client = app.test_client()
    rater = world["raters"][0]
    items = _items(db, world["project"], rater)
    golden = next(i for i in items if i.is_golden)
    fold = next(i for i in items if not i.is_golden)
    _submit(client, world["tokens"][rater.id], golden)
    _submit(client, world["tokens"][rater.id], fold)
    first, second = (e.payload for e in _events(db, "label.submitted"))
    total = len(items)
    project_total = db.scalar(select(func.count(QueueItem.id)))
    assert first == {
        "project_id": world["project"].id,
        "version": 1,
        "project": {"items_total": project_total, "items_done": 1},
        "rater": {"id": rater.id, "items_total": total, "items_done": 1},
    }
    # the fold label's event is the golden one's with both counters one further, and nothing else
    bumped = json.loads(json.dumps(first))
    bumped["project"]["items_done"] += 1
    bumped["rater"]["items_done"] += 1
    assert second == bumped
    text = json.dumps(first) + json.dumps(second)
    assert "golden" not in text and golden.public_id not in text and fold.public_id not in text
    assert str(golden.image_id) not in json.dumps(first.get("image_id", ""))


def test_a_changed_label_fires_again_but_completion_fires_once(app, db, world):
    client = app.test_client()
    for rater in world["raters"]:
        for item in _items(db, world["project"], rater):
            assert _events(db, "project.completed") == []
            _submit(client, world["tokens"][rater.id], item)
    (done,) = _events(db, "project.completed")
    total = db.scalar(select(func.count(QueueItem.id)))
    assert done.payload == {
        "project_id": world["project"].id,
        "items_total": total,
        "items_done": total,
        "raters": 2,
    }
    # a second version of a label: label.submitted again (version 2), no second completion
    rater = world["raters"][0]
    item = _items(db, world["project"], rater)[0]
    _submit(client, world["tokens"][rater.id], item, decision="no_skin", base_version=1)
    assert _events(db, "label.submitted")[-1].payload["version"] == 2
    assert len(_events(db, "label.submitted")) == total + 1
    assert len(_events(db, "project.completed")) == 1


def test_no_event_when_the_transaction_rolls_back(app, db, world, monkeypatch):
    """The label's write and its event share one transaction: a request that fails after the event was
    written leaves neither the label nor the event (nor a delivery)."""
    rater = world["raters"][0]
    item = _items(db, world["project"], rater)[0]
    before = len(_events(db))
    original = labeling_services.events.label_submitted

    def then_fail(*args, **kwargs):
        original(*args, **kwargs)
        assert _events(db, "label.submitted"), "the event was written in the request's transaction"
        raise LabelerError("refused after the event was written", status=409)

    monkeypatch.setattr(labeling_services.events, "label_submitted", then_fail)
    resp = app.test_client().put(
        f"/api/v1/items/{item.public_id}/label",
        json={"decision": "healthy_skin", "base_version": 0},
        headers={"Authorization": f"Bearer {world['tokens'][rater.id]}"},
    )
    assert resp.status_code == 409
    assert len(_events(db)) == before
    assert db.scalar(select(func.count(WebhookDelivery.id))) == before  # one delivery per event
    db.expire_all()
    assert db.get(QueueItem, item.id).status.value == "pending"


def test_a_savepoint_rolled_back_takes_its_event_with_it(db, world):
    rater = world["raters"][0]
    item = _items(db, world["project"], rater)[0]
    nested = db.begin_nested()
    labeling_services.submit_label(
        db,
        rater,
        item,
        {"decision": "healthy_skin"},
        base_version=0,
        submission_id=None,
        time_spent_ms=0,
    )
    assert len(_events(db, "label.submitted")) == 1
    nested.rollback()
    assert _events(db, "label.submitted") == []


def test_raters_added_and_removed_fire_allocation_changed_without_golden_counts(
    db, world, make_user
):
    newcomer = make_user(None, "rater")
    add_rater(db, world["lead"], world["project"], newcomer)
    remove_rater(db, world["lead"], world["project"], world["raters"][1])
    changes = [e.payload for e in _events(db, "allocation.changed")]
    assert [c["change"] for c in changes] == ["created", "rater_added", "rater_removed"]
    assert changes[1]["rater_id"] == newcomer.id and changes[1]["version"] == 2
    assert changes[2]["rater_id"] == world["raters"][1].id
    for change in changes:
        assert "golden" not in json.dumps(change)
        assert set(change) <= {
            "project_id",
            "change",
            "allocation_id",
            "version",
            "rater_id",
            "raters",
            "items_total",
        }


def test_adjudicating_a_tie_fires_tie_adjudicated(app, db, world):
    client = app.test_client()
    a, b = world["raters"]
    golden_a = next(i for i in _items(db, world["project"], a) if i.is_golden)
    golden_b = next(i for i in _items(db, world["project"], b) if i.image_id == golden_a.image_id)
    _submit(client, world["tokens"][a.id], golden_a, "healthy_skin")
    _submit(client, world["tokens"][b.id], golden_b, "no_skin")
    adj = adjudicate(db, world["lead"], world["project"], golden_a.image_id, "no_skin")
    (event,) = _events(db, "tie.adjudicated")
    assert event.payload == {
        "project_id": world["project"].id,
        "adjudication_id": adj.id,
        "image_id": golden_a.image_id,
        "replaced": False,
    }
    adjudicate(db, world["lead"], world["project"], golden_a.image_id, "healthy_skin")
    assert _events(db, "tie.adjudicated")[-1].payload["replaced"] is True


def _running_run(db, project):
    run = TrainingRun(
        project_id=project.id,
        kind=ModelKind.quality,
        status=RunStatus.running,
        pid=os.getpid(),
        host=socket.gethostname(),
    )
    db.add(run)
    db.flush()
    return run


def test_a_training_run_ending_fires_training_run_finished(app, db, world):
    """A fake run row (no training): the worker's final write, and a lead's cancel."""
    factory = app.extensions["labeler_db"].session_factory
    run = _running_run(db, world["project"])
    # a progress write is not the end
    assert _update(factory, run.id, stage="features", done=1, total=2) == 1
    assert _events(db, "training_run.finished") == []
    from labeler.db import utcnow

    assert _update(
        factory, run.id, status=RunStatus.succeeded, finished_at=utcnow(), model_id="m-1"
    )
    (event,) = _events(db, "training_run.finished")
    assert event.payload == {
        "project_id": world["project"].id,
        "run_id": run.id,
        "kind": "quality",
        "status": "succeeded",
        "model_id": "m-1",
    }
    other = _running_run(db, world["project"])
    cancel_run(db, world["lead"], other)
    assert _events(db, "training_run.finished")[-1].payload["status"] == "cancelled"


def test_events_nobody_listens_to_write_nothing(
    app, db, make_user, make_project, quality_images, endpoint_factory, receiver
):
    lead = make_user(None, "lead")
    rater = make_user(None, "rater")
    project = make_project(lead)
    quality_images(project, 2)
    endpoint_factory(project, receiver.url(), ["training_run.finished"], actor=lead)
    assert project.webhook_events == ["training_run.finished"]
    allocate(db, lead, project, [rater], golden_size=0, overlap=1, seed=1)
    item = _items(db, project, rater)[0]
    labeling_services.submit_label(
        db,
        rater,
        item,
        {"decision": "no_skin"},
        base_version=0,
        submission_id=None,
        time_spent_ms=0,
    )
    assert _events(db) == []
