"""PUT/GET /api/v1/items/{id}/label, POST .../skip, GET /api/v1/icd10."""

# ruff: noqa: F811  (fixtures imported from labeling_fixtures are used as arguments)
from __future__ import annotations

import uuid

import pytest
from labeling_fixtures import make_item, severity_project  # noqa: F401  (fixtures)

LESION = {"decision": "lesion", "icd10": "L70.0"}


@pytest.fixture()
def rater_item(make_user, make_project, make_item, login_as):
    rater = make_user(None, "rater")
    project = make_project()
    item = make_item(rater, project)
    client = login_as(rater)
    return client, rater, project, item


def put(client, item, body, **extra):
    payload = {
        "base_version": 0,
        "submission_id": uuid.uuid4().hex,
        "time_spent_ms": 1200,
        **body,
        **extra,
    }
    return client.put(
        f"/api/v1/items/{item.public_id}/label", json=payload, headers={"X-CSRFToken": client.csrf}
    )


def test_put_returns_the_label_and_get_returns_label_history_and_queue(rater_item):
    client, _rater, _project, item = rater_item
    resp = put(client, item, LESION)
    assert resp.status_code == 200, resp.json
    body = resp.json
    assert body["item"] == item.public_id and body["version"] == 1
    assert (body["decision"], body["icd10"], body["icd10_name"]) == (
        "lesion",
        "L70.0",
        "Acne vulgaris",
    )
    assert "image_id" not in body and "rater_id" not in body
    resp = put(client, item, {"decision": "no_skin"}, base_version=1)
    assert resp.status_code == 200 and resp.json["version"] == 2
    got = client.get(f"/api/v1/items/{item.public_id}/label").json
    assert got["label"]["decision"] == "no_skin" and got["status"] == "done"
    assert [h["decision"] for h in got["history"]] == ["lesion", "no_skin"]
    assert got["queue"] == {"position": 1, "total": 1, "done": 1, "previous": None, "next": None}


def test_get_before_any_label(rater_item):
    client, _rater, _project, item = rater_item
    got = client.get(f"/api/v1/items/{item.public_id}/label").json
    assert got["label"] is None and got["history"] == [] and got["status"] == "pending"


@pytest.mark.parametrize(
    "body, message",
    [
        ({"decision": "poor_quality"}, "at least one explanation"),
        (
            {"decision": "lesion", "icd10": "L70.0", "explanations": ["blurry"]},
            "only for poor quality",
        ),
        ({"decision": "lesion", "icd10": "ZZZ.9"}, "unknown ICD-10 code"),
        ({"decision": "lesion"}, "a lesion needs a diagnosis"),
        ({"decision": "healthy_skin", "grade": 3}, "a grade does not belong"),
    ],
)
def test_invalid_input_is_422_with_a_clear_message_and_the_saved_label_survives(
    rater_item, body, message
):
    client, _rater, _project, item = rater_item
    assert put(client, item, LESION).status_code == 200
    resp = put(client, item, body, base_version=1)
    assert resp.status_code == 422
    assert resp.json["error"]["code"] == "invalid" and message in resp.json["error"]["message"]
    kept = client.get(f"/api/v1/items/{item.public_id}/label").json
    assert (
        kept["label"]["icd10"] == "L70.0"
        and kept["label"]["version"] == 1
        and len(kept["history"]) == 1
    )


def test_grade_off_the_scale_is_422(make_user, make_item, severity_project, login_as):
    rater = make_user(None, "rater")
    item = make_item(rater, severity_project)
    client = login_as(rater)
    resp = put(client, item, {"grade": 9})
    assert resp.status_code == 422 and "off the scale" in resp.json["error"]["message"]
    assert put(client, item, {"grade": 2}).json["grade"] == 2.0


def test_a_retry_with_the_same_submission_id_is_idempotent(rater_item):
    client, _rater, _project, item = rater_item
    first = put(client, item, LESION, submission_id="retry-me")
    second = put(client, item, LESION, submission_id="retry-me")
    assert first.status_code == second.status_code == 200
    assert second.json["version"] == 1
    assert len(client.get(f"/api/v1/items/{item.public_id}/label").json["history"]) == 1


def test_two_tabs_cannot_silently_overwrite_each_other(rater_item):
    client, _rater, _project, item = rater_item
    assert put(client, item, LESION, base_version=0).status_code == 200  # tab A
    resp = put(client, item, {"decision": "no_skin"}, base_version=0)  # tab B opened before A saved
    assert resp.status_code == 409
    assert resp.json["error"]["code"] == "conflict"
    assert (
        resp.json["error"]["current"]["decision"] == "lesion"
        and resp.json["error"]["current"]["version"] == 1
    )


