"""The quality check's settings and model file (who may fetch them, what they say), the case
upload (case id, body site, EXIF stripped, limits refused in words) and the pages' headers."""
# ruff: noqa: F811  (fixtures imported from capture_fixtures are used as arguments)

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from capture_fixtures import (  # noqa: F401
    ml_app,
    ml_root,
    quality_model,
    skin_photo,
    trained_run,
    with_exif_gps,
)
from PIL import Image as PILImage

from labeler.images.models import Image
from labeler.projects.models import MemberRole
from labeler.projects.services import add_member


@pytest.fixture()
def world(ml_app, db, make_user, make_project, quality_model):
    """A lead's quality project owning the session's model; a rater of it; an outsider lead."""
    lead, rater, outsider = (
        make_user(None, "lead"),
        make_user(None, "rater"),
        make_user(None, "lead"),
    )
    project = make_project(lead)
    add_member(db, None, project, rater, MemberRole.rater)
    db.add(trained_run(project.id, quality_model.id))
    db.flush()
    return project, {"lead": lead, "rater": rater, "outsider": outsider}


def test_the_lead_gets_the_models_settings_and_file(client, world, login_as, quality_model):
    project, users = world
    login_as(users["lead"])
    resp = client.get(f"/projects/{project.id}/quality-check")
    cfg = resp.json
    folder = Path(quality_model.path)
    labels = json.loads((folder / "labels.json").read_text())
    thresholds = json.loads((folder / "thresholds.json").read_text())
    assert resp.status_code == 200 and cfg["available"] and cfg["model_id"] == quality_model.id
    assert cfg["input"]["shape"] == [1, 224, 224, 3] and cfg["input"]["name"] == "image"
    assert [c["name"] for c in cfg["classes"]] == labels["classes"]
    assert {c["name"]: c["acceptable"] for c in cfg["classes"]}["poor_quality"] is False
    by_name = {e["name"]: e for e in cfg["explanations"]}
    assert [e["name"] for e in cfg["explanations"]] == labels["explanations"]
    assert {n: e["threshold"] for n, e in by_name.items()} == thresholds
    assert by_name["blurry"]["words"] == "Blurry"
    assert by_name["blurry"]["advice"] == labels["explanation_text"]["blurry"]
    assert cfg["runtime_url"].endswith("/onnxruntime-web/dist/ort.wasm.min.mjs")
    model = client.get(cfg["model_url"])
    assert model.status_code == 200 and model.data == (folder / "model.onnx").read_bytes()
    assert model.headers["Cache-Control"] == "private, no-cache"
    model.close()
    again = client.get(cfg["model_url"], headers={"If-None-Match": model.headers["ETag"]})
    again.close()
    assert again.status_code == 304
    page = client.get(f"/projects/{project.id}/capture")
    assert page.status_code == 200 and "Capture a case for" in page.get_data(as_text=True)


