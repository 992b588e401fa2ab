"""Fixtures of the model-in-the-loop tests: an allocated quality project whose images are stored,
a model's suggestions stored for every image (as a finished job leaves them), signed-in clients."""

from __future__ import annotations

import pytest
from assist_support import quality_answer, store_suggestions, stored_images

from labeler.allocation import services as allocation


@pytest.fixture()
def assisted_project(app, db, make_user, make_project):
    """A quality project of 24 stored images, 3 raters, golden set of 6 (overlap 2), and a model's
    suggestions stored for every image but one (which the model could not read)."""
    lead = make_user(None, "lead")
    project = make_project(lead)
    images = stored_images(app, db, project, 24)
    raters = [make_user(None, "rater") for _ in range(3)]
    allocation.allocate(db, lead, project, raters, golden_size=6, overlap=2, seed=11)
    answers = {im.id: quality_answer(k) for k, im in enumerate(images)}
    answers[images[5].id] = None
    store_suggestions(db, project, answers)
    db.commit()
    return lead, project, raters, images
