"""Background training runs carry fine_tune_blocks (training_runs.fine_tune_blocks, migration 0011):
the API and `labeler ml train` without --wait queue it, the worker reads it from the run's row;
a severity model, a count out of range, or a worker without a GPU (not forced) is refused in words."""
# ruff: noqa: F811  (fixtures imported from training_fixtures are used as arguments)

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from sqlalchemy import func, select
from training_fixtures import build_quality_project, ml_app, ml_root  # noqa: F401

from labeler.auth.services import create_token
from labeler.ml.config import BACKBONE_BLOCKS
from labeler.training import worker
from labeler.training.models import RunStatus, TrainingRun
from labeler.training.worker import execute_run


def _post_run(client, project, headers, body):
    """POST /api/v1/projects/{id}/training-runs as the project's lead (its API token)."""
    return client.post(f"/api/v1/projects/{project.id}/training-runs", json=body, headers=headers)


def _lead_project(ml_app, db, make_user):
    lead = make_user(None, "lead")
    project, _ids = build_quality_project(
        db, ml_app.extensions["labeler_storage"], lead, n=30, golden=8
    )
    headers = {"Authorization": f"Bearer {create_token(db, lead, lead, 't')[1]}"}
    db.flush()
    return project, lead, headers


def _work(ml_app, run_id: int) -> TrainingRun:
    """What the local worker process (`python -m labeler.training.worker RUN_ID`) does, inline."""
    return execute_run(
        ml_app.extensions["labeler_db"].session_factory,
        ml_app.config,
        ml_app.extensions["labeler_storage"],
        run_id,
    )


def _runs(db, project) -> int:
    return db.scalar(
        select(func.count()).select_from(TrainingRun).where(TrainingRun.project_id == project.id)
    )


def test_a_background_run_fine_tunes_on_the_cpu_when_forced(
    ml_app, db, client, make_user, login_as
):
    ml_app.config["ML_FINE_TUNE_ON_CPU"] = True  # the test config's force flag (no GPU here)
    project, lead, headers = _lead_project(ml_app, db, make_user)
    resp = _post_run(client, project, headers, {"epochs": 1, "fine_tune_blocks": 1})
    assert resp.status_code == 202, resp.json
    assert resp.json["fine_tune_blocks"] == 1 and resp.json["status"] == "queued"
    run = _work(ml_app, resp.json["id"])
    assert run.status is RunStatus.succeeded, run.error
    assert run.fine_tune_blocks == 1
    folder = Path(ml_app.config["ML_DIR"]) / "models" / run.model_id
    assert json.loads((folder / "model.json").read_text())["backbone_fine_tuned_blocks"] == 1
    assert json.loads((folder / "metrics.json").read_text())["fine_tune"]["blocks"] == 1
    login_as(lead)
    report = client.get(f"/projects/{project.id}/models/{run.model_id}/report.json").json
    assert report["model"]["backbone_fine_tuned_blocks"] == 1
    assert report["run"]["fine_tune_blocks"] == 1


def test_a_run_without_the_option_keeps_the_frozen_backbone(ml_app, db, client, make_user):
    project, _lead, headers = _lead_project(ml_app, db, make_user)
    resp = _post_run(client, project, headers, {"epochs": 1})
    assert resp.status_code == 202 and resp.json["fine_tune_blocks"] == 0


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (BACKBONE_BLOCKS + 1, f"between 0 and {BACKBONE_BLOCKS}"),
        (-1, f"between 0 and {BACKBONE_BLOCKS}"),
        ("two", "whole number"),
        (1.5, "whole number"),
    ],
)
def test_a_block_count_out_of_range_is_refused_in_words(
    ml_app, db, client, make_user, value, words
):
    project, _lead, headers = _lead_project(ml_app, db, make_user)
    resp = _post_run(client, project, headers, {"fine_tune_blocks": value})
    assert resp.status_code == 422
    message = resp.json["error"]["message"]
    assert "fine_tune_blocks" in message and words in message
    assert _runs(db, project) == 0


def test_a_severity_model_is_not_fine_tuned(ml_app, db, client, make_user, make_project):
    lead = make_user(None, "lead")
    project = make_project(lead, protocol="severity")
    headers = {"Authorization": f"Bearer {create_token(db, lead, lead, 't')[1]}"}
    db.flush()
    resp = _post_run(client, project, headers, {"fine_tune_blocks": 2})
    assert resp.status_code == 422
    assert "quality model only" in resp.json["error"]["message"]
    assert _runs(db, project) == 0


def test_a_worker_without_a_gpu_fails_the_run_saying_why(
    ml_app, db, client, make_user, monkeypatch
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ml_app.config.pop("ML_FINE_TUNE_ON_CPU", None)
    project, _lead, headers = _lead_project(ml_app, db, make_user)
    resp = _post_run(client, project, headers, {"epochs": 1, "fine_tune_blocks": 2})
    assert resp.status_code == 202, resp.json
    run = _work(ml_app, resp.json["id"])
    assert run.status is RunStatus.failed and run.model_id is None and run.finished_at
    assert "needs a GPU" in run.error and "0 fine-tuned blocks" in run.error
    shown = client.get(f"/api/v1/training-runs/{run.id}", headers=headers).json
    assert shown["status"] == "failed" and "needs a GPU" in shown["error"]


def test_the_cli_queues_a_background_fine_tuning_run(ml_app, db, runner, make_user, monkeypatch):
    started: list[int] = []
    monkeypatch.setattr(worker, "spawn_worker", lambda _config, run_id: started.append(run_id) or 1)
    project, _lead, _headers = _lead_project(ml_app, db, make_user)
    res = runner.invoke(
        args=["ml", "train", str(project.id), "--fine-tune-blocks", "2", "--fine-tune-on-cpu"]
    )
    assert res.exit_code == 2 and "add --wait" in res.output
    assert _runs(db, project) == 0
    res = runner.invoke(args=["ml", "train", str(project.id), "--fine-tune-blocks", "2"])
    assert res.exit_code == 0, res.output
    run = db.scalar(select(TrainingRun).where(TrainingRun.project_id == project.id))
    db.refresh(run)
    assert started == [run.id]
    assert run.status is RunStatus.queued and run.fine_tune_blocks == 2
