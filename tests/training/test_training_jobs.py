"""Training runs as jobs: cancel, run again, and the heartbeat that turns a silent worker's run failed
(the Celery worker end to end is in test_training_celery.py)."""
# ruff: noqa: F811  (fixtures imported from training_fixtures are used as arguments)

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from celery_fixtures import free_port
from helpers import login
from sqlalchemy import select
from training_fixtures import build_quality_project, committed_app, ml_app, ml_root  # noqa: F401

from labeler.audit.models import AuditEvent
from labeler.auth.models import Role
from labeler.auth.services import add_user, create_token
from labeler.db import utcnow
from labeler.projects.models import MemberRole
from labeler.projects.services import add_member
from labeler.training.models import ModelKind, RunStatus, TrainingRun
from labeler.training.worker import execute_run


@pytest.fixture()
def runs_world(ml_app, db, make_user, make_project):
    users = {r: make_user(None, r) for r in ("lead", "rater")}
    users["other"] = make_user(None, "lead")
    project = make_project(users["lead"])
    add_member(db, None, project, users["rater"], MemberRole.rater)
    tokens = {
        r: {"Authorization": f"Bearer {create_token(db, u, u, 't')[1]}"} for r, u in users.items()
    }
    db.flush()
    return project, users, tokens


def _run(db, project, status, **kw) -> TrainingRun:
    run = TrainingRun(
        project_id=project.id, kind=ModelKind.quality, status=status, seed=0, done=0, total=0, **kw
    )
    db.add(run)
    db.flush()
    return run


def _events(db, run_id):
    return list(
        db.scalars(
            select(AuditEvent.action).where(
                AuditEvent.object_type == "training_run", AuditEvent.object_id == str(run_id)
            )
        )
    )


def test_cancel_then_run_again_through_the_api(client, db, runs_world):
    project, _users, tokens = runs_world
    run = _run(db, project, RunStatus.queued)
    url = f"/api/v1/training-runs/{run.id}"

    assert client.post(url + "/cancel", headers=tokens["rater"]).status_code == 403
    assert client.post(url + "/cancel", headers=tokens["other"]).status_code in (403, 404)
    assert db.get(TrainingRun, run.id).status is RunStatus.queued

    resp = client.post(url + "/cancel", headers=tokens["lead"])
    assert resp.status_code == 200, resp.json
    assert resp.json["status"] == "cancelled" and "cancelled by" in resp.json["error"]
    again = client.post(url + "/cancel", headers=tokens["lead"])
    assert (
        again.status_code == 409
        and "only a queued or running run" in again.json["error"]["message"]
    )

    resp = client.post(url + "/retry", headers=tokens["lead"])
    assert resp.status_code == 202, resp.json
    assert resp.json["status"] == "queued" and resp.json["error"] is None
    assert client.get(url, headers=tokens["lead"]).json["status"] == "queued"
    # a queued run cannot be run again, and a second run of the project cannot start beside it
    assert client.post(url + "/retry", headers=tokens["lead"]).status_code == 409
    assert _events(db, run.id) == ["training.cancel", "training.retry"]


def test_a_finished_run_is_neither_cancelled_nor_rerun(client, db, runs_world):
    project, _users, tokens = runs_world
    run = _run(db, project, RunStatus.succeeded, model_id="q-abc")
    url = f"/api/v1/training-runs/{run.id}"
    assert client.post(url + "/cancel", headers=tokens["lead"]).status_code == 409
    resp = client.post(url + "/retry", headers=tokens["lead"])
    assert (
        resp.status_code == 409
        and "only a failed or cancelled run" in resp.json["error"]["message"]
    )
    assert db.get(TrainingRun, run.id).model_id == "q-abc"
    assert (
        client.post("/api/v1/training-runs/999999/cancel", headers=tokens["lead"]).status_code
        == 404
    )


def test_rerun_waits_for_the_projects_run_in_flight(client, db, runs_world):
    project, _users, tokens = runs_world
    failed = _run(db, project, RunStatus.failed, error="boom")
    _run(db, project, RunStatus.running, heartbeat_at=utcnow())
    resp = client.post(f"/api/v1/training-runs/{failed.id}/retry", headers=tokens["lead"])
    assert resp.status_code == 409 and "still in progress" in resp.json["error"]["message"]
    assert db.get(TrainingRun, failed.id).status is RunStatus.failed


def test_a_silent_worker_reads_failed_after_the_heartbeat_timeout(client, db, runs_world, ml_app):
    project, _users, tokens = runs_world
    ml_app.config["ML_HEARTBEAT_TIMEOUT_S"] = 30
    fresh = _run(db, project, RunStatus.running, heartbeat_at=utcnow() - timedelta(seconds=5))
    got = client.get(f"/api/v1/training-runs/{fresh.id}", headers=tokens["lead"]).json
    assert got["status"] == "running" and got["error"] is None
    fresh.heartbeat_at = utcnow() - timedelta(seconds=31)
    fresh.host = "gpu-worker-7"
    db.flush()
    got = client.get(f"/api/v1/training-runs/{fresh.id}", headers=tokens["lead"]).json
    assert got["status"] == "failed"
    assert "stopped reporting" in got["error"] and "gpu-worker-7" in got["error"]
    # the page offers to run it again, and doing so records the failure as the previous error
    page = client.get(f"/projects/{project.id}/models", headers=tokens["lead"]).get_data(
        as_text=True
    )
    assert "stopped reporting" in page


