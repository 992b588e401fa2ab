"""The case API: next case, case detail, one submission per case or per photo, skip, refusals."""

from __future__ import annotations

import pytest

# ruff: noqa: F811  (fixtures imported from case_fixtures are used as arguments)
from case_fixtures import case_project, post_json, put_json  # noqa: F401
from sqlalchemy import select

from labeler.allocation.models import ItemStatus, QueueItem
from labeler.errors import Conflict
from labeler.labeling.models import Label, LabelRevision
from labeler.projects.services import update_settings

PER_CASE = {"cases": {"view": True, "unit": "case"}}
PER_IMAGE = {"cases": {"view": True, "unit": "image"}}


def _next(client, project):
    resp = client.get(f"/api/v1/projects/{project.id}/queue/next-case")
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["case"]


def test_next_case_holds_every_photo_of_the_case(db, case_project, client_for):
    project, raters, _images = case_project(cases={"a": 3, "b": 2}, singles=1, settings=PER_CASE)
    client = client_for(raters[0])
    case = _next(client, project)
    assert case["unit"] == "case" and case["status"] == "pending" and case["label"] is None
    sizes = {len(case["photos"])}
    assert len(case["photos"]) in (1, 2, 3)
    for photo in case["photos"]:
        assert photo["image_url"].endswith(f"/items/{photo['item']}/image")
        assert photo["body_site"] in ("face", "arm")
        assert photo["details"] == []  # the lead chose no columns
        img = client.get(photo["image_url"])
        img.close()
        assert img.status_code == 200 and img.headers["Cache-Control"] == "private, no-store"
    # every photo of the served case is stamped shown (it can no longer move)
    ids = [p["item"] for p in case["photos"]]
    shown = db.scalars(select(QueueItem.shown_at).where(QueueItem.public_id.in_(ids))).all()
    assert all(s is not None for s in shown)
    assert case["progress"] == {"cases": 3, "cases_done": 0, "photos": 6, "photos_done": 0}
    assert sizes


def test_per_case_answer_writes_one_label_per_photo_with_one_submission(
    db, case_project, client_for
):
    project, raters, _ = case_project(cases={"a": 3, "b": 2}, settings=PER_CASE)
    client = client_for(raters[0])
    case = _next(client, project)
    ids = [p["item"] for p in case["photos"]]
    body = {
        "items": ids,
        "answer": {"decision": "graded", "grade": 2},
        "base_version": 0,
        "submission_id": "s-1",
        "time_spent_ms": 3000,
    }
    resp = put_json(client, f"/api/v1/cases/{case['case']}/label?next=1", body)
    assert resp.status_code == 200, resp.get_json()
    out = resp.get_json()
    assert out["case"]["status"] == "done" and out["case"]["label"]["grade"] == 2
    assert out["next"] is not None and out["next"]["case"] not in ids
    labels = db.scalars(
        select(Label).where(Label.rater_id == raters[0].id).order_by(Label.id)
    ).all()
    assert len(labels) == len(ids)
    assert {(lbl.grade, lbl.version, lbl.submission_id) for lbl in labels} == {(2.0, 1, "s-1")}
    assert sum(lbl.time_spent_ms for lbl in labels) == 3000
    # a retry of the same submission changes nothing
    again = put_json(client, f"/api/v1/cases/{case['case']}/label", body)
    assert again.status_code == 200, again.get_json()
    assert db.scalar(select(LabelRevision.id).where(LabelRevision.version == 2)) is None
    # a change from the current version: every photo gets version 2, with its revision
    change = dict(
        body, answer={"decision": "graded", "grade": 3}, base_version=1, submission_id="s-2"
    )
    assert put_json(client, f"/api/v1/cases/{case['case']}/label", change).status_code == 200
    db.expire_all()
    assert {
        (lbl.grade, lbl.version)
        for lbl in db.scalars(select(Label).where(Label.rater_id == raters[0].id))
    } == {(3.0, 2)}
    # a stale edit (from version 1 again) is a 409 with the saved answer, nothing written
    stale = dict(change, answer={"decision": "graded", "grade": 1}, submission_id="s-3")
    resp = put_json(client, f"/api/v1/cases/{case['case']}/label", stale)
    assert resp.status_code == 409
    assert resp.get_json()["error"]["current"]["grade"] == 3


