"""Allocation fixtures: quick image rows (optionally with stored display files) and a rater team."""

from __future__ import annotations

import io

import pytest
from helpers import image_row
from PIL import Image as PILImage

from labeler.images.models import Image


@pytest.fixture(name="image_row")
def image_row_fixture():
    """The ``image_row(project_id, case_id=None)`` factory, for tests that use their own sessions."""
    return image_row


@pytest.fixture()
def make_images(app, db):
    """``make_images(project, n, cases={case: size}, store=True)`` -> list of Image rows."""

    def _make(
        project, n: int = 0, *, cases: dict[str, int] | None = None, store: bool = False
    ) -> list[Image]:
        rows = [image_row(project.id) for _ in range(n)]
        for case, size in (cases or {}).items():
            rows.extend(image_row(project.id, case_id=case) for _ in range(size))
        db.add_all(rows)
        db.flush()
        if store:
            storage = app.extensions["labeler_storage"]
            for i, row in enumerate(rows):
                buf = io.BytesIO()
                PILImage.new("RGB", (16, 16), (i % 256, 120, 90)).save(buf, "JPEG")
                storage.put(row.display_key, buf.getvalue())
        return rows

    return _make


@pytest.fixture()
def team(make_user, make_project):
    """A lead, an admin, a project led by the lead, and ``raters(k)`` to make rater accounts."""

    class Team:
        lead = make_user(None, "lead")
        admin = make_user(None, "admin")
        project = make_project(lead)

        @staticmethod
        def raters(k: int) -> list:
            return [make_user(None, "rater") for _ in range(k)]

    return Team
