"""`labeler ml train --fine-tune-blocks N` (issue 16 section 5): refused without a GPU, in words, by
the worker; forced onto the CPU it trains and the model says its backbone was fine-tuned."""
# ruff: noqa: F811  (fixtures imported from training_fixtures are used as arguments)

from __future__ import annotations

import json
from pathlib import Path

import torch
from sqlalchemy import select
from training_fixtures import build_quality_project, ml_app, ml_root  # noqa: F401

from labeler.training.models import RunStatus, TrainingRun


def _project(ml_app, db, make_user):
    lead = make_user(None, "lead")
    project, _ids = build_quality_project(
        db, ml_app.extensions["labeler_storage"], lead, n=30, golden=8
    )
    return project, lead


def test_fine_tuning_without_a_gpu_fails_the_run_saying_why(
    ml_app, db, runner, make_user, monkeypatch
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    project, _lead = _project(ml_app, db, make_user)
    # without --wait the run is queued for a background worker: test_training_finetune_background.py
    res = runner.invoke(args=["ml", "train", str(project.id), "--wait", "--fine-tune-blocks", "2"])
    assert res.exit_code != 0
    run = db.scalar(select(TrainingRun).where(TrainingRun.project_id == project.id))
    db.refresh(run)
    assert run.status is RunStatus.failed and run.model_id is None
    assert "needs a GPU" in run.error and "0 fine-tuned blocks" in run.error
    assert run.error in res.output


def test_fine_tuning_forced_on_the_cpu_trains_and_says_so(
    ml_app, db, runner, make_user, client, login_as
):
    project, lead = _project(ml_app, db, make_user)
    res = runner.invoke(
        args=[
            "ml", "train", str(project.id), "--wait", "--epochs", "1",
            "--fine-tune-blocks", "1", "--fine-tune-on-cpu",
        ]
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    run = db.scalar(select(TrainingRun).where(TrainingRun.project_id == project.id))
    db.refresh(run)
    assert run.status is RunStatus.succeeded
    folder = Path(ml_app.config["ML_DIR"]) / "models" / run.model_id
    assert json.loads((folder / "model.json").read_text())["backbone_fine_tuned_blocks"] == 1
    assert json.loads((folder / "metrics.json").read_text())["fine_tune"]["blocks"] == 1
    login_as(lead)
    html = client.get(f"/projects/{project.id}/models/{run.model_id}").get_data(as_text=True)
    assert 'id="model-backbone"' in html and "its last 1 block trained" in html
    report = client.get(f"/projects/{project.id}/models/{run.model_id}/report.json").json
    assert report["model"]["backbone_fine_tuned_blocks"] == 1