def test_per_case_refuses_a_single_photo_label_and_per_image_bodies(db, case_project, client_for):
    project, raters, _ = case_project(cases={"a": 3}, settings=PER_CASE)
    client = client_for(raters[0])
    case = _next(client, project)
    one = case["photos"][0]["item"]
    resp = put_json(client, f"/api/v1/items/{one}/label", {"decision": "graded", "grade": 2})
    assert resp.status_code == 409
    assert "case" in resp.get_json()["error"]["message"]
    ids = [p["item"] for p in case["photos"]]
    resp = put_json(
        client,
        f"/api/v1/cases/{one}/label",
        {"items": ids, "answers": {one: {"decision": "graded", "grade": 2}}},
    )
    assert resp.status_code == 422
    assert db.scalar(select(Label.id)) is None


def test_case_changed_meanwhile_saves_nothing(db, case_project, client_for):
    project, raters, _ = case_project(cases={"a": 3}, settings=PER_CASE)
    client = client_for(raters[0])
    case = _next(client, project)
    ids = [p["item"] for p in case["photos"]]
    body = {"items": ids[:2], "answer": {"decision": "graded", "grade": 2}}
    resp = put_json(client, f"/api/v1/cases/{case['case']}/label", body)
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "case_changed"
    assert db.scalar(select(Label.id)) is None
    # a photo of the case that fails validation: nothing of the case is saved
    bad = {"items": ids, "answer": {"decision": "graded", "grade": 99}}
    assert put_json(client, f"/api/v1/cases/{case['case']}/label", bad).status_code == 422
    assert db.scalar(select(Label.id)) is None


def test_per_image_answers_each_photo(db, case_project, client_for):
    project, raters, _ = case_project("quality", cases={"a": 3}, settings=PER_IMAGE)
    client = client_for(raters[0])
    case = _next(client, project)
    assert case["unit"] == "image" and case["label"] is None
    ids = [p["item"] for p in case["photos"]]
    answers = {
        ids[0]: {"decision": "no_skin"},
        ids[1]: {"decision": "poor_quality", "explanations": ["blurry"]},
    }
    resp = put_json(
        client, f"/api/v1/cases/{case['case']}/label", {"items": ids, "answers": answers}
    )
    assert resp.status_code == 422 and "photo 3" in resp.get_json()["error"]["message"]
    answers[ids[2]] = {"decision": "healthy_skin"}
    resp = put_json(
        client,
        f"/api/v1/cases/{case['case']}/label",
        {"items": ids, "answers": answers, "submission_id": "q1"},
    )
    assert resp.status_code == 200, resp.get_json()
    got = resp.get_json()["case"]
    assert [p["label"]["decision"] for p in got["photos"]] == [
        "no_skin",
        "poor_quality",
        "healthy_skin",
    ]
    assert got["status"] == "done"
    # per image, a photo may also be changed alone on the item route
    resp = put_json(
        client, f"/api/v1/items/{ids[0]}/label", {"decision": "healthy_skin", "base_version": 1}
    )
    assert resp.status_code == 200


def test_quality_cannot_answer_per_case(db, make_user, make_project, client_for):
    lead = make_user(None, "lead")
    project = make_project(lead, protocol="quality")
    client = client_for(lead)
    resp = client.patch(
        f"/api/v1/projects/{project.id}",
        json={"settings": PER_CASE},
        headers={"X-CSRFToken": client.csrf},
    )
    assert resp.status_code == 422
    assert "each photo" in resp.get_json()["error"]["message"]


def test_unit_cannot_change_once_labeled(db, case_project, client_for):
    project, raters, _ = case_project(cases={"a": 2}, settings=PER_CASE)
    rater = client_for(raters[0])
    case = _next(rater, project)
    ids = [p["item"] for p in case["photos"]]
    assert (
        put_json(
            rater,
            f"/api/v1/cases/{case['case']}/label",
            {"items": ids, "answer": {"decision": "graded", "grade": 1}},
        ).status_code
        == 200
    )
    with pytest.raises(Conflict, match="before labeling starts"):
        update_settings(db, None, project, {"cases": {"unit": "image"}})
    # other case settings may still change
    update_settings(db, None, project, {"cases": {"show": ["age"]}})


