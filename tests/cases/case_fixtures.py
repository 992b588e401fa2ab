"""Case fixtures (imported by the test modules): a project whose images come in cases, allocated to
raters, and a signed-in client per rater."""

from __future__ import annotations

import io
import secrets

import helpers
import pytest
from PIL import Image as PILImage

from labeler.allocation import services as allocation
from labeler.images.models import Image


def image_row(project_id: int, case_id: str | None, body_site: str | None = None) -> Image:
    return helpers.image_row(
        project_id,
        size=16,
        case_id=case_id,
        body_site=body_site,
        meta={"age": "40-49", "secret_note": "not for raters"},
    )


@pytest.fixture()
def case_project(app, db, make_user, make_project):
    """``case_project(protocol, cases={case: n}, singles=0, raters=2, golden=0, overlap=2, settings)``:
    a project with stored images, allocated; returns (project, raters, images)."""
    from labeler.projects.services import update_settings

    def _make(
        protocol="severity",
        *,
        cases=None,
        singles=0,
        raters=2,
        golden_size=0,
        overlap=None,
        settings=None,
        seed=7,
    ):
        lead = make_user(None, "lead")
        project = make_project(lead, protocol=protocol)
        if settings:
            update_settings(db, lead, project, settings)
        rows = [image_row(project.id, None, "arm") for _ in range(singles)]
        for case, n in (cases or {"c1": 3}).items():
            rows.extend(image_row(project.id, case, "face") for _ in range(n))
        db.add_all(rows)
        db.flush()
        storage = app.extensions["labeler_storage"]
        for i, row in enumerate(rows):
            buf = io.BytesIO()
            PILImage.new("RGB", (16, 16), (i * 7 % 256, 120, 90)).save(buf, "JPEG")
            storage.put(row.display_key, buf.getvalue())
        people = [make_user(None, "rater") for _ in range(raters)]
        allocation.allocate(
            db,
            lead,
            project,
            people,
            golden_size=golden_size,
            overlap=overlap or raters,
            seed=seed,
        )
        db.commit()
        return project, people, rows

    return _make


def put_json(client, url, body):
    return client.put(url, json=body, headers={"X-CSRFToken": client.csrf})


def post_json(client, url, body):
    return client.post(url, json=body, headers={"X-CSRFToken": client.csrf})


def photo_bytes(i: int, size=(640, 480)) -> bytes:
    """A JPEG with some structure (a gradient and a disc), distinct per index."""
    from PIL import ImageDraw

    img = PILImage.new("RGB", size, (180 - i * 9 % 90, 130, 100 + i * 13 % 100))
    draw = ImageDraw.Draw(img)
    w, h = size
    draw.ellipse((w // 3, h // 3, w // 3 + w // 4, h // 3 + h // 4), fill=(120, 60 + i % 50, 50))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def seed_cases(
    session, storage, *, protocol, settings, cases, rater_email, seed=5, size=(640, 480)
):
    """A project of ``cases`` ({case id: photos}) allocated to one rater (created if missing), for
    the live-server tests; returns the project id."""
    from sqlalchemy import select

    from labeler.auth.models import Role, User
    from labeler.auth.services import add_user
    from labeler.projects.services import create_project, update_settings

    lead = session.scalar(select(User).where(User.email == "lead@cases.test")) or add_user(
        session, None, "lead@cases.test", "Lead", [Role.lead]
    )
    rater = session.scalar(select(User).where(User.email == rater_email)) or add_user(
        session, None, rater_email, "Rater", [Role.rater]
    )
    project = create_project(session, lead, f"Cases {protocol} {secrets.token_hex(3)}", protocol)
    update_settings(session, lead, project, settings)
    rows = []
    for case, n in cases.items():
        rows.extend(image_row(project.id, case, "cheek") for _ in range(n))
    session.add_all(rows)
    session.flush()
    for i, row in enumerate(rows):
        storage.put(row.display_key, photo_bytes(i, size))
    allocation.allocate(session, lead, project, [rater], golden_size=0, overlap=1, seed=seed)
    session.flush()
    return project.id
