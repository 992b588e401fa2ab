"""Skin type as a project's protocol: created from the page, the API and the CLI; labeled through
the API and the labeling page (keys 1-6 and 0); answers named in words on My labels."""

# ruff: noqa: F811  (fixtures imported from labeling_fixtures are used as arguments)
from __future__ import annotations

import re
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "labeling"))
from labeling_fixtures import make_item  # noqa: F401  (fixture)

from labeler.projects.models import Project, Protocol


def put(client, item, body, version=0):
    payload = {
        "base_version": version,
        "submission_id": uuid.uuid4().hex,
        "time_spent_ms": 900,
        **body,
    }
    return client.put(
        f"/api/v1/items/{item.public_id}/label", json=payload, headers={"X-CSRFToken": client.csrf}
    )


@pytest.fixture()
def skin_item(make_user, make_project, make_item, login_as):
    rater = make_user(None, "rater")
    project = make_project(None, protocol="skin_type")
    item = make_item(rater, project)
    return login_as(rater), project, item


def test_the_page_creates_a_skin_type_project(db, make_user, login_as):
    client = login_as(make_user(None, "lead"))
    page = client.get("/projects/new").get_data(as_text=True)
    assert 'value="skin_type"' in page and "Fitzpatrick skin type" in page
    resp = client.post(
        "/projects/new",
        data={"csrf_token": client.csrf, "name": "Skin types", "protocol": "skin_type"},
    )
    assert resp.status_code == 302
    project = db.scalar(select(Project).where(Project.name == "Skin types"))
    assert project.protocol is Protocol("skin_type")
    assert "scale" not in project.settings and "allow_non_graded" not in project.settings
    for url in (f"/projects/{project.id}", "/projects", "/"):
        text = client.get(url).get_data(as_text=True)
        assert "Fitzpatrick skin type" in text and "skin_type" not in text.replace(
            'value="skin_type"', ""
        ), url


def test_the_api_creates_one_and_refuses_an_unknown_protocol_in_words(make_user, login_as):
    client = login_as(make_user(None, "lead"))
    headers = {"X-CSRFToken": client.csrf}
    resp = client.post(
        "/api/v1/projects", json={"name": "API skin", "protocol": "skin_type"}, headers=headers
    )
    assert resp.status_code == 201, resp.json
    assert resp.json["protocol"] == "skin_type"
    bad = client.post(
        "/api/v1/projects", json={"name": "API bad", "protocol": "fitzpatrick"}, headers=headers
    )
    assert bad.status_code == 422
    assert "Fitzpatrick skin type" in bad.json["error"]["message"]


def test_the_cli_creates_one(runner, db):
    res = runner.invoke(args=["projects", "create", "CLI skin", "--protocol", "skin_type"])
    assert res.exit_code == 0, res.output
    project = db.get(Project, int(res.output.strip()))
    assert project.protocol is Protocol("skin_type")


def test_a_rater_answers_a_type_or_cannot_assess(skin_item):
    client, _project, item = skin_item
    resp = put(client, item, {"decision": "graded", "grade": 3})
    assert resp.status_code == 200, resp.json
    assert (resp.json["decision"], resp.json["grade"]) == ("graded", 3.0)
    resp = put(client, item, {"decision": "cannot_assess"}, version=1)
    assert resp.status_code == 200 and resp.json["grade"] is None
    for body, field in (
        ({"decision": "graded", "grade": 7}, "grade"),
        ({"decision": "graded", "grade": 0}, "grade"),
        ({"decision": "not_acne"}, "decision"),
        ({"decision": "graded", "grade": 2, "explanations": ["blurry"]}, "explanations"),
    ):
        bad = put(client, item, body, version=2)
        assert bad.status_code == 422, body
        assert bad.json["error"]["field"] == field
        assert bad.json["error"]["message"]


def test_the_labeling_page_shows_the_skin_type_form_by_keys(skin_item):
    client, _project, item = skin_item
    resp = client.get(f"/items/{item.public_id}")
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200, page[-2000:]
    keys = re.findall(r'name="decision"[^>]*data-key="(\w)"', page)
    assert keys == ["1", "2", "3", "4", "5", "6", "0"]
    assert "Fitzpatrick skin type" in page and "always burns" in page
    assert "Not acne" not in page and "Lesion" not in page
    assert "fit the whole image" in page  # 0 is a skin type key; fitting the image moved to W


def test_my_labels_names_the_type(skin_item):
    client, _project, item = skin_item
    assert put(client, item, {"grade": 4}).status_code == 200
    page = client.get("/my-labels").get_data(as_text=True)
    assert "Type IV" in page
    assert re.search(r'<option value="graded"\s*>Skin type</option>', page)  # the filter


def test_settings_and_models_pages_of_a_skin_type_project(make_user, make_project, login_as):
    lead = make_user(None, "lead")
    project = make_project(lead, protocol="skin_type")
    client = login_as(lead)
    page = client.get(f"/projects/{project.id}/settings")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Fitzpatrick skin type protocol" in text
    assert "Severity scale" not in text and "Prescreen on import" not in text
    assert "When classes tie" not in text
    # a skin-type project refuses the settings of other protocols, in words
    resp = client.patch(
        f"/api/v1/projects/{project.id}",
        json={"settings": {"scale": [{"value": 1, "name": "a"}, {"value": 2, "name": "b"}]}},
        headers={"X-CSRFToken": client.csrf},
    )
    assert resp.status_code == 422
    assert "acne severity projects" in resp.json["error"]["message"]
    models = client.get(f"/projects/{project.id}/models").get_data(as_text=True)
    assert "no bundled model" in models and 'name="kind"' not in models
    resp = client.post(
        f"/api/v1/projects/{project.id}/training-runs",
        json={},
        headers={"X-CSRFToken": client.csrf},
    )
    assert resp.status_code == 422
    assert "no bundled model" in resp.json["error"]["message"]
