"""Each hostile input of issue 10 gets a fitting 4xx with a clear message (each used to answer 500).

Runs on SQLite and on PostgreSQL (int4 ids, NUL refused by the server); SQLite used to store NUL
bytes in names, so the tests also check that nothing was stored.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from labeler.auth.models import ApiToken, User
from labeler.labeling.models import Label
from labeler.projects.models import Project

DEEP = [50_000, 100_000]
NUL, SURROGATE = "a\x00b", "a\ud800b"


def bearer(everyone) -> dict:
    return {"Authorization": f"Bearer {everyone.token}"}


def send_json(client, method, url, text, headers):
    return client.open(
        url, method=method, data=text.encode(), content_type="application/json", headers=headers
    )


def error_of(resp) -> str:
    body = resp.get_json(silent=True)
    assert body and body["error"]["message"], resp.get_data(as_text=True)[:300]
    return body["error"]["message"]


def label_url(everyone) -> str:
    return f"/api/v1/items/{everyone.item.public_id}/label"


def count(db, stmt) -> int:
    return db.scalar(select(func.count()).select_from(stmt.subquery()))


@pytest.mark.parametrize("depth", DEEP)
@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_deeply_nested_json_is_400(client, everyone, depth, opener):
    closer = "]" if opener == "[" else "}"
    text = opener * depth + "1" + closer * depth
    for method, url in (("PUT", label_url(everyone)), ("POST", "/api/v1/projects")):
        resp = send_json(client, method, url, text, bearer(everyone))
        assert resp.status_code == 400
        assert "nested too deeply" in error_of(resp)


@pytest.mark.parametrize(
    "raw, status",
    [("NaN", 400), ("Infinity", 400), ("-Infinity", 400), ("1e400", 400)]
    + [('"10"', 422), ("-1", 422), ("true", 422), ("[]", 422)],
)
def test_time_spent_must_be_a_finite_number(client, db, everyone, raw, status):
    text = f'{{"decision": "no_skin", "base_version": 0, "time_spent_ms": {raw}}}'
    resp = send_json(client, "PUT", label_url(everyone), text, bearer(everyone))
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert error_of(resp)
    assert count(db, select(Label.id)) == 0


def test_time_spent_per_submission_is_capped(client, db, everyone):
    for version in range(3):
        text = f'{{"decision": "no_skin", "base_version": {version}, "time_spent_ms": {2**40}}}'
        resp = send_json(client, "PUT", label_url(everyone), text, bearer(everyone))
        assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["time_spent_ms"] == 3 * 3600 * 1000


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("PUT", "label", '{"decision": "lesion", "icd10_missing_text": "\\ud800"}'),
        ("POST", "skip", '{"reason": "\\udfff later"}'),
        ("POST", "/api/v1/projects", '{"name": "\\ud800", "protocol": "quality"}'),
        ("POST", "allocation/raters", '{"email": "x\\ud800@example.org"}'),
        ("POST", "/api/v1/projects", '{"\\ud800": 1, "name": "ok", "protocol": "quality"}'),
    ],
)
def test_lone_surrogates_are_400(client, db, everyone, method, path, body):
    url = {
        "label": label_url(everyone),
        "skip": f"/api/v1/items/{everyone.item.public_id}/skip",
        "allocation/raters": f"/api/v1/projects/{everyone.project.id}/allocation/raters",
    }.get(path, path)
    resp = send_json(client, method, url, body, bearer(everyone))
    assert resp.status_code == 400
    assert "surrogate" in error_of(resp)
    assert count(db, select(Project.id)) == 1


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/projects/2147483648/allocation",
        "/api/v1/projects/9223372036854775808/agreement",
        "/api/v1/projects/100000000000000000000/ties",
        "/api/v1/training-runs/2147483648",
        "/api/v1/projects/" + "9" * 5000 + "/models",
        "/api/v1/items/%00",
        "/api/v1/items/a%00b/label",
        "/api/v1/models/m%00/predict",
    ],
)
def test_impossible_ids_in_urls_are_404(client, everyone, url):
    method = "POST" if url.endswith("predict") else "GET"
    resp = client.open(url, method=method, headers=bearer(everyone))
    assert resp.status_code == 404, resp.get_data(as_text=True)[:300]
    assert error_of(resp)


@pytest.mark.parametrize("value", [2**31, 2**63, -(2**63) - 1, 10**20, 0, "null", "true"])
def test_impossible_ids_in_json_are_422(client, everyone, value):
    project_url = f"/api/v1/projects/{everyone.project.id}"
    # a tie is adjudicated at /ties/<image_id>: an id that cannot exist there is no such image
    resp = send_json(
        client, "POST", f"{project_url}/ties/{value}", '{"decision": "lesion"}', bearer(everyone)
    )
    assert resp.status_code == 404 and error_of(resp)
    resp = send_json(
        client,
        "POST",
        project_url + "/allocation",
        f'{{"raters": ["{everyone.user.email}"], "golden_image_ids": [{value}]}}',
        bearer(everyone),
    )
    assert resp.status_code == 422 and "golden_image_ids" in error_of(resp)


def test_a_page_number_past_the_end_shows_the_last_page(client, login_as, everyone):
    login_as(everyone.user)
    url = f"/projects/{everyone.project.id}/images"
    for page in (str(10**20), "9" * 5000, "-5", "x"):
        resp = client.get(f"{url}?page={page}")
        assert resp.status_code == 200, page


@pytest.mark.parametrize("bad", [NUL, "tab\x07", SURROGATE])
def test_nul_in_api_text_is_refused_and_nothing_stored(client, db, everyone, bad):
    headers = bearer(everyone)
    project_url = f"/api/v1/projects/{everyone.project.id}"
    cases = [
        ("PUT", label_url(everyone), {"decision": "lesion", "icd10_missing_text": bad}),
        ("PUT", label_url(everyone), {"decision": "lesion", "icd10": bad}),
        ("PUT", label_url(everyone), {"decision": "no_skin", "submission_id": bad}),
        ("POST", f"/api/v1/items/{everyone.item.public_id}/skip", {"reason": bad}),
        ("POST", "/api/v1/projects", {"name": bad, "protocol": "quality"}),
        ("POST", project_url + "/allocation/raters", {"email": f"{bad}@example.org"}),
        ("POST", project_url + "/allocation/raters/remove", {"email": f"{bad}@example.org"}),
        ("POST", project_url + "/allocation", {"raters": [f"{bad}@example.org"]}),
        ("POST", project_url + "/ties/1", {"decision": "x", "note": bad}),
    ]
    for method, url, body in cases:
        resp = client.open(url, method=method, json=body, headers=headers)
        assert 400 <= resp.status_code < 500, (url, body, resp.status_code)
        assert error_of(resp)
    assert count(db, select(Label.id)) == 0
    assert count(db, select(Project.id)) == 1
    assert everyone.item.skip_reason is None


@pytest.mark.parametrize("bad", [NUL, "bell\x07"])
def test_nul_in_form_text_is_refused_and_nothing_stored(client, db, login_as, everyone, bad):
    login_as(everyone.user)
    csrf = client.csrf
    forms = [
        ("/projects/new", {"name": f"Acne {bad}", "protocol": "quality"}),
        ("/admin/users", {"email": f"new{bad}@example.org", "name": "New", "role": "rater"}),
        ("/admin/users", {"email": "new@example.org", "name": f"New {bad}", "role": "rater"}),
        ("/account/tokens", {"name": f"ci {bad}", "expires_in_days": "30"}),
    ]
    for url, form in forms:
        resp = client.post(url, data={**form, "csrf_token": csrf})
        assert 400 <= resp.status_code < 500, (url, resp.status_code)
        assert "not allowed" in resp.get_data(as_text=True)
    assert count(db, select(Project.id)) == 1
    assert count(db, select(User.id).where(User.email.like("new%"))) == 0
    assert count(db, select(ApiToken.id).where(ApiToken.name.like("ci%"))) == 0


def test_nul_in_the_development_sign_in_is_refused(client, everyone):
    from helpers import csrf_from

    token = csrf_from(client)
    resp = client.post(
        "/auth/dev-login", data={"email": "boss\x00@hostile.test", "csrf_token": token}
    )
    assert 400 <= resp.status_code < 500
    assert "not allowed" in resp.get_data(as_text=True)


def test_json_bodies_past_1_mb_are_413_with_a_clear_message(client, db, everyone):
    text = '{"decision": "lesion", "icd10_missing_text": "' + "x" * (1024 * 1024) + '"}'
    resp = send_json(client, "PUT", label_url(everyone), text, bearer(everyone))
    assert resp.status_code == 413
    assert "1 MB at most" in error_of(resp)
    assert count(db, select(Label.id)) == 0


def test_forms_past_1_mb_get_a_413_page(client, login_as, everyone):
    login_as(everyone.user)
    resp = client.post(
        "/projects/new",
        data={"name": "x" * (1024 * 1024 + 1), "protocol": "quality", "csrf_token": client.csrf},
    )
    assert resp.status_code == 413
    assert resp.mimetype == "text/html" and "1 MB at most" in resp.get_data(as_text=True)


def _multipart(size: int) -> tuple[bytes, str]:
    """A multipart body built here: the test client spools large ones to a file it never closes."""
    boundary = "hostile-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + b"\x00" * size
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_a_long_form_field_under_the_limit_is_too_long_not_too_large(client, login_as, everyone):
    login_as(everyone.user)
    resp = client.post(
        "/projects/new",
        data={"name": "x" * 700_000, "protocol": "quality", "csrf_token": client.csrf},
    )
    assert resp.status_code == 422 and "too long" in resp.get_data(as_text=True)


def test_upload_routes_take_large_bodies_up_to_their_own_limit(app, client, everyone):
    url = f"/api/v1/projects/{everyone.project.id}/images"
    body, ctype = _multipart(3 * 1024 * 1024)
    resp = client.post(url, data=body, content_type=ctype, headers=bearer(everyone))
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]  # read, refused as no image
    assert resp.get_json()["rejected"]
    app.config["MAX_UPLOAD_BYTES"] = 2 * 1024 * 1024
    resp = client.post(url, data=body, content_type=ctype, headers=bearer(everyone))
    assert resp.status_code == 413 and "2 MB at most" in error_of(resp)