def test_models_page_cancels_with_csrf(app, db, runs_world, ml_app):

    project, users, _tokens = runs_world
    run = _run(db, project, RunStatus.queued)
    client = app.test_client()
    login(client, users["lead"])
    page = client.get(f"/projects/{project.id}/models").get_data(as_text=True)
    assert f"Cancel run {run.id}</button>" in page
    url = f"/projects/{project.id}/training-runs/{run.id}/cancel"
    assert client.post(url, data={}).status_code == 400  # no CSRF token
    assert db.get(TrainingRun, run.id).status is RunStatus.queued
    resp = client.post(url, data={"csrf_token": client.csrf})
    assert resp.status_code == 302
    db.expire_all()
    assert db.get(TrainingRun, run.id).status is RunStatus.cancelled
    page = client.get(f"/projects/{project.id}/models").get_data(as_text=True)
    assert f"Run {run.id} again</button>" in page


def test_the_heartbeat_moves_and_notices_a_cancel(committed_app):
    import os
    import socket

    from labeler.training.worker import _Heartbeat

    app = committed_app
    factory = app.extensions["labeler_db"].session_factory
    with factory() as s:
        lead = add_user(s, None, "lead@beat.test", "Lead", {Role.lead})
        s.flush()
        project, _ids = build_quality_project(
            s, app.extensions["labeler_storage"], lead, n=8, golden=2, seed=6
        )
        start = utcnow() - timedelta(seconds=100)
        run = _run(
            s,
            project,
            RunStatus.running,
            pid=os.getpid(),
            host=socket.gethostname(),
            heartbeat_at=start,
        )
        s.commit()
        run_id = run.id
    beat = _Heartbeat(factory, run_id, 0.05)
    beat.start()
    try:
        time.sleep(0.5)
        with factory() as s:
            first = s.get(TrainingRun, run_id).heartbeat_at
        assert first.replace(tzinfo=None) > start.replace(tzinfo=None)
        assert not beat.cancelled.is_set()
        with app.app_context(), factory() as s:
            from labeler.training.control import cancel_run

            cancel_run(s, s.get(type(lead), lead.id), s.get(TrainingRun, run_id))
            s.commit()
        beat.join(timeout=5)
        assert beat.cancelled.is_set() and not beat.is_alive()
    finally:
        beat.stopped.set()


def test_a_cancelled_run_stops_training_and_stays_cancelled(committed_app):
    """execute_run (the body of every worker) notices the cancel at its next step and writes nothing
    over it."""
    app = committed_app
    factory = app.extensions["labeler_db"].session_factory
    with factory() as s:
        lead = add_user(s, None, "lead@cancel.test", "Lead", {Role.lead})
        s.flush()
        project, _ids = build_quality_project(
            s, app.extensions["labeler_storage"], lead, n=40, golden=10, seed=5
        )
        run = _run(s, project, RunStatus.queued, epochs=20)
        s.commit()
        run_id = run.id
    result = {}

    def work():
        with app.app_context():
            result["run"] = execute_run(
                factory, app.config, app.extensions["labeler_storage"], run_id
            )

    thread = threading.Thread(target=work)
    thread.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with factory() as s:
            if s.get(TrainingRun, run_id).status is RunStatus.running:
                break
        time.sleep(0.01)
    with app.app_context(), factory() as s:
        from labeler.training.control import cancel_run

        cancel_run(s, s.get(type(lead), lead.id), s.get(TrainingRun, run_id))
        s.commit()
    thread.join(timeout=120)
    assert not thread.is_alive()
    final = result["run"]
    assert final.status is RunStatus.cancelled and final.model_id is None and final.metrics is None
    assert final.error == "cancelled by Lead"


def test_a_broker_that_is_down_fails_the_run_in_words(committed_app):
    app = committed_app
    with socket_closed_port() as port:
        app.config["CELERY_BROKER_URL"] = f"redis://127.0.0.1:{port}/0"
        factory = app.extensions["labeler_db"].session_factory
        with factory() as s:
            lead = add_user(s, None, "lead@nobroker.test", "Lead", {Role.lead})
            s.flush()
            project, _ids = build_quality_project(
                s, app.extensions["labeler_storage"], lead, n=8, golden=2, seed=9
            )
            s.commit()
            project_id = project.id
        client = app.test_client()
        login(client, lead)
        resp = client.post(
            f"/api/v1/projects/{project_id}/training-runs",
            json={"kind": "quality"},
            headers={"X-CSRFToken": client.csrf},
        )
    assert resp.status_code == 202
    assert resp.json["status"] == "failed"
    assert "The training workers could not be reached" in resp.json["error"]
    assert "Error" not in resp.json["error"] and "redis" not in resp.json["error"].lower()


class socket_closed_port:
    """A loopback port on which nothing listens."""

    def __enter__(self) -> int:
        return free_port()

    def __exit__(self, *exc) -> None:
        return None
