"""The background worker end to end: the models page starts a run, a separate process trains it,
the run's JSON status moves to succeeded, and the report page shows the verdict next to the raters."""
# ruff: noqa: F811  (fixtures imported from training_fixtures are used as arguments)

from __future__ import annotations

import json
import time
from pathlib import Path

from helpers import login
from training_fixtures import build_quality_project, committed_app, ml_root  # noqa: F401

from labeler.auth.models import Role
from labeler.auth.services import add_user
from labeler.jobs import spawn
from labeler.jobs.spawn import process_alive

TIMEOUT_S = 120


def test_worker_trains_in_the_background(committed_app):
    app = committed_app
    factory = app.extensions["labeler_db"].session_factory
    with factory() as s:
        lead = add_user(s, None, "lead@worker.test", "Lead", {Role.lead})
        s.flush()
        project, _ids = build_quality_project(
            s, app.extensions["labeler_storage"], lead, n=60, golden=20, seed=4
        )
        s.commit()
        project_id = project.id
    client = app.test_client()
    login(client, lead)

    resp = client.post(
        f"/projects/{project_id}/models/train",
        data={"kind": "quality", "seed": "2", "epochs": "20", "csrf_token": client.csrf},
    )
    assert resp.status_code == 302, resp.get_data(as_text=True)
    page = client.get(f"/projects/{project_id}/models").get_data(as_text=True)
    assert "data-run-url=" in page and "training-runs.js" in page and "<script>" not in page
    runs = client.get(f"/api/v1/projects/{project_id}/models").json
    assert runs == {"models": []}

    with factory() as s:
        from labeler.training.models import TrainingRun

        run = s.query(TrainingRun).filter_by(project_id=project_id).one()
        run_id, pid = run.id, run.pid
    assert pid and process_alive(pid)
    seen = set()
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        state = client.get(f"/api/v1/training-runs/{run_id}").json
        seen.add(state["status"])
        if state["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.5)
    for proc in list(spawn.CHILDREN):
        proc.wait(timeout=30)
    spawn.reap_children()
    log = (Path(app.config["ML_DIR"]) / "runs" / str(run_id) / "worker.log").read_text()
    assert state["status"] == "succeeded", (state, log[-3000:])
    assert "running" in seen or "queued" in seen
    model_id = state["model_id"]
    assert (Path(app.config["ML_DIR"]) / "models" / model_id / "model.onnx").is_file()
    assert state["verdict"] is not None and state["started_at"] and state["finished_at"]

    models = client.get(f"/api/v1/projects/{project_id}/models").json["models"]
    assert [m["id"] for m in models] == [model_id]
    report = client.get(f"/projects/{project_id}/models/{model_id}")
    html = report.get_data(as_text=True)
    assert report.status_code == 200
    assert 'id="verdict"' in html and (
        "On the figures alone, without their uncertainty: at expert level" in html
        or "On the figures alone, without their uncertainty: below expert level" in html
    )
    assert (
        'id="per-class"' in html
        and 'id="per-explanation"' in html
        and "The raters with each other, pair by pair" in html
    )
    assert "onnx" not in html.lower() and "fp32" not in html  # a lead's words, not the file format
    assert 'id="model-size"' in html and "MB" in html
    assert "On 20 golden images; a verdict needs at least 20" in html
    assert 'id="model-fairness-fitzpatrick"' in html and 'id="model-fairness-body_site"' in html
    dl = client.get(f"/projects/{project_id}/models/{model_id}/report.json")
    assert dl.status_code == 200 and "attachment" in dl.headers["Content-Disposition"]
    body = json.loads(dl.data)
    assert (
        body["evaluation"]["verdict"]["expert_level"] in (True, False)
        and body["model"]["id"] == model_id
    )
    fairness = body["evaluation"]["figures"]["fairness"]
    unknown = next(g for g in fairness["fitzpatrick"] if g["group"] == "unknown")
    assert unknown["images"] == body["evaluation"]["figures"]["n"]  # no skin types imported
    project_page = client.get(f"/projects/{project_id}").get_data(as_text=True)
    assert f"/projects/{project_id}/models" in project_page
