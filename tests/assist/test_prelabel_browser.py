"""The labeling page with pre-labeling on, in Chromium: the model's suggestion beside the image on
every item, marked as the model's, following the shown item through the unchanged keyboard flow."""

from __future__ import annotations

import re

import pytest
from browser_support.fixtures import sign_in
from sqlalchemy import select

from labeler.allocation.models import QueueItem
from labeler.assist.models import JobStatus, Suggestion, SuggestionJob
from labeler.auth.models import User
from labeler.demo import build_demo
from labeler.images.models import Image
from labeler.labeling.models import Label
from labeler.projects.models import Project

pytestmark = pytest.mark.browser
RATER = "rater1@demo.test"
MODEL = "quality-20261130T000000-brws01"


@pytest.fixture()
def prelabeled(live_server):
    """The demo's quality project with a suggestion stored for every image and pre-labeling on;
    rater1's queue in order, and each image's expected words."""
    storage = live_server.app.extensions["labeler_storage"]
    with live_server.session() as s:
        build_demo(s, storage, 6, checkpoint=s.flush)
        project = s.scalar(select(Project).where(Project.protocol == "quality"))
        rater = s.scalar(select(User).where(User.email == RATER))
        words = {}
        for k, image_id in enumerate(
            s.scalars(select(Image.id).where(Image.project_id == project.id).order_by(Image.id))
        ):
            p = round(0.5 + k / 100, 2)
            answer = {
                "class": "poor_quality",
                "probability": p,
                "issues": [{"name": "blurry", "probability": 0.82}],
            }
            s.add(
                Suggestion(image_id=image_id, model_id=MODEL, project_id=project.id, answer=answer)
            )
            words[image_id] = f"Model suggests: Poor quality ({p:.2f}) — blurry (0.82)"
        s.add(SuggestionJob(project_id=project.id, model_id=MODEL, status=JobStatus.succeeded))
        project.settings = {**project.settings, "suggestions_model_id": MODEL}
        items = s.scalars(
            select(QueueItem)
            .where(QueueItem.rater_id == rater.id, QueueItem.project_id == project.id)
            .order_by(QueueItem.position)
        ).all()
        return [(it.public_id, words[it.image_id], it.image_id) for it in items]


def test_the_suggestion_follows_the_item(browser_page, live_server, prelabeled):
    page = browser_page
    first, second = prelabeled[0], prelabeled[1]
    sign_in(page, live_server, RATER, f"/items/{first[0]}")
    page.wait_for_selector('#labeling[data-ready="true"]', state="attached")
    box = page.locator("#suggestion")
    assert box.is_visible()
    assert page.locator("#suggestion-text").inner_text() == first[1]
    assert "AI MODEL" in box.inner_text().upper() and "not a rater's" in box.inner_text()
    # the keyboard flow as without suggestions: N (no skin), Enter saves and shows the next item
    page.keyboard.press("n")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"/items/{second[0]}$"))
    page.wait_for_function(
        "(t) => document.getElementById('suggestion-text').textContent === t", arg=second[1]
    )
    assert box.is_visible()
    with live_server.session() as s:
        rater = s.scalar(select(User).where(User.email == RATER))
        label = s.scalar(
            select(Label).where(Label.image_id == first[2], Label.rater_id == rater.id)
        )
        assert label.decision == "no_skin" and label.assisted and label.suggestion_model_id == MODEL
    # back to the first item: its own suggestion again
    page.keyboard.press("[")
    page.wait_for_url(re.compile(rf"/items/{first[0]}$"))
    page.wait_for_function(
        "(t) => document.getElementById('suggestion-text').textContent === t", arg=first[1]
    )
    page.wait_for_load_state("networkidle")  # the page's prefetch settles before the context closes