@pytest.mark.parametrize("who", ["rater", "outsider"])
def test_others_may_not_capture_nor_fetch_the_model(client, world, login_as, quality_model, who):
    project, users = world
    login_as(users[who])
    base = f"/projects/{project.id}"
    for url in (
        f"{base}/capture",
        f"{base}/quality-check",
        f"{base}/quality-check/{quality_model.id}.onnx",
    ):
        assert client.get(url).status_code == 403, url
    resp = client.post(
        f"{base}/capture",
        data={"photos": [(io.BytesIO(skin_photo(1)), "a.jpg")]},
        headers={"X-CSRFToken": client.csrf, "Accept": "application/json"},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 403


def test_only_the_projects_current_model_is_served(client, db, world, login_as, make_project):
    project, users = world
    login_as(users["lead"])
    assert (
        client.get(
            f"/projects/{project.id}/quality-check/quality-20260101T000000-abcdef.onnx"
        ).status_code
        == 404
    )
    assert client.get(f"/projects/{project.id}/quality-check/..%2Fmodel.onnx").status_code == 404
    # a project without a model: the browser is told why, in words; the file is not there
    bare = make_project(users["lead"])
    cfg = client.get(f"/projects/{bare.id}/quality-check").json
    assert cfg["available"] is False and "No quality model has been trained" in cfg["reason"]
    assert "uploaded without a quality check" in cfg["reason"]
    severity = make_project(users["lead"], protocol="severity")
    cfg = client.get(f"/projects/{severity.id}/quality-check").json
    assert cfg["available"] is False and "its protocol has no quality model" in cfg["reason"]


def test_a_missing_model_folder_reads_unavailable(client, db, world, login_as, make_project):
    _project, users = world
    other = make_project(users["lead"])
    db.add(trained_run(other.id, "quality-20250101T000000-abcdef"))  # its folder is gone
    db.flush()
    login_as(users["lead"])
    assert client.get(f"/projects/{other.id}/quality-check").json["available"] is False


def _post_case(client, project, photos, **form):
    return client.post(
        f"/projects/{project.id}/capture",
        data={**form, "photos": [(io.BytesIO(b), n) for n, b in photos]},
        headers={"X-CSRFToken": client.csrf, "Accept": "application/json"},
        content_type="multipart/form-data",
    )


def test_a_case_is_imported_with_its_case_id_and_body_site(client, db, world, login_as):
    project, users = world
    login_as(users["lead"])
    photos = [
        ("IMG_1.jpg", with_exif_gps(skin_photo(1))),
        ("IMG_2.jpg", skin_photo(2)),
        ("IMG_3.jpg", skin_photo(3)),
    ]
    resp = _post_case(client, project, photos, body_site=" left   forearm ", case_id="")
    body = resp.json
    assert resp.status_code == 201 and len(body["imported"]) == 3, body
    assert body["case_id"].startswith("case-") and "3 imported" in body["summary"]
    db.expire_all()
    rows = db.query(Image).filter_by(project_id=project.id).order_by(Image.id).all()
    assert {r.case_id for r in rows} == {body["case_id"]}
    assert {r.body_site for r in rows} == {"left forearm"}
    assert all(r.meta.get("captured") for r in rows)
    storage = client.application.extensions["labeler_storage"]
    with storage.open(rows[0].display_key) as fh:
        shown = PILImage.open(io.BytesIO(fh.read()))
    assert not shown.getexif()  # no name, no GPS in what raters see
    # the same photo again is a duplicate; a typed case id is kept
    again = _post_case(client, project, photos[:1] + [("new.jpg", skin_photo(4))], case_id="C-17")
    assert again.status_code == 201 and again.json["case_id"] == "C-17"
    assert len(again.json["duplicates"]) == 1 and len(again.json["imported"]) == 1


def test_bad_cases_are_refused_in_words(client, db, world, login_as):
    project, users = world
    login_as(users["lead"])
    four = [(f"p{i}.jpg", skin_photo(10 + i)) for i in range(4)]
    resp = _post_case(client, project, four)
    assert resp.status_code == 422 and "at most 3 photos" in resp.json["error"]["message"]
    resp = _post_case(client, project, [])
    assert resp.status_code == 400 and "at least one photo" in resp.json["error"]["message"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.jpg", skin_photo(20))
    resp = _post_case(client, project, [("photos.zip", buf.getvalue())])
    assert resp.status_code == 422 and "not .zip archives" in resp.json["error"]["message"]
    resp = _post_case(client, project, [("x.jpg", skin_photo(21))], body_site="x" * 101)
    assert resp.status_code == 422 and "body site is too long" in resp.json["error"]["message"]
    resp = _post_case(client, project, [("x.jpg", b"<?php system($_GET['c']); ?>")])
    assert (
        resp.status_code == 200 and resp.json["imported"] == [] and len(resp.json["rejected"]) == 1
    )
    assert db.query(Image).filter_by(project_id=project.id).count() == 0
    no_csrf = client.post(
        f"/projects/{project.id}/capture",
        data={"photos": [(io.BytesIO(skin_photo(22)), "y.jpg")]},
        headers={"Accept": "application/json"},
        content_type="multipart/form-data",
    )
    assert no_csrf.status_code == 400


def test_pages_that_run_the_model_allow_wasm_and_every_answer_is_isolated(client, world, login_as):
    project, users = world
    login_as(users["lead"])
    for url in (f"/projects/{project.id}/capture", f"/projects/{project.id}/upload"):
        resp = client.get(url)
        assert "script-src 'self' 'wasm-unsafe-eval';" in resp.headers["Content-Security-Policy"], (
            url
        )
    for url in (f"/projects/{project.id}", "/static/css/app.css", "/auth/login", "/nowhere"):
        resp = client.get(url)
        resp.close()
        assert "wasm-unsafe-eval" not in resp.headers["Content-Security-Policy"], url
        assert resp.headers["Cross-Origin-Opener-Policy"] == "same-origin", url
        assert resp.headers["Cross-Origin-Embedder-Policy"] == "require-corp", url


@pytest.mark.parametrize("name", ["photos.zip ", "photos.zip\u200b", "folder\\photos.ZIP\x07"])
def test_a_zip_under_a_disguised_name_is_refused_too(client, db, world, login_as, name):
    """The import cleans a file name (control and format characters, spaces, folders) before it
    decides what is a .zip archive; the capture page's refusal must judge the same cleaned name,
    else an archive of any number of photos came in as one case."""
    project, users = world
    login_as(users["lead"])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(5):
            z.writestr(f"p{i}.jpg", skin_photo(40 + i))
    resp = _post_case(client, project, [(name, buf.getvalue())])
    assert resp.status_code == 422 and "not .zip archives" in resp.json["error"]["message"]
    assert db.query(Image).filter_by(project_id=project.id).count() == 0
