"""The labeling page's rough edges (issue 15), in Chromium: the ICD-10 field drops text never
picked and says when nothing matches, a failed save hands the keys back to the shortcuts, "Saved"
and "Skipped" survive the next image with an Undo that reopens the image, the project is named."""

# ruff: noqa: F811  (fixtures imported from test_labeling_browser are used as arguments)
from __future__ import annotations

import pytest
from test_labeling_browser import (  # noqa: F401  (fixtures)
    demo,
    label_of,
    page_for_demo,
    press_and_expect_next,
    wait_ready,
)

from labeler.projects.models import Project

pytestmark = pytest.mark.browser


def active_id(page):
    return page.evaluate("document.activeElement.id")


def test_icd10_field_drops_stale_text_and_says_no_match(page_for_demo):
    page, server, _q = page_for_demo("quality")
    with server.session() as s:
        name = s.query(Project).filter_by(protocol="quality").one().name
    assert page.inner_text("#project-name") == name
    page.keyboard.press("l")
    page.keyboard.type("xyzq")
    page.wait_for_selector("#icd10-input-note", state="visible")
    assert "No ICD-10 code matches “xyzq”" in page.inner_text("#icd10-input-note")
    page.keyboard.press("Escape")
    page.keyboard.press("n")
    page.keyboard.press("l")
    assert active_id(page) == "icd10-input"
    page.keyboard.type("acne")
    page.wait_for_selector("#icd10-list li[role=option]")
    assert page.input_value("#icd10-input") == "acne"
    assert page.is_hidden("#icd10-input-note")
    # abbreviations find their code
    page.fill("#icd10-input", "")
    page.keyboard.type("BCC")
    page.wait_for_selector("#icd10-list li[data-code='C44.91']")


def test_failed_save_gives_the_keys_back_to_the_shortcuts(page_for_demo):
    page, server, q = page_for_demo("quality")
    page.keyboard.press("l")
    page.keyboard.type("qqqq")
    page.wait_for_selector("#icd10-input-note", state="visible")
    page.keyboard.press("Enter")  # no match to pick: the form is sent and refused
    page.wait_for_function("() => document.getElementById('form-error').textContent.length > 0")
    assert active_id(page) != "icd10-input"
    page.keyboard.press("h")  # a shortcut again, not a letter in the field
    assert page.is_checked("#decision-healthy_skin")
    assert "h" not in page.input_value("#icd10-input")
    press_and_expect_next(page, "Enter", q[1])
    assert label_of(server, q[0])[1].decision == "healthy_skin"


def test_saved_and_skipped_notices_survive_the_next_image_and_undo_reopens(page_for_demo):
    page, server, q = page_for_demo("quality")
    page.keyboard.press("h")
    press_and_expect_next(page, "Enter", q[1])
    page.wait_for_timeout(400)  # well after the next image is painted
    assert page.is_visible("#notice")
    assert page.inner_text("#notice span") == "Saved: Healthy skin (image 1)."
    assert "healthy_skin" not in page.inner_text("#labeling")
    page.click("#undo")
    wait_ready(page, q[0])
    assert page.is_checked("#decision-healthy_skin") and page.is_hidden("#notice")
    page.keyboard.press("n")  # change it: a second version, the first kept
    press_and_expect_next(page, "Enter", q[1])
    _item, label, revisions = label_of(server, q[0])
    assert label.decision == "no_skin" and [r.decision for r in revisions] == [
        "healthy_skin",
        "no_skin",
    ]
    assert page.inner_text("#notice span") == "Saved: No skin (image 1)."
    page.keyboard.press("s")
    page.keyboard.press("Enter")
    wait_ready(page, q[2])
    page.wait_for_timeout(300)
    assert "Skipped image 2" in page.inner_text("#notice span")
    page.click("#undo")
    wait_ready(page, q[1])