def test_skip_case_and_foreign_case(db, case_project, client_for):
    project, raters, _ = case_project(
        cases={"a": 2, "b": 2}, settings=PER_CASE, raters=2, overlap=1
    )
    mine = client_for(raters[0])
    other = client_for(raters[1])
    case = _next(mine, project)
    resp = post_json(mine, f"/api/v1/cases/{case['case']}/skip", {"reason": "later"})
    assert resp.status_code == 200 and resp.get_json()["case"]["status"] == "skipped"
    ids = [p["item"] for p in case["photos"]]
    statuses = db.scalars(select(QueueItem.status).where(QueueItem.public_id.in_(ids))).all()
    assert set(statuses) == {ItemStatus.skipped}
    # another rater's case is a plain 404, as is nonsense
    assert other.get(f"/api/v1/cases/{case['case']}").status_code == 404
    assert other.get("/api/v1/cases/" + "x" * 300).status_code == 404
    resp = put_json(
        other,
        f"/api/v1/cases/{case['case']}/label",
        {"items": ids, "answer": {"decision": "graded", "grade": 1}},
    )
    assert resp.status_code == 404


def test_hostile_bodies_are_4xx(db, case_project, client_for):
    project, raters, _ = case_project(cases={"a": 2}, settings=PER_CASE)
    client = client_for(raters[0])
    case = _next(client, project)
    url = f"/api/v1/cases/{case['case']}/label"
    for body in (
        {},
        {"items": "x"},
        {"items": [1, 2]},
        {"items": ["a"] * 101},
        {"items": [p["item"] for p in case["photos"]], "answer": "graded"},
        {
            "items": [p["item"] for p in case["photos"]],
            "answer": {"decision": "graded", "grade": 2},
            "base_version": -1,
        },
        {
            "items": [p["item"] for p in case["photos"]],
            "answer": {"decision": "graded", "grade": 2},
            "time_spent_ms": "x",
        },
        {
            "items": [p["item"] for p in case["photos"]],
            "answer": {"decision": "graded", "grade": 2},
            "submission_id": 5,
        },
    ):
        resp = put_json(client, url, body)
        assert 400 <= resp.status_code < 500, (body, resp.status_code)
    assert client.put(url, data="nope", headers={"X-CSRFToken": client.csrf}).status_code == 400
    # CSRF: a session write without the token is refused
    assert client.put(url, json={"items": []}).status_code in (400, 403)
    assert db.scalar(select(Label.id)) is None


