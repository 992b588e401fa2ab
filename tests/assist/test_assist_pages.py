"""The pages: a lead's Model in the loop page (compute suggestions, pre-labeling, start and close a
study), links from the project, settings and home pages, and a rater reading through the page."""

from __future__ import annotations

import re

from assist_support import MODEL_ID
from sqlalchemy import select

from labeler.assist.models import ReaderStudy, StudyReading
from labeler.assist.studies import create_study


def _form(client, url, data):
    return client.post(url, data={"csrf_token": client.csrf, **data})


def test_lead_pages_and_links(db, assisted_project, client_for):
    lead, project, raters, _ = assisted_project
    client = client_for(lead)
    page = client.get(f"/projects/{project.id}/assist")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Pre-labeling" in text and "Reader studies" in text
    assert "No trained model of this project yet" in text  # the fixture's model is not on disk
    assert f"/projects/{project.id}/assist" in client.get(f"/projects/{project.id}").get_data(
        as_text=True
    )
    assert "Suggestions while labeling: off" in client.get(
        f"/projects/{project.id}/settings"
    ).get_data(as_text=True)
    # a model this server does not have: refused in words, nothing queued
    resp = _form(client, f"/projects/{project.id}/assist/suggestions", {"model_id": "nope"})
    assert resp.status_code == 422 and "nope" in resp.get_data(as_text=True)
    # a study from the page (the fixture's suggestions are stored), then closed
    resp = _form(
        client,
        f"/projects/{project.id}/reader-studies",
        {"model_id": MODEL_ID, "washout_days": "14", "seed": "4"},
    )
    assert resp.status_code == 302, resp.get_data(as_text=True)
    study = db.scalar(select(ReaderStudy).where(ReaderStudy.project_id == project.id))
    assert (study.washout_days, study.seed) == (14, 4)
    bad = _form(
        client,
        f"/projects/{project.id}/reader-studies",
        {"model_id": MODEL_ID, "washout_days": "two", "seed": "4"},
    )
    assert bad.status_code == 422 and "whole number" in bad.get_data(as_text=True)
    home = client_for(raters[0]).get("/").get_data(as_text=True)
    assert f"/projects/{project.id}/reader-study" in home
    resp = _form(client, f"/projects/{project.id}/reader-studies/{study.id}/close", {})
    assert resp.status_code == 302
    db.refresh(study)
    assert study.closed_at is not None
    assert f"/projects/{project.id}/reader-study" not in client_for(raters[0]).get("/").get_data(
        as_text=True
    )


def test_a_rater_reads_through_the_page(db, assisted_project, client_for):
    lead, project, raters, _ = assisted_project
    study = create_study(db, lead, project, model_id=MODEL_ID, washout_days=7, seed=2)
    db.commit()
    rater = raters[0]
    client = client_for(rater)
    url = f"/projects/{project.id}/reader-study"
    total = db.query(StudyReading).filter_by(study_id=study.id, rater_id=rater.id, phase=1).count()
    for n in range(total):
        page = client.get(url).get_data(as_text=True)
        assert f"image {n + 1} of {total}" in page
        action = re.search(r'action="([^"]*/reader-study/[^"]+)"', page).group(1)
        resp = _form(client, action, {"answer": "decision:no_skin"})
        assert resp.status_code == 302
    waiting = client.get(url).get_data(as_text=True)
    assert "The second opens on" in waiting and "washout" in waiting
    answered = db.scalars(
        select(StudyReading).where(
            StudyReading.study_id == study.id, StudyReading.rater_id == rater.id
        )
    ).all()
    assert sum(r.answered_at is not None for r in answered) == total
    assert {r.decision for r in answered if r.answered_at} == {"no_skin"}
    # nothing chosen: refused in words
    other = client_for(raters[1])
    page = other.get(url).get_data(as_text=True)
    action = re.search(r'action="([^"]*/reader-study/[^"]+)"', page).group(1)
    resp = _form(other, action, {})
    assert resp.status_code == 422 and "choose an answer" in resp.get_data(as_text=True)
