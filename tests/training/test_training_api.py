"""Predict API (roles, bad input), training-run API, prescreen on import, dead workers shown as failed."""
# ruff: noqa: F811  (fixtures imported from training_fixtures are used as arguments)

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from training_fixtures import (  # noqa: F401
    build_quality_project,
    dark_blurry_jpeg,
    good_jpeg,
    ml_app,
    ml_root,
    quality_model,
)

from labeler.auth.services import create_token
from labeler.projects.models import MemberRole
from labeler.projects.services import add_member
from labeler.training.models import ModelKind, RunStatus, TrainingRun
from labeler.training.worker import execute_run


@pytest.fixture()
def world(ml_app, db, make_user, make_project, quality_model):
    """A lead's quality project owning the session's trained model; an outsider lead, a rater, an admin."""
    users = {r: make_user(None, r) for r in ("lead", "rater", "admin")}
    users["other"] = make_user(None, "lead")
    project = make_project(users["lead"])
    add_member(db, None, project, users["rater"], MemberRole.rater)
    make_project(users["other"])
    db.add(
        TrainingRun(
            project_id=project.id,
            kind=ModelKind.quality,
            status=RunStatus.succeeded,
            seed=0,
            done=1,
            total=1,
            model_id=quality_model.id,
            metrics={},
        )
    )
    tokens = {
        r: {"Authorization": f"Bearer {create_token(db, u, u, 't')[1]}"} for r, u in users.items()
    }
    db.flush()
    return project, users, tokens


def _predict(client, model_id, data, headers, **kw):
    return client.post(f"/api/v1/models/{model_id}/predict", data=data, headers=headers, **kw)


def test_predict_api(client, world, quality_model):
    _project, _users, tokens = world
    mid = quality_model.id
    resp = _predict(
        client,
        mid,
        {"image": (io.BytesIO(good_jpeg()), "a.jpg")},
        tokens["lead"],
        content_type="multipart/form-data",
    )
    assert resp.status_code == 200, resp.json
    body = resp.json
    assert body["model_id"] == mid and body["kind"] == "quality"
    assert body["class"] in body["probabilities"] and "cams" not in body
    assert all({"name", "probability", "threshold", "text"} <= set(i) for i in body["issues"])
    raw = _predict(
        client, mid, dark_blurry_jpeg(), {**tokens["admin"], "Content-Type": "image/jpeg"}
    )
    assert raw.status_code == 200 and raw.json["class"] == "poor_quality"
    assert raw.json["issues"] and raw.json["issues"][0]["text"]
    with_cams = _predict(client, mid + "", good_jpeg(), tokens["lead"], query_string={"cams": "1"})
    assert len(with_cams.json["cams"][with_cams.json["class"]]) == 7

    bad = _predict(client, mid, b"this is not an image", tokens["lead"])
    assert bad.status_code == 422 and bad.json["error"]["code"] == "bad_image"
    empty = _predict(client, mid, b"", tokens["lead"])
    assert empty.status_code == 400
    huge = _predict(client, mid, b"\xff" * (21 * 1024 * 1024), tokens["lead"])
    assert huge.status_code == 413
    assert (
        _predict(client, "quality-20260101T000000-abcdef", good_jpeg(), tokens["admin"]).status_code
        == 404
    )
    assert _predict(client, "../../etc", good_jpeg(), tokens["admin"]).status_code == 404

    assert (
        _predict(client, mid, good_jpeg(), tokens["rater"]).status_code == 403
    )  # raters label blind
    assert (
        _predict(client, mid, good_jpeg(), tokens["other"]).status_code == 403
    )  # not their project
    assert _predict(client, mid, good_jpeg(), {}).status_code in (400, 401)


def test_models_and_runs_api(ml_app, client, db, world, quality_model):
    project, _users, tokens = world
    resp = client.get(f"/api/v1/projects/{project.id}/models", headers=tokens["lead"])
    assert resp.status_code == 200 and [m["id"] for m in resp.json["models"]] == [quality_model.id]
    assert (
        client.get(f"/api/v1/projects/{project.id}/models", headers=tokens["other"]).status_code
        == 403
    )

    resp = client.post(
        f"/api/v1/projects/{project.id}/training-runs",
        json={"seed": 3, "epochs": 5},
        headers=tokens["lead"],
    )
    assert resp.status_code == 202, resp.json
    run = resp.json
    assert (
        run["status"] == "queued"
        and run["kind"] == "quality"
        and run["seed"] == 3
        and run["epochs"] == 5
    )
    again = client.post(
        f"/api/v1/projects/{project.id}/training-runs", json={}, headers=tokens["lead"]
    )
    assert again.status_code == 409 and again.json["error"]["run_id"] == run["id"]
    assert client.post(
        f"/api/v1/projects/{project.id}/training-runs", json={"epochs": 0}, headers=tokens["admin"]
    ).status_code in (409, 422)
    got = client.get(f"/api/v1/training-runs/{run['id']}", headers=tokens["admin"])
    assert got.status_code == 200 and got.json["id"] == run["id"]
    assert (
        client.get(f"/api/v1/training-runs/{run['id']}", headers=tokens["other"]).status_code == 403
    )
    assert client.get("/api/v1/training-runs/987654", headers=tokens["lead"]).status_code == 404
    assert (
        client.get(f"/api/v1/training-runs/{run['id']}", headers=tokens["rater"]).status_code == 403
    )


