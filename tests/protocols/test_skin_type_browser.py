"""A skin-type project's labeling page in Chromium: Fitzpatrick types by the keys 1-6 and "cannot
assess" by 0, back and change, the key help, W to fit the image (0 is an answer now), and axe."""

from __future__ import annotations

import pytest
from browser_support.fixtures import axe_scan, sign_in
from browser_support.labeling_queue import queue_project, wait_ready
from sqlalchemy import select

from labeler.allocation.models import QueueItem
from labeler.auth.models import Role
from labeler.auth.services import add_user
from labeler.demo import MemorySource
from labeler.demo_images import render, severity_specs
from labeler.images.services import import_images
from labeler.labeling.models import Label, LabelRevision
from labeler.projects.models import MemberRole
from labeler.projects.services import add_member, create_project

pytestmark = pytest.mark.browser
RATER = "skin.rater@clinic.test"


@pytest.fixture()
def queue(live_server):
    """A skin-type project of four generated faces (six skin tones), queued for one rater."""
    storage = live_server.app.extensions["labeler_storage"]
    with live_server.session() as s:
        rater = add_user(s, None, RATER, "Skin Rater", {Role.rater})
        project = create_project(s, None, "Skin types", "skin_type")
        add_member(s, None, project, rater, MemberRole.rater)
        specs = severity_specs(4, seed=8)
        import_images(
            s,
            None,
            project,
            (MemorySource(spec.filename, render(spec)) for spec in specs),
            storage=storage,
            source_label="test",
            checkpoint=s.flush,
        )
        ids = queue_project(s, project, rater, "skn")
        return ids


def answers(server, public_id):
    with server.session() as s:
        item = s.scalar(select(QueueItem).where(QueueItem.public_id == public_id))
        label = s.scalar(
            select(Label).where(Label.rater_id == item.rater_id, Label.image_id == item.image_id)
        )
        revisions = s.scalars(
            select(LabelRevision)
            .where(LabelRevision.label_id == label.id)
            .order_by(LabelRevision.version)
        ).all()
        return [(r.decision, r.grade) for r in revisions]


def test_skin_types_by_keyboard(live_server, queue, browser_page):
    page = browser_page
    sign_in(page, live_server, RATER)
    page.goto(f"{live_server.url}/items/{queue[0]}")
    wait_ready(page, queue[0])
    assert "always burns" in page.inner_text("label[for=grade-1]")
    help_text = page.text_content(".help")
    assert "skin type I–VI" in help_text and "cannot assess" in help_text
    assert "fit the whole image" in help_text
    # 0 answers "cannot assess" (it no longer fits the image): the zoom stays where it was
    page.keyboard.press("+")
    zoomed = page.get_attribute("#stage", "data-scale")
    page.keyboard.press("0")
    assert page.is_checked("#decision-cannot_assess")
    assert page.get_attribute("#stage", "data-scale") == zoomed
    page.keyboard.press("w")  # W fits the image
    assert page.get_attribute("#stage", "data-scale") != zoomed
    page.keyboard.press("Enter")
    wait_ready(page, queue[1])
    page.keyboard.press("3")
    assert page.is_checked("#grade-3")
    page.keyboard.press("Enter")
    wait_ready(page, queue[2])
    page.keyboard.press("6")
    page.keyboard.press("Enter")
    wait_ready(page, queue[3])
    assert "Saved: Type VI" in page.inner_text("#notice")
    # back to the second image and change III to IV
    page.keyboard.press("[")
    wait_ready(page, queue[2])
    page.keyboard.press("[")
    wait_ready(page, queue[1])
    assert page.is_checked("#grade-3")
    page.keyboard.press("4")
    page.keyboard.press("Enter")
    wait_ready(page, queue[3])  # on to the image still to answer
    assert answers(live_server, queue[0]) == [("cannot_assess", None)]
    assert answers(live_server, queue[1]) == [("graded", 3.0), ("graded", 4.0)]
    assert answers(live_server, queue[2]) == [("graded", 6.0)]
    page.goto(f"{live_server.url}/my-labels")
    assert "Type IV" in page.inner_text("main") and "Cannot assess" in page.inner_text("main")


def test_no_serious_accessibility_violations(live_server, queue, axe_page):
    sign_in(axe_page, live_server, RATER)
    axe_page.goto(f"{live_server.url}/items/{queue[0]}")
    wait_ready(axe_page, queue[0])
    axe_page.keyboard.press("2")
    violations = axe_scan(axe_page)
    assert not violations, [(v["id"], v["impact"], v["help"]) for v in violations]
