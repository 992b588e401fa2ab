"""Training runs on a real Celery worker with a real Redis broker (both started by the fixtures).

The lead starts a run through the API; a separate `celery -A labeler.jobs.worker worker` process
trains it and the API reads the progress from the database. The same task sent twice trains once.
A worker SIGKILLed mid-run leaves the run failed with a message within the heartbeat timeout, and
running it again on a new worker succeeds.
"""
# ruff: noqa: F811  (fixtures imported from the fixture modules are used as arguments)

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from celery_fixtures import celery_workers, redis_url  # noqa: F401
from helpers import login
from training_fixtures import (  # noqa: F401
    build_quality_project,
    committed_app,
    dark_blurry_jpeg,
    ml_root,
)

from labeler.auth.models import Role
from labeler.auth.services import add_user
from labeler.images.models import Image
from labeler.jobs.queue import send_training
from labeler.training.models import TrainingRun

pytestmark = pytest.mark.slow
TIMEOUT_S = 180
# generous: a long C call (the first backbone export) can hold the GIL for seconds
HEARTBEAT_TIMEOUT_S = 20


def _wait(client, run_id, statuses, timeout=TIMEOUT_S, worker=None):
    deadline = time.monotonic() + timeout
    state, seen = None, []
    while time.monotonic() < deadline:
        state = client.get(f"/api/v1/training-runs/{run_id}").json
        if not seen or seen[-1] != state["status"]:
            seen.append(state["status"])
        if state["status"] in statuses:
            return state, seen
        time.sleep(0.05)
    log = worker.text()[-3000:] if worker else ""
    raise AssertionError(f"run {run_id} still {state} after {timeout} s; seen {seen}\n{log}")


def test_runs_on_a_celery_worker_and_survive_a_killed_one(committed_app, redis_url, celery_workers):
    app = committed_app
    app.config.update(
        CELERY_BROKER_URL=redis_url,
        ML_HEARTBEAT_S=0.5,
        ML_HEARTBEAT_TIMEOUT_S=HEARTBEAT_TIMEOUT_S,
    )
    factory = app.extensions["labeler_db"].session_factory
    with factory() as s:
        lead = add_user(s, None, "lead@celery.test", "Lead", {Role.lead})
        s.flush()
        project, _ids = build_quality_project(
            s, app.extensions["labeler_storage"], lead, n=60, golden=20, seed=8
        )
        s.commit()
        project_id = project.id
    client = app.test_client()
    login(client, lead)
    headers = {"X-CSRFToken": client.csrf}

    first = celery_workers(app.config, "w1")
    resp = client.post(
        f"/api/v1/projects/{project_id}/training-runs",
        json={"kind": "quality", "seed": 1, "epochs": 20},
        headers=headers,
    )
    assert resp.status_code == 202, resp.json
    run_id = resp.json["id"]
    assert resp.json["status"] == "queued"
    state, seen = _wait(client, run_id, ("succeeded", "failed"), worker=first)
    assert state["status"] == "succeeded", (state["error"], first.text()[-3000:])
    assert "running" in seen
    model_id = state["model_id"]
    assert (Path(app.config["ML_DIR"]) / "models" / model_id / "model.onnx").is_file()
    with factory() as s:
        row = s.get(TrainingRun, run_id)
        finished_at, worker_pid = row.finished_at, row.pid
    assert worker_pid == first.proc.pid  # the Celery worker ran it, not a local worker process

    # the same run sent again (a redelivery, a retried send): the worker leaves it alone
    send_training(app.config, run_id)
    deadline = time.monotonic() + 30
    while "nothing to do" not in first.text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f"training run {run_id}: nothing to do" in first.text()
    with factory() as s:
        row = s.get(TrainingRun, run_id)
        assert (row.status.value, row.model_id, row.finished_at) == (
            "succeeded",
            model_id,
            finished_at,
        )

    # the import prescreen runs on the worker too: the import says queued, the result lands on the image
    page = client.post(
        f"/projects/{project_id}/models/prescreen",
        data={"model_id": model_id, "csrf_token": client.csrf},
    )
    assert page.status_code == 302
    resp = client.post(
        f"/api/v1/projects/{project_id}/images",
        data={"files": [(io.BytesIO(dark_blurry_jpeg()), "dark.jpg")]},
        headers=headers,
        content_type="multipart/form-data",
    )
    assert resp.status_code == 201, resp.json
    assert resp.json["prescreen"] == {"status": "queued", "model_id": model_id, "images": 1}
    deadline, pre = time.monotonic() + 60, None
    while pre is None and time.monotonic() < deadline:
        with factory() as s:
            image = s.query(Image).filter_by(project_id=project_id, filename="dark.jpg").one()
            pre = (image.meta or {}).get("prescreen")
        time.sleep(0.1)
    assert pre is not None, first.text()[-3000:]
    assert pre["model_id"] == model_id and pre["class"] in (
        "poor_quality",
        "lesion",
        "healthy_skin",
        "no_skin",
    )

    # a worker killed mid-run: the run reads failed within the heartbeat timeout
    resp = client.post(
        f"/api/v1/projects/{project_id}/training-runs",
        json={"kind": "quality", "seed": 2, "epochs": 1000},
        headers=headers,
    )
    assert resp.status_code == 202, resp.json
    second_id = resp.json["id"]
    _wait(client, second_id, ("running",), worker=first)
    first.kill()
    killed = time.monotonic()
    state, _seen = _wait(client, second_id, ("failed", "succeeded"), timeout=30)
    took = time.monotonic() - killed
    print(f"killed worker: run {second_id} read failed after {took:.2f} s")
    assert state["status"] == "failed" and took < HEARTBEAT_TIMEOUT_S + 2
    assert "worker" in state["error"]
    page = client.get(f"/projects/{project_id}/models").get_data(as_text=True)
    assert f"Run {second_id} again</button>" in page

    # run it again: the same run, on a new worker, to the end
    resp = client.post(f"/api/v1/training-runs/{second_id}/retry", headers=headers)
    assert resp.status_code == 202, resp.json
    second = celery_workers(app.config, "w2")
    state, _seen = _wait(client, second_id, ("succeeded", "failed"), worker=second)
    assert state["status"] == "succeeded", (state, second.text()[-3000:])
    assert state["error"] is None and state["model_id"] and state["model_id"] != model_id
    with factory() as s:
        assert s.query(TrainingRun).filter_by(project_id=project_id).count() == 2
