"""The labeling page in Chromium: both protocols by keyboard, zoom and pan, back and change, reload, skip, axe."""

from __future__ import annotations

import pytest
from browser_support.fixtures import axe_scan, sign_in
from browser_support.labeling_queue import queue_project, wait_ready
from sqlalchemy import delete, select

from labeler.allocation.models import ItemStatus, QueueItem
from labeler.auth.models import User
from labeler.demo import build_demo
from labeler.labeling.models import Label, LabelRevision
from labeler.projects.models import Project

pytestmark = pytest.mark.browser
RATER = "rater1@demo.test"


@pytest.fixture()
def demo(live_server):
    """The demo users and projects (6 images each), with every image queued for rater1 in image order."""
    storage = live_server.app.extensions["labeler_storage"]
    with live_server.session() as s:
        build_demo(s, storage, 6, checkpoint=s.flush)
        rater = s.scalar(select(User).where(User.email == RATER))
        # the demo allocates a shuffled queue; these tests want rater1 (who has no labels) to go in image order
        s.execute(delete(QueueItem).where(QueueItem.rater_id == rater.id))
        queues = {}
        for project in s.scalars(select(Project)):
            if project.protocol.value == "severity":
                project.settings = {**project.settings, "allow_non_graded": True}
            ids = queue_project(s, project, rater, project.protocol.value[:3])
            queues[project.protocol.value] = ids
    return queues


def open_item(page, server, public_id):
    page.goto(f"{server.url}/items/{public_id}")
    wait_ready(page, public_id)


def press_and_expect_next(page, key, next_id):
    page.keyboard.press(key)
    wait_ready(page, next_id)


def label_of(server, public_id):
    with server.session() as s:
        item = s.scalar(select(QueueItem).where(QueueItem.public_id == public_id))
        label = s.scalar(
            select(Label).where(Label.rater_id == item.rater_id, Label.image_id == item.image_id)
        )
        revisions = (
            []
            if label is None
            else s.scalars(
                select(LabelRevision)
                .where(LabelRevision.label_id == label.id)
                .order_by(LabelRevision.version)
            ).all()
        )
        return item, label, revisions


def scale(page):
    return float(page.get_attribute("#stage", "data-scale"))


def offset(page):
    return page.get_attribute("#stage", "data-offset")


def test_quality_protocol_by_keyboard(page_for_demo):
    page, server, q = page_for_demo("quality")
    # 1: lesion with an ICD-10 code found by words, picked and saved with Enter
    page.keyboard.press("l")
    assert page.evaluate("document.activeElement.id") == "icd10-input"
    page.keyboard.type("acne vulg")
    page.wait_for_selector("#icd10-list li[role=option]")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Enter")
    assert page.input_value("#icd10-input").startswith("L70.0")
    press_and_expect_next(page, "Enter", q[1])
    assert page.inner_text("#pos-text") == "Item 2 of 6"
    # 2: no skin
    page.keyboard.press("n")
    press_and_expect_next(page, "Enter", q[2])
    # 3: poor quality, blurry + bad light (an explanation key alone chooses poor quality)
    page.keyboard.press("b")
    page.keyboard.press("d")
    assert page.is_checked("#decision-poor_quality")
    press_and_expect_next(page, "Enter", q[3])
    # 4: ICD-10 missing, free text
    page.keyboard.press("m")
    assert page.evaluate("document.activeElement.id") == "icd10-missing-text"
    page.keyboard.type("acral pseudolymphoma")
    press_and_expect_next(page, "Enter", q[4])
    # 5: zoom and pan by keyboard (and wheel, drag), then healthy skin
    fitted = scale(page)
    page.keyboard.press("+")
    page.keyboard.press("+")
    assert scale(page) == pytest.approx(fitted * 1.5625, rel=1e-3)
    page.keyboard.press("z")
    assert scale(page) == 1.0
    before = offset(page)
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Shift+ArrowDown")
    assert offset(page) != before
    page.keyboard.press("w")  # fit the whole image (0 is a grade or skin-type key)
    assert scale(page) == pytest.approx(fitted)
    box = page.locator("#stage").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -400)
    page.wait_for_function(
        f"() => Number(document.getElementById('stage').dataset.scale) > {fitted * 1.2}"
    )
    before = offset(page)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 80, box["y"] + box["height"] / 2 + 40, steps=4)
    page.mouse.up()
    assert offset(page) != before
    page.keyboard.press("h")
    press_and_expect_next(page, "Enter", q[5])
    # 6: an invalid answer gets a clear message and stays; then fixed
    page.keyboard.press("p")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.getElementById('form-error').textContent.length > 0")
    assert "at least one explanation" in page.inner_text("#form-error")
    assert page.url.endswith(q[5])
    page.keyboard.press("a")
    page.keyboard.press("Enter")
    page.wait_for_selector("#all-done", state="visible")
    # back to 5, change the answer, then reload to find it kept
    page.keyboard.press("[")
    wait_ready(page, q[4])
    assert page.is_checked("#decision-healthy_skin")
    assert "version 1" in page.inner_text("#saved-note")
    page.keyboard.press("n")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => document.getElementById('status').textContent.includes('version 2')"
    )
    open_item(page, server, q[4])
    assert page.is_checked("#decision-no_skin") and "version 2" in page.inner_text("#saved-note")
    open_item(page, server, q[0])
    assert page.input_value("#icd10-input").startswith("L70.0 Acne vulgaris")

    _item, label, revs = label_of(server, q[0])
    assert (label.decision, label.icd10, label.version) == (
        "lesion",
        "L70.0",
        1,
    ) and label.time_spent_ms > 0
    assert label_of(server, q[2])[1].explanations == ["blurry", "bad_light"]
    assert label_of(server, q[3])[1].icd10_missing_text == "acral pseudolymphoma"
    item, label, revs = label_of(server, q[4])
    assert item.status is ItemStatus.done and [r.decision for r in revs] == [
        "healthy_skin",
        "no_skin",
    ]
    assert label_of(server, q[5])[1].explanations == ["too_far_away"]


