"""My labels: filters (project, answer, flag, dates), thumbnails of shown items only, links from home."""

# ruff: noqa: F811  (fixtures imported from labeling_fixtures are used as arguments)
from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from labeling_fixtures import make_item  # noqa: F401  (fixture)
from PIL import Image as PILImage

from labeler.demo import MemorySource
from labeler.images.services import import_images
from labeler.labeling.models import ItemFlag, Label


def jpeg() -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", (40, 30), (190, 130, 110)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture()
def labeled(app, db, make_user, make_project, make_item):
    """A rater with three labels in two projects: one 'no skin' (flagged), one lesion, one grade."""
    rater = make_user(None, "rater")
    quality, severity = (
        make_project(name="Quality Q"),
        make_project(name="Severity S", protocol="severity"),
    )
    summary = import_images(
        db,
        None,
        quality,
        [MemorySource("a.jpg", jpeg())],
        storage=app.extensions["labeler_storage"],
        source_label="t",
        checkpoint=db.flush,
    )
    from labeler.images.models import Image

    real = db.get(Image, summary.imported[0]["id"])
    q1 = make_item(rater, quality, image=real)
    q2 = make_item(rater, quality)
    s1 = make_item(rater, severity)
    unshown = make_item(rater, quality)
    now = datetime.now(UTC)
    for item, fields, when in (
        (q1, {"decision": "no_skin"}, now),
        (q2, {"decision": "lesion", "icd10": "L70.0"}, now - timedelta(days=10)),
        (s1, {"decision": "graded", "grade": 3.0}, now - timedelta(days=3)),
    ):
        item.shown_at = when
        db.add(
            Label(
                project_id=item.project_id,
                rater_id=rater.id,
                image_id=item.image_id,
                updated_at=when,
                **fields,
            )
        )
    db.add(ItemFlag(project_id=quality.id, rater_id=rater.id, image_id=q1.image_id, unsure=True))
    db.flush()
    return {
        "rater": rater,
        "quality": quality,
        "items": (q1, q2, s1),
        "unshown": unshown,
        "now": now,
    }


def shown_items(html: bytes, items) -> list[int]:
    return [i for i, item in enumerate(items) if f"/items/{item.public_id}".encode() in html]


def test_filters_by_project_answer_flag_and_dates(labeled, login_as):
    client = login_as(labeled["rater"])
    items = labeled["items"]
    page = client.get("/my-labels")
    assert page.status_code == 200 and shown_items(page.data, items) == [0, 1, 2]
    assert b"A grade" in page.data and b"No skin" in page.data  # the answers given, in words
    project = labeled["quality"].id
    assert shown_items(client.get(f"/my-labels?project={project}").data, items) == [0, 1]
    assert shown_items(client.get("/my-labels?decision=graded").data, items) == [2]
    flagged = client.get("/my-labels?flagged=1").data
    assert shown_items(flagged, items) == [0] and b"Unsure" in flagged
    day = (labeled["now"] - timedelta(days=5)).date().isoformat()
    assert shown_items(client.get(f"/my-labels?since={day}").data, items) == [0, 2]
    assert shown_items(client.get(f"/my-labels?until={day}").data, items) == [1]
    none = client.get("/my-labels?decision=healthy_skin")
    assert b"None of your 3 labels matches" in none.data


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("since=yesterday", b"must be a date"),
        ("decision=no_skinx", b"choose an answer"),
        ("project=abc", b"choose a project"),
        ("since=2026-02-01&until=2026-01-01", b"must not be after"),
    ],
)
def test_bad_filters_get_400_with_a_message(labeled, login_as, query, message):
    resp = login_as(labeled["rater"]).get(f"/my-labels?{query}")
    assert resp.status_code == 400 and message in resp.data


def test_thumbnails_only_of_the_raters_shown_items(labeled, login_as, make_user):
    client = login_as(labeled["rater"])
    q1 = labeled["items"][0]
    thumb = client.get(f"/my-labels/{q1.public_id}/thumb")
    assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg"
    assert thumb.headers["Cache-Control"] == "private, no-store"
    assert PILImage.open(io.BytesIO(thumb.data)).size[0] <= 256
    assert client.get(f"/my-labels/{labeled['unshown'].public_id}/thumb").status_code == 404
    other = login_as(make_user(None, "rater"))
    assert other.get(f"/my-labels/{q1.public_id}/thumb").status_code == 404


def test_home_links_my_labels_and_the_guidelines(labeled, login_as):
    home = login_as(labeled["rater"]).get("/").data
    assert b'id="home-my-labels"' in home
    assert f"/my-labels?project={labeled['quality'].id}".encode() in home
    assert f"/projects/{labeled['quality'].id}/guidelines/read".encode() in home
