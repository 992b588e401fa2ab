"""What webhooks add to a label submit, in SQL statements (the hot path's budget: issue 14).

A project whose webhooks do not listen to label.submitted pays nothing (emit reads the loaded
project's webhook_events); one that listens pays four statements: its endpoints, the progress counts
(one query), the event and its delivery."""

# ruff: noqa: F811  (fixtures imported from webhook_fixtures are used as arguments)
from __future__ import annotations

import uuid

import pytest
from helpers import recorded_statements
from webhook_fixtures import (  # noqa: F401  (fixtures)
    endpoint_factory,
    loopback_allowed,
    quality_images,
    receiver,
)

from labeler.allocation.models import QueueItem
from labeler.allocation.services import allocate
from labeler.auth.services import create_token


def _submit_statements(app, connection, token, item) -> list[str]:
    with recorded_statements(connection) as seen:
        resp = app.test_client().put(
            f"/api/v1/items/{item.public_id}/label",
            json={"decision": "no_skin", "base_version": 0, "submission_id": uuid.uuid4().hex},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return seen


@pytest.mark.parametrize(
    ("events", "extra"), [(["training_run.finished"], 0), (["label.submitted"], 4)]
)
def test_statements_a_submit_adds(
    app,
    db,
    connection,
    make_user,
    make_project,
    quality_images,
    endpoint_factory,
    receiver,
    events,
    extra,
):
    lead, rater = make_user(None, "lead"), make_user(None, "rater")
    items, counts = [], []
    for subscribe in (False, True):
        project = make_project(lead)
        quality_images(project, 3)
        if subscribe:
            endpoint_factory(project, receiver.url(), events, actor=lead)
        allocate(db, lead, project, [rater], golden_size=0, overlap=1, seed=3)
        item = db.query(QueueItem).filter_by(project_id=project.id, rater_id=rater.id).first()
        items.append(item)
    token = create_token(db, rater, rater, "t")[1]
    db.flush()
    app.test_client().get("/api/v1/icd10?q=acne", headers={"Authorization": f"Bearer {token}"})
    for item in items:
        counts.append(len(_submit_statements(app, connection, token, item)))
    assert counts[1] - counts[0] == extra, counts
