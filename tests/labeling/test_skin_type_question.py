"""The skin-type second question: the project setting, submitting it with the label (API and
service), its revisions, and the rater's labels in words."""

# ruff: noqa: F811  (fixtures imported from labeling_fixtures are used as arguments)
from __future__ import annotations

import uuid

import pytest
from labeling_fixtures import make_item, severity_project  # noqa: F401  (fixtures)
from sqlalchemy import select

from labeler.labeling.models import Label, LabelRevision
from labeler.protocols import skin_type_question


@pytest.fixture()
def asking(db, make_user, make_project, make_item, login_as):
    """A quality project that asks the skin type, a rater with one item, signed in."""
    rater = make_user(None, "rater")
    project = make_project()
    project.settings = {**project.settings, "ask_skin_type": True}
    db.flush()
    item = make_item(rater, project)
    return login_as(rater), rater, project, item


def put(client, item, body, base_version=0):
    payload = {"base_version": base_version, "submission_id": uuid.uuid4().hex, **body}
    return client.put(
        f"/api/v1/items/{item.public_id}/label", json=payload, headers={"X-CSRFToken": client.csrf}
    )


def test_the_skin_type_is_saved_with_the_label_and_kept_in_every_revision(db, asking):
    client, rater, _project, item = asking
    resp = put(client, item, {"decision": "healthy_skin", "skin_type": 4})
    assert resp.status_code == 200, resp.json
    assert resp.json["skin_type"] == 4 and resp.json["decision"] == "healthy_skin"
    # changing only the skin type is a new version; "cannot assess" is stored as 0
    resp = put(client, item, {"decision": "healthy_skin", "skin_type": 0}, base_version=1)
    assert resp.status_code == 200 and resp.json["version"] == 2 and resp.json["skin_type"] == 0
    # the question is optional: a label without it stores NULL
    resp = put(client, item, {"decision": "no_skin"}, base_version=2)
    assert resp.status_code == 200 and resp.json["skin_type"] is None
    got = client.get(f"/api/v1/items/{item.public_id}/label").json
    assert [(h["version"], h["skin_type"]) for h in got["history"]] == [(1, 4), (2, 0), (3, None)]
    label = db.scalar(select(Label).where(Label.rater_id == rater.id))
    assert label.skin_type is None
    revs = db.scalars(
        select(LabelRevision.skin_type)
        .where(LabelRevision.label_id == label.id)
        .order_by(LabelRevision.version)
    ).all()
    assert revs == [4, 0, None]


@pytest.mark.parametrize(
    "value",
    # "²" and "¹" are digits to str.isdigit() that int() refuses: they answered 500
    [7, -1, 2.5, "VII", True, [3], "type 3", "\u00b2", " \u00b9 ", "x" * 10_000],
)
def test_an_answer_out_of_range_is_refused_in_words(asking, value):
    client, _rater, _project, item = asking
    resp = put(client, item, {"decision": "no_skin", "skin_type": value})
    assert resp.status_code == 422, resp.json
    message = resp.json["error"]["message"]
    assert "Fitzpatrick I to VI" in message and "cannot assess" in message
    assert len(message) < 200  # the refused value is quoted, not echoed whole
    assert client.get(f"/api/v1/items/{item.public_id}/label").json["label"] is None


def test_the_answer_is_refused_when_the_project_does_not_ask_it(
    make_user, make_project, make_item, login_as
):
    rater = make_user(None, "rater")
    project = make_project()  # the setting is off by default
    item = make_item(rater, project)
    client = login_as(rater)
    resp = put(client, item, {"decision": "no_skin", "skin_type": 3})
    assert resp.status_code == 422
    assert "does not ask the skin type" in resp.json["error"]["message"]
    assert put(client, item, {"decision": "no_skin", "skin_type": None}).status_code == 200


def test_severity_projects_ask_it_too(db, severity_project, make_user, make_item, login_as):
    severity_project.settings = {**severity_project.settings, "ask_skin_type": True}
    db.flush()
    rater = make_user(None, "rater")
    item = make_item(rater, severity_project)
    client = login_as(rater)
    resp = put(client, item, {"decision": "graded", "grade": 3, "skin_type": "6"})
    assert resp.status_code == 200 and resp.json["skin_type"] == 6 and resp.json["grade"] == 3


