"""`labeler ml train --wait`, `evaluate`, `predict`, `list` on a small labeled project; the failure path."""
# ruff: noqa: F811  (fixtures imported from training_fixtures are used as arguments)

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from training_fixtures import build_quality_project, dark_blurry_jpeg, good_jpeg, ml_app, ml_root  # noqa: F401

from labeler.training.models import RunStatus, TrainingRun


def test_train_evaluate_predict_list(ml_app, db, runner, make_user, tmp_path):
    lead = make_user(None, "lead")
    project, _ids = build_quality_project(
        db, ml_app.extensions["labeler_storage"], lead, n=60, golden=20
    )

    res = runner.invoke(
        args=["ml", "train", str(project.id), "--wait", "--epochs", "30", "--seed", "1"]
    )
    assert res.exit_code == 0, res.output
    run = db.scalar(select(TrainingRun).where(TrainingRun.project_id == project.id))
    db.refresh(run)
    assert run.status is RunStatus.succeeded and run.model_id and run.error is None
    assert f"model {run.model_id}" in res.output
    assert "expert level: " in res.output  # the golden set has three raters: a verdict
    ev = run.metrics["evaluation"]
    assert ev["figures"]["n"] == 20 and ev["verdict"]["expert_level"] in (True, False)
    assert ev["n_images"] == 20 and ev["verdict_withheld"] is None
    assert ev["raters"]["macro_f1_mean"] > 0.5
    folder = Path(ml_app.config["ML_DIR"]) / "models" / run.model_id
    assert (folder / "model.onnx").is_file()
    assert run.metrics["size_bytes"] < 15e6  # the ImageQX paper's size goal

    res = runner.invoke(args=["ml", "evaluate", run.model_id])
    assert res.exit_code == 0, res.output
    assert (
        "macro F1" in res.output
        and "expert level: " in res.output
        and "raters' macro F1" in res.output
    )
    report = Path(res.output.strip().splitlines()[-1].removeprefix("report: "))
    assert report.parent == folder and json.loads(report.read_text())["split"] == "golden"

    # the project asks for more golden images than it has: the figures, the count, no verdict
    project.settings = {**project.settings, "agreement": {"min_eval_images": 21}}
    db.flush()
    res = runner.invoke(args=["ml", "evaluate", run.model_id])
    assert res.exit_code == 0, res.output
    assert "macro F1" in res.output and "expert level" not in res.output
    assert (
        "no verdict: too few images to judge: the figures rest on 20 golden images, "
        "and a verdict needs at least 21" in res.output
    )
    withheld = json.loads(report.read_text())
    assert withheld["verdict"] is None and withheld["n_images"] == 20
    project.settings = {**project.settings, "agreement": {"min_eval_images": 20}}
    db.flush()

    good, bad = tmp_path / "good.jpg", tmp_path / "bad.jpg"
    good.write_bytes(good_jpeg())
    bad.write_bytes(dark_blurry_jpeg())
    res = runner.invoke(args=["ml", "predict", run.model_id, str(good), str(bad)])
    assert res.exit_code == 0, res.output
    out = [json.loads(line) for line in res.output.strip().splitlines()]
    assert [o["image"] for o in out] == [str(good), str(bad)]
    assert all(o["class"] in ("lesion", "no_skin", "healthy_skin", "poor_quality") for o in out)
    assert abs(sum(out[0]["probabilities"].values()) - 1) < 1e-3

    res = runner.invoke(args=["ml", "list"])
    assert (
        res.exit_code == 0 and run.model_id in res.output and f"project {project.id}" in res.output
    )

    # a second seed, then both evaluated together: mean ± std over the seeds, as in the ImageQX paper
    res = runner.invoke(
        args=["ml", "train", str(project.id), "--wait", "--epochs", "30", "--seed", "2"]
    )
    assert res.exit_code == 0, res.output
    second = db.scalars(
        select(TrainingRun)
        .where(TrainingRun.project_id == project.id)
        .order_by(TrainingRun.id.desc())
    ).first()
    db.refresh(second)
    assert second.model_id and second.model_id != run.model_id
    res = runner.invoke(args=["ml", "evaluate", run.model_id, second.model_id])
    assert res.exit_code == 0, res.output
    assert "over 2 models (mean ± std):" in res.output
    line = next(x for x in res.output.splitlines() if x.strip().startswith("macro_f1:"))
    mean, std = (float(v) for v in line.split(":")[1].split("±"))

    def saved_macro_f1(model_id: str) -> float:
        report = max(
            (Path(ml_app.config["ML_DIR"]) / "models" / model_id).glob("evaluation-*.json")
        )
        return json.loads(report.read_text())["figures"]["macro_f1"]

    f1s = [saved_macro_f1(m) for m in (run.model_id, second.model_id)]
    assert mean == pytest.approx(sum(f1s) / 2, abs=1e-3) and std == pytest.approx(
        abs(f1s[0] - f1s[1]) / 2, abs=1e-3
    )
    assert "expert level on the mean: " in res.output


def test_a_project_without_labels_fails_with_a_clear_message(ml_app, db, runner, make_user):
    lead = make_user(None, "lead")
    project, _ids = build_quality_project(
        db, ml_app.extensions["labeler_storage"], lead, n=8, golden=0, labeled=False
    )
    res = runner.invoke(args=["ml", "train", str(project.id), "--wait"])
    assert res.exit_code != 0
    run = db.scalar(select(TrainingRun).where(TrainingRun.project_id == project.id))
    db.refresh(run)
    assert run.status is RunStatus.failed and run.finished_at is not None
    assert "usable images" in run.error and "need 20" in run.error
    assert run.error in res.output


def test_cli_refuses_bad_input(ml_app, db, runner, make_user, tmp_path):
    lead = make_user(None, "lead")
    project, _ = build_quality_project(
        db, ml_app.extensions["labeler_storage"], lead, n=4, labeled=False
    )
    res = runner.invoke(args=["ml", "train", str(project.id), "--kind", "severity", "--wait"])
    assert res.exit_code != 0 and "quality project trains quality models" in res.output
    res = runner.invoke(args=["ml", "evaluate", "quality-20260101T000000-abcdef"])
    assert res.exit_code != 0 and "unknown model id" in res.output
    junk = tmp_path / "x.jpg"
    junk.write_bytes(b"not an image")
    res = runner.invoke(args=["ml", "predict", "nonsense", str(junk)])
    assert res.exit_code != 0 and "unknown model id" in res.output


def test_work_runs_a_queued_run_once(ml_app, db, runner, make_user):
    from labeler.training.services import start_run

    lead = make_user(None, "lead")
    project, _ = build_quality_project(
        db, ml_app.extensions["labeler_storage"], lead, n=4, labeled=False
    )
    run = start_run(db, lead, project, seed=5)
    db.flush()
    res = runner.invoke(args=["ml", "work", str(run.id)])
    assert res.exit_code != 0 and "usable images" in res.output  # it ran (and failed: no labels)
    res = runner.invoke(args=["ml", "work", str(run.id)])
    assert res.exit_code != 0 and "is failed, not queued" in res.output
