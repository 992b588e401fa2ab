"""A rater's labeling queue for browser tests of the labeling page: queue a project's images in
order, and wait until the page shows an item with its photo drawn."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from labeler.allocation.models import QueueItem
from labeler.images.models import Image


def queue_project(
    session: Session, project, rater, prefix: str, limit: int | None = None
) -> list[str]:
    """Queue the project's images (by id, the first `limit`) for `rater` in that order; returns the
    items' public ids (`<prefix>NNx<image id>`)."""
    images = session.scalars(
        select(Image).where(Image.project_id == project.id).order_by(Image.id)
    ).all()
    items = [
        QueueItem(
            public_id=f"{prefix}{i:02d}x{image.id:05d}",
            project_id=project.id,
            rater_id=rater.id,
            image_id=image.id,
            position=i + 1,
        )
        for i, image in enumerate(images[:limit])
    ]
    session.add_all(items)
    return [it.public_id for it in items]


def wait_ready(page, public_id: str) -> None:
    """The labeling page shows `public_id`, ready for keys, its photo loaded."""
    page.wait_for_url(re.compile(rf"/items/{public_id}$"))
    page.wait_for_selector('#labeling[data-ready="true"]', state="attached")
    page.wait_for_function(
        "() => { const i = document.getElementById('photo');"
        " return i.complete && i.naturalWidth > 0; }"
    )