def test_a_run_whose_worker_died_is_shown_failed(ml_app, client, db, world):
    project, _users, tokens = world
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid that no longer runs
    import socket

    run = TrainingRun(
        project_id=project.id,
        kind=ModelKind.quality,
        status=RunStatus.running,
        seed=0,
        done=3,
        total=10,
        pid=proc.pid,
        host=socket.gethostname(),
    )
    db.add(run)
    db.flush()
    got = client.get(f"/api/v1/training-runs/{run.id}", headers=tokens["lead"]).json
    assert got["status"] == "failed" and f"pid {proc.pid}" in got["error"]
    page = client.get(f"/projects/{project.id}/models", headers=tokens["lead"]).get_data(
        as_text=True
    )
    assert "ended without finishing" in page


def test_execute_run_claims_a_queued_run_once(ml_app, db, make_user, world):
    from labeler.errors import LabelerError

    project, _users, _tokens = world
    run = TrainingRun(
        project_id=project.id,
        kind=ModelKind.quality,
        status=RunStatus.succeeded,
        seed=0,
        done=0,
        total=0,
    )
    db.add(run)
    db.flush()
    factory = ml_app.extensions["labeler_db"].session_factory
    with pytest.raises(LabelerError, match="not queued"):
        execute_run(factory, ml_app.config, ml_app.extensions["labeler_storage"], run.id)


def test_prescreen_flags_a_dark_blurry_image(ml_app, client, db, world, quality_model, login_as):
    project, users, tokens = world
    headers = tokens["lead"]
    # off by default: the import says nothing about a prescreen and stores nothing
    files = {"files": [(io.BytesIO(good_jpeg(1)), "plain.jpg")]}
    resp = client.post(
        f"/api/v1/projects/{project.id}/images",
        data=files,
        headers=headers,
        content_type="multipart/form-data",
    )
    assert resp.status_code == 201 and resp.json["prescreen"] == {"status": "off"}

    login_as(users["lead"])
    page = client.post(
        f"/projects/{project.id}/models/prescreen",
        data={"model_id": quality_model.id, "csrf_token": client.csrf},
    )
    assert page.status_code == 302
    files = {
        "files": [
            (io.BytesIO(good_jpeg(2)), "good.jpg"),
            (io.BytesIO(dark_blurry_jpeg()), "dark.jpg"),
        ]
    }
    resp = client.post(
        f"/projects/{project.id}/upload",
        data={**files, "csrf_token": client.csrf},
        content_type="multipart/form-data",
    )
    html = resp.get_data(as_text=True)
    assert (
        resp.status_code == 200 and 'id="prescreen"' in html and "flagged as poor quality" in html
    )

    from labeler.images.models import Image

    db.expire_all()
    dark = db.query(Image).filter_by(project_id=project.id, filename="dark.jpg").one()
    pre = dark.meta["prescreen"]
    assert pre["class"] == "poor_quality" and pre["flagged"] and pre["model_id"] == quality_model.id
    assert 0.25 < pre["probability"] <= 1
    listing = client.get(f"/projects/{project.id}/images?flagged=1").get_data(as_text=True)
    assert (
        "dark.jpg" in listing and "plain.jpg" not in listing and "Flagged: poor quality" in listing
    )
    assert "plain.jpg" in client.get(f"/projects/{project.id}/images").get_data(as_text=True)

    # a model that cannot be loaded: the import still succeeds and says why the prescreen was skipped
    settings = dict(project.settings)
    settings["prescreen_model_id"] = "quality-20260101T000000-abcdef"
    db.get(type(project), project.id).settings = settings
    db.flush()
    resp = client.post(
        f"/api/v1/projects/{project.id}/images",
        headers=headers,
        content_type="multipart/form-data",
        data={"files": [(io.BytesIO(good_jpeg(3)), "later.jpg")]},
    )
    assert resp.status_code == 201 and len(resp.json["imported"]) == 1
    assert (
        resp.json["prescreen"]["status"] == "skipped"
        and "unknown model id" in resp.json["prescreen"]["reason"]
    )


def test_prescreen_setting_is_validated(ml_app, client, db, world, login_as):
    project, users, _tokens = world
    login_as(users["lead"])
    resp = client.post(
        f"/projects/{project.id}/models/prescreen",
        data={"model_id": "quality-20260101T000000-abcdef", "csrf_token": client.csrf},
    )
    assert (
        resp.status_code == 422
        and "not a trained quality model of this project" in resp.get_data(as_text=True)
    )
    resp = client.post(
        f"/projects/{project.id}/models/prescreen", data={"model_id": "", "csrf_token": client.csrf}
    )
    assert resp.status_code == 302