def test_severity_protocol_by_keyboard_with_back_and_reload(page_for_demo):
    page, server, q = page_for_demo("severity")
    assert "Clear" in page.inner_text("label[for=grade-1]")
    page.keyboard.press("3")
    press_and_expect_next(page, "Enter", q[1])
    page.keyboard.press("5")
    press_and_expect_next(page, "Enter", q[2])
    page.keyboard.press("x")
    page.keyboard.press("r")
    press_and_expect_next(page, "Enter", q[3])
    page.keyboard.press("n")
    press_and_expect_next(page, "Enter", q[4])
    # back to item 4 (not acne) and change it to grade 2
    page.keyboard.press("[")
    wait_ready(page, q[3])
    assert page.is_checked("#decision-not_acne")
    page.keyboard.press("2")
    press_and_expect_next(page, "Enter", q[4])
    page.reload()
    wait_ready(page, q[4])
    open_item(page, server, q[3])
    assert page.is_checked("#grade-2")
    assert [(r.decision, r.grade) for r in label_of(server, q[3])[2]] == [
        ("not_acne", None),
        ("graded", 2.0),
    ]
    assert label_of(server, q[0])[1].grade == 3.0
    assert (label_of(server, q[2])[1].decision, label_of(server, q[2])[1].explanations) == (
        "cannot_assess",
        ["low_resolution"],
    )


def test_skip_with_a_reason_and_my_labels(page_for_demo):
    page, server, q = page_for_demo("quality")
    page.keyboard.press("s")
    assert page.evaluate("document.activeElement.id") == "skip-reason"
    page.keyboard.type("needs dermoscopy")
    press_and_expect_next(page, "Enter", q[1])
    item, label, _ = label_of(server, q[0])
    assert (
        item.status is ItemStatus.skipped
        and item.skip_reason == "needs dermoscopy"
        and label is None
    )
    page.keyboard.press("h")
    press_and_expect_next(page, "Enter", q[2])
    page.goto(f"{server.url}/my-labels")
    rows = page.locator("#my-labels tbody tr")
    assert rows.count() == 1 and "Healthy skin" in rows.first.inner_text()
    rows.first.locator("a").click()
    wait_ready(page, q[1])
    assert page.is_checked("#decision-healthy_skin")


def test_prefetched_next_image_paints_quickly(page_for_demo):
    page, _server, q = page_for_demo("severity")
    for i in range(1, 5):
        page.wait_for_timeout(
            150
        )  # let the prefetch of the next item finish, as a rater's look would
        page.keyboard.press(str(i))
        press_and_expect_next(page, "Enter", q[i])
    page.wait_for_timeout(100)
    timings = page.evaluate("window.labelingTimings")
    print(
        "submit key -> saved / next image painted (ms): "
        + ", ".join(f"{t['saved']:.0f}/{t['painted']:.0f}" for t in timings)
    )
    assert len(timings) == 4


@pytest.mark.parametrize("protocol", ["quality", "severity"])
def test_no_serious_accessibility_violations(page_for_demo, axe_page, protocol):
    page, _server, _q = page_for_demo(protocol, axe_page)
    violations = axe_scan(page)
    if protocol == "quality":  # also with the diagnosis block and the ICD-10 list open
        page.keyboard.press("l")
        page.keyboard.type("psoria")
        page.wait_for_selector("#icd10-list li[role=option]")
        violations += axe_scan(page)
        page.keyboard.press("Escape")
        page.keyboard.press("Escape")
        page.keyboard.press("p")
    else:
        page.keyboard.press("x")
    violations += axe_scan(page)
    assert not violations, [
        (v["id"], v["impact"], v["help"], [n["target"] for n in v["nodes"]]) for v in violations
    ]


@pytest.fixture()
def page_for_demo(request, live_server, demo):
    """Sign rater1 in and open the first item of a protocol's queue (in browser_page unless given a page)."""

    def _open(protocol, page=None):
        page = page or request.getfixturevalue("browser_page")
        sign_in(page, live_server, RATER)
        queue = demo[protocol]
        open_item(page, live_server, queue[0])
        return page, live_server, queue

    return _open
