"""Decisions in words on every page a person reads (never 'no_skin'), the diagnoses behind a tie,
times labelled UTC, and a development sign-in shown as a sign-in."""

# ruff: noqa: F811  (fixtures imported from labeling_fixtures are used as arguments)
from __future__ import annotations

import re
import uuid

from labeling_fixtures import make_item  # noqa: F401  (fixture)

from labeler.images.models import Image
from labeler.labeling.services import submit_label
from labeler.protocols import decision_name
from labeler.protocols.explanations import explanation_name


def visible_text(html: str) -> str:
    """The page's text as a reader sees it (tags and attribute values dropped)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def label(db, rater, item, **body):
    data = {"decision": None, "icd10": None, "icd10_missing_text": None, "explanations": []}
    return submit_label(
        db,
        rater,
        item,
        {**data, **body},
        base_version=0,
        submission_id=uuid.uuid4().hex,
        time_spent_ms=1000,
    )


def test_names():
    assert decision_name("no_skin") == "No skin" and decision_name("cannot_assess").startswith(
        "Cannot"
    )
    assert explanation_name("too_far_away") == "Too far away"
    assert decision_name("some_new_class") == "Some new class"  # words, never the raw code


def test_ties_page_names_classes_and_shows_the_diagnoses(
    db, make_user, make_project, make_item, login_as
):
    lead = make_user(None, "lead")
    project = make_project(lead)
    raters = [make_user(None, "rater") for _ in range(3)]
    first = make_item(raters[0], project)
    image_id = first.image_id
    image = db.get(Image, image_id)
    items = [first] + [make_item(r, project, image=image) for r in raters[1:]]
    label(db, raters[0], items[0], decision="lesion", icd10="L70.0")
    label(db, raters[1], items[1], decision="lesion", icd10_missing_text="acne excoriée")
    label(db, raters[2], items[2], decision="no_skin")
    # a second image tied between healthy skin and poor quality
    other = make_item(raters[0], project)
    label(db, raters[0], other, decision="healthy_skin")
    label(
        db,
        raters[1],
        make_item(raters[1], project, image=db.get(Image, other.image_id)),
        decision="poor_quality",
        explanations=["blurry"],
    )
    db.flush()
    page = login_as(lead).get(f"/projects/{project.id}/ties").get_data(as_text=True)
    text = visible_text(page)
    for code in ("no_skin", "healthy_skin", "poor_quality"):
        assert code not in text, code
    assert "Healthy skin, Poor quality" in text  # the tied classes
    assert "Lesion: 2, No skin: 1" not in text  # not a tie: lesion has the plurality
    assert f"#{image_id}" not in text and f"#{other.image_id}" in text
    # the diagnoses behind lesion votes, on a tie that has them
    label(
        db,
        raters[2],
        make_item(raters[2], project, image=db.get(Image, other.image_id)),
        decision="lesion",
        icd10="L70.0",
    )
    db.flush()
    text = visible_text(login_as(lead).get(f"/projects/{project.id}/ties").get_data(as_text=True))
    assert "Diagnoses given: L70.0 Acne vulgaris × 1" in text
    assert "Lesion, Healthy skin, Poor quality" in text


def test_my_labels_page_names_answers_and_says_utc(
    db, make_user, make_project, make_item, login_as
):
    rater = make_user(None, "rater")
    item = make_item(rater, make_project())
    label(db, rater, item, decision="poor_quality", explanations=["too_far_away", "bad_light"])
    db.flush()
    text = visible_text(login_as(rater).get("/my-labels").get_data(as_text=True))
    assert "Poor quality (Too far away, Bad light)" in text
    assert "poor_quality" not in text and "too_far_away" not in text
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", text)


def _csrf(client) -> str:
    page = client.get("/auth/login").get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


def test_users_page_shows_a_development_sign_in_as_signed_in(client, db, make_user, login_as):
    admin = make_user(None, "admin")
    invited = make_user("invited@names.test", "rater")
    db.commit()
    client.get("/auth/login")
    resp = client.post("/auth/dev-login", data={"email": admin.email, "csrf_token": _csrf(client)})
    assert resp.status_code == 302  # the development sign-in: no Microsoft account bound
    text = visible_text(client.get("/admin/users").get_data(as_text=True))
    row_admin = text[text.index(admin.email) :][:300]
    row_invited = text[text.index(invited.email) :][:300]
    assert "signed in with the development sign-in" in row_admin and "UTC" in row_admin
    assert "invited, not signed in yet" in row_invited


def test_dashboard_names_classes_and_explanations(db, make_user, make_project, make_item, login_as):
    lead = make_user(None, "lead")
    project = make_project(lead)
    raters = [make_user(None, "rater", name=f"Rater {i}") for i in range(2)]
    answers = [
        {"decision": "no_skin"},
        {"decision": "healthy_skin"},
        {"decision": "poor_quality", "explanations": ["too_far_away"]},
        {"decision": "lesion", "icd10": "L70.0"},
    ]
    for k, answer in enumerate(answers):
        first = make_item(raters[0], project)
        second = make_item(raters[1], project, image=db.get(Image, first.image_id))
        label(db, raters[0], first, **answer)
        label(db, raters[1], second, **answers[(k + 1) % 4] if k % 2 else answer)
    db.flush()
    text = visible_text(
        login_as(lead).get(f"/projects/{project.id}/dashboard").get_data(as_text=True)
    )
    assert "Healthy skin" in text and "Too far away" in text
    for code in ("no_skin", "healthy_skin", "poor_quality", "too_far_away"):
        assert code not in text, code
