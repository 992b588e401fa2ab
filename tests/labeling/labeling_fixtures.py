"""Labeling fixtures (imported by the test modules: a conftest.py here would shadow the root one)."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest


@pytest.fixture()
def make_item(db):
    """A queue item of `rater` in `project` for a fresh image (position: after the rater's last item)."""
    from sqlalchemy import func, select

    from labeler.allocation.models import QueueItem
    from labeler.images.models import Image
    from labeler.projects.models import MemberRole
    from labeler.projects.services import add_member

    def _make(rater, project, *, position: int | None = None, image=None):
        if image is None:
            digest = uuid.uuid4().hex * 2
            image = Image(
                project_id=project.id,
                sha256=digest,
                filename=f"{digest[:8]}.jpg",
                width=64,
                height=48,
                format="JPEG",
                byte_size=100,
                display_key=f"d/{digest}.jpg",
                thumb_key=f"t/{digest}.jpg",
                original_key=f"o/{digest}.jpg",
            )
            db.add(image)
            db.flush()
        if position is None:
            position = (
                db.scalar(
                    select(func.max(QueueItem.position)).where(
                        QueueItem.rater_id == rater.id, QueueItem.project_id == project.id
                    )
                )
                or 0
            ) + 1
        # a queue item belongs to a rater of the project (a removed rater keeps no access to items)
        add_member(db, None, project, rater, MemberRole.rater)
        item = QueueItem(
            public_id=uuid.uuid4().hex[:20],
            project_id=project.id,
            rater_id=rater.id,
            image_id=image.id,
            position=position,
        )
        db.add(item)
        db.flush()
        return item

    return _make


@pytest.fixture()
def severity_project(db, make_project):
    """A severity project with the default 1-5 scale and the non-graded answers enabled."""
    project = make_project(None, protocol="severity")
    project.settings = {**project.settings, "allow_non_graded": True}
    db.flush()
    return project


@pytest.fixture()
def rater_queue(app, db, make_user, make_project, make_item):
    """A rater with three items in a new project (their display copies stored) and an API token:
    rater, project, items, token and its raw value."""
    from labeler.auth.services import create_token
    from labeler.images.models import Image

    rater = make_user(None, "rater")
    project = make_project()
    items = [make_item(rater, project) for _ in range(3)]
    storage = app.extensions["labeler_storage"]
    for item in items:
        storage.put(
            db.get(Image, item.image_id).display_key, b"\xff\xd8 not really a jpeg \xff\xd9"
        )
    token, raw = create_token(db, None, rater, "script")
    db.flush()
    return SimpleNamespace(rater=rater, project=project, items=items, token=token, raw=raw)


@pytest.fixture()
def dispatched(app, monkeypatch):
    """The requests Flask dispatched to a view (the rest were answered by the image layer below it,
    labeler/api/hot_image.py)."""
    calls: list[str] = []
    dispatch = app.full_dispatch_request

    def counting():
        from flask import request

        calls.append(request.path)
        return dispatch()

    monkeypatch.setattr(app, "full_dispatch_request", counting)
    return calls
