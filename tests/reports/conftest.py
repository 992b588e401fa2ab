"""Fixtures for reports: a small quality and severity project with labels written directly."""

from __future__ import annotations

import io

import pytest
from PIL import Image as PILImage

from labeler.allocation.models import GoldenImage
from labeler.auth.services import create_token
from labeler.demo import MemorySource
from labeler.images.services import import_images
from labeler.labeling.models import Label
from labeler.projects.models import MemberRole
from labeler.projects.services import add_member


def _jpeg(i: int) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", (24, 24), (i * 9 % 256, 100, 50)).save(buf, "JPEG")
    return buf.getvalue()


class Built:
    def __init__(self, project, lead, raters, images, token):
        self.project, self.lead, self.raters, self.images, self.token = (
            project,
            lead,
            raters,
            images,
            token,
        )

    @property
    def headers(self):
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture()
def build_project(app, db, make_user, make_project):
    def _build(
        protocol: str, table: list[list], golden: set[int] = frozenset(), case_ids=None
    ) -> Built:
        """table[i][j]: rater j's label for image i (None = no label): a decision string, or a dict of fields."""
        lead = make_user(None, "lead")
        project = make_project(lead, protocol=protocol)
        raters = [make_user(None, "rater", name=f"Rater {j + 1}") for j in range(len(table[0]))]
        for r in raters:
            add_member(db, None, project, r, MemberRole.rater)
        summary = import_images(
            db,
            None,
            project,
            [MemorySource(f"im{i}.jpg", _jpeg(i)) for i in range(len(table))],
            storage=app.extensions["labeler_storage"],
            source_label="t",
            checkpoint=db.flush,
        )
        ids = [row["id"] for row in summary.imported]
        for i in golden:
            db.add(GoldenImage(project_id=project.id, image_id=ids[i]))
        for i, row in enumerate(table):
            for j, value in enumerate(row):
                if value is None:
                    continue
                fields = value if isinstance(value, dict) else {"decision": value}
                db.add(
                    Label(project_id=project.id, rater_id=raters[j].id, image_id=ids[i], **fields)
                )
        _t, raw = create_token(db, lead, lead, "t")
        db.flush()
        return Built(project, lead, raters, ids, raw)

    return _build