def test_skip_with_an_optional_reason(rater_item, make_item):
    client, rater, project, item = rater_item
    later = make_item(rater, project)
    resp = client.post(
        f"/api/v1/items/{item.public_id}/skip",
        json={"reason": "too dark to judge"},
        headers={"X-CSRFToken": client.csrf},
    )
    assert resp.status_code == 200 and resp.json == {
        "item": item.public_id,
        "status": "skipped",
        "next": later.public_id,
    }
    resp = client.post(
        f"/api/v1/items/{later.public_id}/skip", headers={"X-CSRFToken": client.csrf}
    )
    assert resp.status_code == 200 and resp.json["status"] == "skipped"
    assert client.get(f"/api/v1/items/{item.public_id}/label").json["label"] is None


@pytest.mark.parametrize("method, suffix", [("get", "label"), ("put", "label"), ("post", "skip")])
def test_another_raters_item_is_404(make_user, make_project, make_item, login_as, method, suffix):
    owner, other = make_user(None, "rater"), make_user(None, "rater")
    item = make_item(owner, make_project())
    client = login_as(other)
    kwargs = {"headers": {"X-CSRFToken": client.csrf}}
    if method != "get":
        kwargs["json"] = {**LESION, "base_version": 0}
    resp = getattr(client, method)(f"/api/v1/items/{item.public_id}/{suffix}", **kwargs)
    assert resp.status_code == 404 and resp.json["error"]["code"] == "not_found"
    assert (
        getattr(client, method)(f"/api/v1/items/nonexistent/{suffix}", **kwargs).status_code == 404
    )


@pytest.mark.parametrize("roles", [("lead",), ("admin",)])
def test_leads_and_admins_do_not_label_through_the_item_api(
    make_user, make_project, make_item, login_as, roles
):
    owner = make_user(None, "rater")
    item = make_item(owner, make_project())
    client = login_as(make_user(None, *roles))
    assert client.get(f"/api/v1/items/{item.public_id}/label").status_code == 403


def test_writes_need_the_csrf_token_and_a_json_object(rater_item):
    client, _rater, _project, item = rater_item
    resp = client.put(f"/api/v1/items/{item.public_id}/label", json={**LESION, "base_version": 0})
    assert resp.status_code == 400
    resp = client.put(
        f"/api/v1/items/{item.public_id}/label",
        data="[1]",
        content_type="application/json",
        headers={"X-CSRFToken": client.csrf},
    )
    assert resp.status_code == 400 and resp.json["error"]["code"] == "bad_json"


def test_signed_out_gets_401(client, make_user, make_project, make_item):
    item = make_item(make_user(None, "rater"), make_project())
    assert client.get(f"/api/v1/items/{item.public_id}/label").status_code == 401
    assert client.get("/api/v1/icd10?q=acne").status_code == 401


def test_icd10_search_api(rater_item):
    client = rater_item[0]
    resp = client.get("/api/v1/icd10?q=acne%20vulg")
    assert resp.status_code == 200 and resp.json["results"][0] == {
        "code": "L70.0",
        "name": "Acne vulgaris",
    }
    assert client.get("/api/v1/icd10?q=L70&limit=3").json["results"][2]["code"] == "L70.1"
    assert client.get("/api/v1/icd10?q=").json["results"] == []


def test_the_labeling_page_is_the_raters_own(make_user, make_project, make_item, login_as):
    owner, other = make_user(None, "rater"), make_user(None, "rater")
    item = make_item(owner, make_project())
    client = login_as(owner)
    page = client.get(f"/items/{item.public_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert (
        'type="module"' in html and "<script>" not in html and "style=" not in html
    )  # CSP: no inline code
    client = login_as(other)
    assert client.get(f"/items/{item.public_id}").status_code == 404
    client = login_as(make_user(None, "lead"))
    assert client.get(f"/items/{item.public_id}").status_code == 403


def test_my_labels_page_lists_own_labels_with_links(rater_item, make_item):
    client, rater, project, item = rater_item
    make_item(rater, project)
    assert "not labeled any image" in client.get("/my-labels").get_data(as_text=True)
    put(client, item, {"decision": "poor_quality", "explanations": ["blurry", "bad_light"]})
    html = client.get("/my-labels").get_data(as_text=True)
    assert f"/items/{item.public_id}" in html and "Poor quality (Blurry, Bad light)" in html
