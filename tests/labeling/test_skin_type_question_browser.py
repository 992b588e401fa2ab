"""The skin-type second question in Chromium: both questions answered by keyboard (Shift+digit, T
then the arrow keys), kept and shown again, at 390 px without sideways scrolling, axe-core clean."""

from __future__ import annotations

import pytest
from browser_support.fixtures import axe_scan, sign_in
from browser_support.labeling_queue import queue_project, wait_ready
from sqlalchemy import delete, select

from labeler.allocation.models import QueueItem
from labeler.auth.models import User
from labeler.demo import build_demo
from labeler.labeling.models import Label, LabelRevision
from labeler.projects.models import Project

pytestmark = pytest.mark.browser
RATER = "rater1@demo.test"


@pytest.fixture()
def queue(live_server):
    """The demo's quality project asking the skin type, its first 4 images queued for rater1 in order."""
    storage = live_server.app.extensions["labeler_storage"]
    with live_server.session() as s:
        build_demo(s, storage, 4, checkpoint=s.flush)
        rater = s.scalar(select(User).where(User.email == RATER))
        s.execute(delete(QueueItem).where(QueueItem.rater_id == rater.id))
        project = s.scalar(select(Project).where(Project.protocol == "quality"))
        project.settings = {**project.settings, "ask_skin_type": True}
        ids = queue_project(s, project, rater, "skin", limit=4)
        return ids


def saved(server, public_id):
    """(decision, skin_type) of the current label and the skin types of its revisions."""
    with server.session() as s:
        item = s.scalar(select(QueueItem).where(QueueItem.public_id == public_id))
        label = s.scalar(
            select(Label).where(Label.rater_id == item.rater_id, Label.image_id == item.image_id)
        )
        revs = s.scalars(
            select(LabelRevision.skin_type)
            .where(LabelRevision.label_id == label.id)
            .order_by(LabelRevision.version)
        ).all()
        return label.decision, label.skin_type, revs


def test_both_questions_by_keyboard(browser_page, live_server, queue):
    page = browser_page
    sign_in(page, live_server, RATER)
    page.goto(f"{live_server.url}/items/{queue[0]}")
    wait_ready(page, queue[0])
    assert page.locator("#skin-type-question legend").inner_text().startswith("Fitzpatrick")
    # 1: healthy skin, then Shift+4 for type IV (the main protocol's keys stay its own)
    page.keyboard.press("h")
    page.keyboard.press("Shift+Digit4")
    assert page.is_checked("#decision-healthy_skin") and page.is_checked("#skin-type-4")
    page.keyboard.press("Enter")
    wait_ready(page, queue[1])
    assert saved(live_server, queue[0]) == ("healthy_skin", 4, [4])
    assert "Saved: Healthy skin, Type IV" in page.inner_text("#notice")
    assert not page.is_checked("#skin-type-4")  # the next image starts with no skin type
    # 2: no skin; T moves into the skin-type group, the arrow keys choose, Shift+0 cannot assess
    page.keyboard.press("n")
    page.keyboard.press("t")
    assert page.evaluate("document.activeElement.name") == "skin_type"
    page.keyboard.press("ArrowDown")
    assert page.locator('input[name="skin_type"]:checked').count() == 1
    page.keyboard.press("Shift+Digit0")
    assert page.is_checked("#skin-type-0") and page.is_checked("#decision-no_skin")
    page.keyboard.press("Enter")  # Enter on the radio group saves, as elsewhere on the page
    wait_ready(page, queue[2])
    assert saved(live_server, queue[1]) == ("no_skin", 0, [0])
    # 3: the second question is optional
    page.keyboard.press("h")
    page.keyboard.press("Enter")
    wait_ready(page, queue[3])
    assert saved(live_server, queue[2]) == ("healthy_skin", None, [None])
    # back to image 1: its skin type is shown again; changing only it is a new version
    page.keyboard.press("[")
    wait_ready(page, queue[2])
    page.keyboard.press("[")
    wait_ready(page, queue[1])
    page.keyboard.press("[")
    wait_ready(page, queue[0])
    assert page.is_checked("#skin-type-4") and page.is_checked("#decision-healthy_skin")
    page.keyboard.press("Shift+Digit5")
    page.keyboard.press("Enter")
    wait_ready(page, queue[3])  # on to the one image still unlabeled
    assert saved(live_server, queue[0]) == ("healthy_skin", 5, [4, 5])
    # the key help names the keys; my labels shows the answer in words
    assert "skin type I–VI" in page.text_content(".help")
    page.goto(f"{live_server.url}/my-labels")
    assert "Skin: Type V" in page.inner_text("#my-labels")
    assert "Skin: Cannot assess" in page.inner_text("#my-labels")


def test_the_question_at_390_px_is_accessible(axe_page, live_server, queue):
    page = axe_page
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, live_server, RATER)
    page.goto(f"{live_server.url}/items/{queue[0]}")
    wait_ready(page, queue[0])
    box = page.locator("#skin-type-question").bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.keyboard.press("Shift+Digit2")
    assert page.is_checked("#skin-type-2")
    assert axe_scan(page) == []
    page.set_viewport_size({"width": 2560, "height": 1440})
    assert page.evaluate("document.documentElement.scrollWidth") <= 2560
    assert page.locator("#skin-type-6").is_visible() and page.locator("#skin-type-0").is_visible()


def test_a_chosen_skin_type_can_be_cleared(browser_page, live_server, queue):
    """The question is optional, so a chosen answer can be taken back: by Shift+Backspace, by
    Delete inside the group, or by the button; saving then stores no skin type (a new version)."""
    page = browser_page
    sign_in(page, live_server, RATER)
    page.goto(f"{live_server.url}/items/{queue[0]}")
    wait_ready(page, queue[0])
    clear = page.locator("#skin-type-clear")
    assert not clear.is_visible()  # nothing chosen yet
    page.keyboard.press("h")
    page.keyboard.press("Shift+Digit3")
    assert page.is_checked("#skin-type-3") and clear.is_visible()
    page.keyboard.press("Shift+Backspace")
    assert page.locator('input[name="skin_type"]:checked').count() == 0
    assert not clear.is_visible() and page.is_checked("#decision-healthy_skin")
    # inside the group (T), Delete clears too and the focus stays in the group
    page.keyboard.press("Shift+Digit2")
    page.keyboard.press("t")
    page.keyboard.press("Delete")
    assert page.locator('input[name="skin_type"]:checked').count() == 0
    assert page.evaluate("document.activeElement.name") == "skin_type"
    # saved with a type, then reopened, cleared with the button and saved again: no skin type
    page.keyboard.press("Shift+Digit6")
    page.keyboard.press("Enter")
    wait_ready(page, queue[1])
    assert saved(live_server, queue[0]) == ("healthy_skin", 6, [6])
    page.keyboard.press("[")
    wait_ready(page, queue[0])
    assert page.is_checked("#skin-type-6")
    clear.click()
    assert page.locator('input[name="skin_type"]:checked').count() == 0
    page.locator("#submit").click()
    wait_ready(page, queue[1])
    assert saved(live_server, queue[0]) == ("healthy_skin", None, [6, None])