def test_settings_api_turns_the_question_on_and_refuses_bad_values(
    make_user, make_project, login_as
):
    lead = make_user(None, "lead")
    project = make_project(lead)
    client = login_as(lead)
    url = f"/api/v1/projects/{project.id}"
    headers = {"X-CSRFToken": client.csrf}
    got = client.get(f"/api/v1/projects/{project.id}").json
    assert got["settings"]["ask_skin_type"] is False  # the default, shown
    resp = client.patch(url, json={"settings": {"ask_skin_type": "yes"}}, headers=headers)
    assert resp.status_code == 422 and "true or false" in resp.json["error"]["message"]
    resp = client.patch(url, json={"settings": {"ask_skin_type": True}}, headers=headers)
    assert resp.status_code == 200, resp.json
    assert client.get(f"/api/v1/projects/{project.id}").json["settings"]["ask_skin_type"] is True


def test_only_quality_and_severity_projects_can_ask_it():
    from labeler.errors import ValidationError
    from labeler.projects.settings import merge_settings, read_settings

    assert read_settings({}).ask_skin_type is False
    new = merge_settings("severity", {}, {"ask_skin_type": True})
    assert read_settings(new).ask_skin_type is True
    with pytest.raises(ValidationError, match="only image quality and severity"):
        merge_settings("skin_type", {}, {"ask_skin_type": True})
    assert skin_type_question.can_ask("quality") and not skin_type_question.can_ask("skin_type")


def test_settings_page_and_cli_turn_it_on(db, make_user, make_project, login_as, runner):
    lead = make_user(None, "lead")
    project = make_project(lead)
    client = login_as(lead)
    page = client.get(f"/projects/{project.id}/settings").get_data(as_text=True)
    assert 'name="ask_skin_type"' in page and "Fitzpatrick" in page
    form = {
        "csrf_token": client.csrf,
        "method": "plurality",
        "explanation_k": "1",
        "tie_policy": "unresolved",
        "min_pair_images": "1",
        "min_group_images": "30",
        "min_eval_images": "20",
        "skin_type_question_shown": "1",
        "ask_skin_type": "1",
    }
    resp = client.post(f"/projects/{project.id}/settings", data=form)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    db.refresh(project)
    assert project.settings["ask_skin_type"] is True
    form.pop("ask_skin_type")  # an unticked box turns it off
    assert client.post(f"/projects/{project.id}/settings", data=form).status_code == 302
    db.refresh(project)
    assert project.settings["ask_skin_type"] is False
    res = runner.invoke(
        args=["projects", "settings", str(project.id), "--set", '{"ask_skin_type": true}']
    )
    assert res.exit_code == 0, res.output
    db.refresh(project)
    assert project.settings["ask_skin_type"] is True
    res = runner.invoke(
        args=["projects", "settings", str(project.id), "--set", '{"ask_skin_type": 2}']
    )
    assert res.exit_code != 0 and "true or false" in res.output


def test_my_labels_and_the_labeling_page_show_it_in_words(db, asking):
    client, _rater, _project, item = asking
    resp = client.get(f"/items/{item.public_id}")
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200, page[page.find("<main") :]
    assert 'id="skin-type-question"' in page and "<legend" in page and "Type VI" in page
    assert put(client, item, {"decision": "no_skin", "skin_type": 5}).status_code == 200
    mine = client.get("/my-labels").get_data(as_text=True)
    assert "Type V" in mine and "Type VI" not in mine


def test_the_question_is_absent_when_the_setting_is_off(
    make_user, make_project, make_item, login_as
):
    rater = make_user(None, "rater")
    item = make_item(rater, make_project())
    page = login_as(rater).get(f"/items/{item.public_id}").get_data(as_text=True)
    assert 'id="skin-type-question"' not in page


def test_answer_names():
    assert skin_type_question.answer_name(3) == "Type III"
    assert skin_type_question.answer_name(0) == "Cannot assess"
    assert skin_type_question.answer_name(None) == ""
    keys = [c["key"] for c in skin_type_question.form_spec()["choices"]]
    assert keys == ["1", "2", "3", "4", "5", "6", "0"]
