"""`labeler assist ...`: pre-labeling on and off, a reader study created, reported and closed."""

from __future__ import annotations

import json

from assist_support import MODEL_ID
from sqlalchemy import select

from labeler.assist.models import ReaderStudy
from labeler.projects.models import Project


def test_study_create_report_close(runner, db, assisted_project):
    _lead, project, _raters, _ = assisted_project
    res = runner.invoke(
        args=[
            "assist",
            "study",
            "create",
            str(project.id),
            "--model",
            MODEL_ID,
            "--washout-days",
            "14",
            "--seed",
            "3",
        ]
    )
    assert res.exit_code == 0, res.output
    study = db.scalar(select(ReaderStudy).where(ReaderStudy.project_id == project.id))
    assert (study.washout_days, study.seed, study.model_id) == (14, 3, MODEL_ID)
    again = runner.invoke(
        args=[
            "assist",
            "study",
            "create",
            str(project.id),
            "--model",
            MODEL_ID,
            "--washout-days",
            "14",
        ]
    )
    assert again.exit_code != 0 and "already has a reader study" in again.output
    res = runner.invoke(args=["assist", "study", "report", str(project.id), str(study.id)])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["study"]["id"] == study.id and report["metric"] == "macro_f1"
    assert len(report["readers"]) == 3
    res = runner.invoke(args=["assist", "study", "close", str(project.id), str(study.id)])
    assert res.exit_code == 0
    db.refresh(study)
    assert study.closed_at is not None


def test_prelabel_refuses_a_missing_model_and_turns_off(runner, db, assisted_project):
    _lead, project, _raters, _ = assisted_project
    res = runner.invoke(
        args=["assist", "prelabel", str(project.id), "quality-20990101T000000-gone00"]
    )
    assert res.exit_code != 0 and "Error" in res.output
    res = runner.invoke(args=["assist", "prelabel", str(project.id), "off"])
    assert res.exit_code == 0 and "pre-labeling off" in res.output
    db.expire_all()
    assert db.get(Project, project.id).settings.get("suggestions_model_id") is None
    res = runner.invoke(args=["assist", "suggest", str(project.id), "nope", "--wait"])
    assert res.exit_code != 0 and "nope" in res.output
