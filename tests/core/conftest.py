"""Fixtures for the hostile-input tests: one person holding every role, a small allocated project."""

from __future__ import annotations

import io
from typing import NamedTuple

import pytest
from PIL import Image as PILImage

from labeler.allocation.services import allocate
from labeler.auth.services import create_token
from labeler.demo import MemorySource
from labeler.images.services import import_images


def jpeg(shade: int = 0) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", (32, 32), (200, 150, shade)).save(buf, "JPEG")
    return buf.getvalue()


class Everyone(NamedTuple):
    user: object  # rater, lead and admin; a rater and lead of `project`
    other: object  # a second rater of `project`
    project: object
    item: object  # one of `user`'s queue items
    token: str  # `user`'s bearer token


@pytest.fixture()
def everyone(app, db, make_user, make_project) -> Everyone:
    app.config["ML_SPAWN_WORKER"] = False  # a queued training run stays queued: no process started
    user = make_user("boss@hostile.test", "rater", "lead", "admin")
    other = make_user("other@hostile.test", "rater")
    project = make_project(user)
    import_images(
        db,
        None,
        project,
        [MemorySource(f"f{i}.jpg", jpeg(10 * i)) for i in range(4)],
        storage=app.extensions["labeler_storage"],
        source_label="t",
        checkpoint=db.flush,
    )
    allocate(db, None, project, [user.email, other.email], golden_size=1, seed=7)
    from labeler.allocation.models import QueueItem

    item = db.query(QueueItem).filter_by(rater_id=user.id).order_by(QueueItem.position).first()
    _token, raw = create_token(db, user, user, "hostile")
    db.flush()
    return Everyone(user, other, project, item, raw)
