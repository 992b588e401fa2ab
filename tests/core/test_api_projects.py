"""API v1: projects and image upload, bearer tokens, CSRF, JSON errors."""

from __future__ import annotations

import io
import zipfile

from PIL import Image as PILImage

from labeler.auth.services import create_token


def jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", (64, 48), (seed, 20, 30)).save(buf, "JPEG")
    return buf.getvalue()


def bearer(db, user) -> dict:
    _t, raw = create_token(db, user, user, "test")
    db.flush()
    return {"Authorization": f"Bearer {raw}"}


def test_unauthenticated_is_401_json(client):
    resp = client.get("/api/v1/projects")
    assert resp.status_code == 401
    assert resp.json["error"]["code"] == "unauthorized"


def test_create_and_list_with_bearer(client, db, make_user):
    lead = make_user(None, "lead")
    headers = bearer(db, lead)
    resp = client.post(
        "/api/v1/projects", json={"name": "Acne 2026", "protocol": "severity"}, headers=headers
    )
    assert resp.status_code == 201, resp.json
    assert resp.json["protocol"] == "severity"
    assert resp.json["settings"]["scale"][0] == {"value": 1, "name": "Clear"}
    listing = client.get("/api/v1/projects", headers=headers).json["projects"]
    assert [p["name"] for p in listing] == ["Acne 2026"]


def test_create_project_errors(client, db, make_user):
    lead = make_user(None, "lead")
    headers = bearer(db, lead)
    bad = client.post(
        "/api/v1/projects", json={"name": "X", "protocol": "dermoscopy"}, headers=headers
    )
    assert bad.status_code == 422 and "protocol" in bad.json["error"]["message"]
    assert client.post("/api/v1/projects", data="not json", headers=headers).status_code == 400
    assert (
        client.post(
            "/api/v1/projects", json={"name": "X", "protocol": "quality"}, headers=headers
        ).status_code
        == 201
    )
    dup = client.post(
        "/api/v1/projects", json={"name": "x", "protocol": "quality"}, headers=headers
    )
    assert dup.status_code == 409 and dup.json["error"]["code"] == "conflict"


def test_rater_cannot_create_project(client, db, make_user):
    rater = make_user(None, "rater")
    resp = client.post(
        "/api/v1/projects", json={"name": "X", "protocol": "quality"}, headers=bearer(db, rater)
    )
    assert resp.status_code == 403


def test_session_writes_need_csrf(client, make_user, login_as):
    lead = make_user(None, "lead")
    login_as(lead)
    no_token = client.post("/api/v1/projects", json={"name": "P", "protocol": "quality"})
    assert no_token.status_code == 400 and "csrf" in no_token.json["error"]["message"].lower()
    ok = client.post(
        "/api/v1/projects",
        json={"name": "P", "protocol": "quality"},
        headers={"X-CSRFToken": client.csrf},
    )
    assert ok.status_code == 201


def test_revoked_or_unknown_token_refused(client, db, make_user):
    from labeler.auth.services import revoke_token

    lead = make_user(None, "lead")
    token, raw = create_token(db, lead, lead, "t")
    revoke_token(db, lead, token.id)
    db.flush()
    assert (
        client.get("/api/v1/projects", headers={"Authorization": f"Bearer {raw}"}).status_code
        == 401
    )
    assert (
        client.get("/api/v1/projects", headers={"Authorization": "Bearer lbl_nope"}).status_code
        == 401
    )


def test_token_last_used_is_stamped(client, db, make_user):
    lead = make_user(None, "lead")
    token, raw = create_token(db, lead, lead, "t")
    db.flush()
    assert token.last_used_at is None
    client.get("/api/v1/projects", headers={"Authorization": f"Bearer {raw}"})
    db.refresh(token)
    assert token.last_used_at is not None


def test_upload_images_api(client, db, make_user, make_project):
    lead = make_user(None, "lead")
    project = make_project(lead)
    headers = bearer(db, lead)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("z1.jpg", jpeg(1))
        zf.writestr("z2.jpg", jpeg(2))
    data = {
        "files": [
            (io.BytesIO(jpeg(3)), "a.jpg"),
            (io.BytesIO(b"nope"), "b.jpg"),
            (io.BytesIO(archive.getvalue()), "batch.zip"),
        ]
    }
    resp = client.post(
        f"/api/v1/projects/{project.id}/images",
        data=data,
        headers=headers,
        content_type="multipart/form-data",
    )
    assert resp.status_code == 201, resp.json
    body = resp.json
    assert len(body["imported"]) == 3 and all(r["id"] for r in body["imported"])
    assert [r["filename"] for r in body["rejected"]] == ["b.jpg"]
    again = client.post(
        f"/api/v1/projects/{project.id}/images",
        data={"files": [(io.BytesIO(jpeg(3)), "a.jpg")]},
        headers=headers,
        content_type="multipart/form-data",
    )
    assert again.status_code == 200 and len(again.json["duplicates"]) == 1


def test_upload_errors(client, db, make_user, make_project):
    lead = make_user(None, "lead")
    other_lead = make_user(None, "lead")
    project = make_project(lead)
    resp = client.post(
        f"/api/v1/projects/{project.id}/images",
        data={},
        headers=bearer(db, lead),
        content_type="multipart/form-data",
    )
    assert resp.status_code == 400 and resp.json["error"]["code"] == "no_files"
    assert (
        client.post("/api/v1/projects/999999/images", headers=bearer(db, lead)).status_code == 404
    )
    forbidden = client.post(
        f"/api/v1/projects/{project.id}/images",
        headers=bearer(db, other_lead),
        data={"files": [(io.BytesIO(jpeg(1)), "a.jpg")]},
        content_type="multipart/form-data",
    )
    assert forbidden.status_code == 403


def test_upload_too_large_is_413(app, client, db, make_user, make_project):
    lead = make_user(None, "lead")
    project = make_project(lead)
    app.config["MAX_UPLOAD_BYTES"] = 1000
    resp = client.post(
        f"/api/v1/projects/{project.id}/images",
        headers=bearer(db, lead),
        data={"files": [(io.BytesIO(b"x" * 5000), "a.jpg")]},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 413 and resp.json["error"]["code"]


def test_openapi_describes_every_api_route(app, client):
    doc = client.get("/api/v1/openapi.json").json
    assert doc["openapi"].startswith("3.")
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        path = rule.rule.replace("<int:", "{").replace("<", "{").replace(">", "}")
        import re

        path = re.sub(r"\{(?:\w+:)?(\w+)\}", r"{\1}", path)
        assert path in doc["paths"], f"{rule.rule} is missing from the OpenAPI document"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in doc["paths"][path], (
                f"{method} {rule.rule} is missing from the OpenAPI document"
            )