def test_case_page_and_item_page_redirect(db, case_project, client_for):
    project, raters, _ = case_project(cases={"a": 3}, settings=PER_CASE)
    client = client_for(raters[0])
    item = db.scalar(select(QueueItem).where(QueueItem.rater_id == raters[0].id))
    resp = client.get(f"/items/{item.public_id}")
    assert resp.status_code == 302 and f"/cases/{item.public_id}" in resp.headers["Location"]
    page = client.get(f"/cases/{item.public_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="case-page"' in html and "One answer for the whole case" in html
    nxt = client.get(f"/projects/{project.id}/next-case")
    assert nxt.status_code == 302 and "/cases/" in nxt.headers["Location"]
    assert client_for(raters[1]).get(f"/cases/{item.public_id}").status_code == 404


def test_rater_removed_mid_case_saves_nothing(db, case_project, client_for):
    """The case moved away between showing and saving (its rater was removed from the project):
    a clear 404, and no label is written."""
    from labeler.allocation import services as allocation

    project, raters, _ = case_project(
        cases={"a": 3, "b": 3}, raters=2, overlap=1, settings=PER_CASE
    )
    client = client_for(raters[0])
    case = _next(client, project)
    ids = [p["item"] for p in case["photos"]]
    allocation.remove_rater(db, None, project, raters[0].email)
    db.commit()
    body = {"items": ids, "answer": {"decision": "graded", "grade": 2}}
    resp = put_json(client, f"/api/v1/cases/{case['case']}/label", body)
    assert resp.status_code == 404
    assert "queue" in resp.get_json()["error"]["message"]
    assert db.scalar(select(Label.id).where(Label.rater_id == raters[0].id)) is None


def test_skin_type_question_per_case_and_per_photo(db, case_project, client_for):
    project, raters, _ = case_project(
        cases={"a": 2}, settings={**PER_CASE, "ask_skin_type": True}, raters=1
    )
    client = client_for(raters[0])
    case = _next(client, project)
    ids = [p["item"] for p in case["photos"]]
    answer = {"decision": "graded", "grade": 3, "skin_type": 5}
    resp = put_json(client, f"/api/v1/cases/{case['case']}/label", {"items": ids, "answer": answer})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["case"]["label"]["skin_type"] == 5
    assert set(db.scalars(select(Label.skin_type))) == {5}
    # per photo (quality), each photo its own skin type; out of range is refused in words
    project, raters, _ = case_project(
        "quality", cases={"b": 2}, settings={**PER_IMAGE, "ask_skin_type": True}, raters=1
    )
    client = client_for(raters[0])
    case = _next(client, project)
    ids = [p["item"] for p in case["photos"]]
    bad = {ids[0]: {"decision": "no_skin", "skin_type": 9}, ids[1]: {"decision": "no_skin"}}
    resp = put_json(client, f"/api/v1/cases/{case['case']}/label", {"items": ids, "answers": bad})
    assert resp.status_code == 422
    good = {ids[0]: {"decision": "no_skin", "skin_type": 2}, ids[1]: {"decision": "no_skin"}}
    resp = put_json(client, f"/api/v1/cases/{case['case']}/label", {"items": ids, "answers": good})
    assert resp.status_code == 200
    assert [p["label"]["skin_type"] for p in resp.get_json()["case"]["photos"]] == [2, None]


def test_shown_columns_never_show_what_the_app_wrote_on_an_image(db, case_project, client_for):
    """'cases.show' names manifest columns; the prescreen model's verdict (meta 'prescreen') and the
    capture mark (meta 'captured') are the app's own, not the lead's columns: listing them shows
    nothing (raters would otherwise read a model's opinion the project does not offer them)."""
    from labeler.images.models import Image

    show = {"cases": {"view": True, "unit": "case", "show": ["age", "prescreen", "captured"]}}
    project, raters, images = case_project(cases={"a": 2}, settings=show, raters=1)
    for image in images:
        image.meta = {
            **image.meta,
            "prescreen": {"class": "poor_quality", "flagged": True, "probability": 0.9},
            "captured": True,
        }
    db.commit()
    assert db.get(Image, images[0].id).meta["prescreen"]["flagged"] is True
    case = _next(client_for(raters[0]), project)
    for photo in case["photos"]:
        assert photo["details"] == [{"name": "age", "value": "40-49"}]


def test_per_image_refusals_name_the_photo(db, case_project, client_for):
    """Per photo, a refused answer (off the scale, a stale version) says which photo it was, and
    nothing of the case is saved."""
    project, raters, _ = case_project(cases={"a": 3}, settings=PER_IMAGE, raters=1)
    client = client_for(raters[0])
    case = _next(client, project)
    ids = [p["item"] for p in case["photos"]]
    url = f"/api/v1/cases/{case['case']}/label"
    answers = {i: {"decision": "graded", "grade": 2} for i in ids}
    answers[ids[1]] = {"decision": "graded", "grade": 99}
    resp = put_json(client, url, {"items": ids, "answers": answers})
    message = resp.get_json()["error"]["message"]
    assert resp.status_code == 422 and message.startswith("Photo 2 of the case: "), message
    assert "off the scale" in message
    assert db.scalar(select(Label.id)) is None
    answers[ids[1]] = {"decision": "graded", "grade": 3}
    assert put_json(client, url, {"items": ids, "answers": answers}).status_code == 200
    again = {ids[2]: {"decision": "graded", "grade": 4, "base_version": 0}}  # stale: now 1
    resp = put_json(client, url, {"items": ids, "answers": again})
    message = resp.get_json()["error"]["message"]
    assert resp.status_code == 409 and message.startswith("Photo 3 of the case: "), message
