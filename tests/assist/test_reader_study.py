"""Reader studies: creation rules, phases with a washout (injectable clock), readings that never touch
labels, the API's rules, and the report against a hand-computed example."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from assist_support import MODEL_ID
from sqlalchemy import func, select

from labeler.allocation.models import QueueItem
from labeler.assist.models import StudyReading
from labeler.assist.studies import (
    answer_reading,
    assisted_first,
    create_study,
    next_reading,
    rater_phase,
)
from labeler.assist.study_report import study_report
from labeler.errors import Conflict, ValidationError
from labeler.labeling.models import Label

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _study(db, lead, project, **kw):
    args = {"model_id": MODEL_ID, "washout_days": 14, "seed": 7, "now": T0, **kw}
    return create_study(db, lead, project, **args)


def _answer_all(db, study, rater, phase, now, decide=lambda r: {"decision": "no_skin"}):
    n = 0
    while True:
        reading, state = next_reading(db, study, rater, now)
        if reading is None:
            return n, state
        assert reading.phase == phase
        answer_reading(db, rater, reading, study, decide(reading), now=now)
        n += 1


def test_each_rater_reads_their_whole_queue_twice_reshuffled(db, assisted_project):
    lead, project, raters, _ = assisted_project
    _study(db, lead, project)
    for rater in raters:
        queue = sorted(
            db.scalars(select(QueueItem.image_id).where(QueueItem.rater_id == rater.id)).all()
        )
        phases = {}
        for phase in (1, 2):
            rows = db.scalars(
                select(StudyReading)
                .where(StudyReading.rater_id == rater.id, StudyReading.phase == phase)
                .order_by(StudyReading.position)
            ).all()
            assert sorted(r.image_id for r in rows) == queue  # golden and fold images alike
            assert {r.assisted for r in rows} == {assisted_first(7, rater.id) == (phase == 1)}
            assert {r.model_id for r in rows} == ({MODEL_ID} if rows[0].assisted else {None})
            phases[phase] = [r.image_id for r in rows]
        assert phases[1] != phases[2]  # reshuffled between phases
    # the phase order is drawn per rater from the seed, and not the same for everyone
    assert len({assisted_first(7, r) for r in range(1, 40)}) == 2


def test_creation_rules(db, assisted_project):
    lead, project, _raters, _ = assisted_project
    with pytest.raises(ValidationError):
        _study(db, lead, project, washout_days=-1)
    with pytest.raises(ValidationError):
        _study(db, lead, project, washout_days="two weeks")
    with pytest.raises(Conflict) as exc:
        _study(db, lead, project, model_id="quality-20990101T000000-notrun")
    assert "not computed" in exc.value.message
    _study(db, lead, project)
    with pytest.raises(Conflict) as exc:
        _study(db, lead, project)
    assert "already has a reader study" in exc.value.message


def test_phase_two_opens_only_after_the_washout(db, assisted_project):
    lead, project, raters, _ = assisted_project
    study = _study(db, lead, project, washout_days=14)
    rater = raters[0]
    total = db.scalar(select(func.count(QueueItem.id)).where(QueueItem.rater_id == rater.id))
    finished = T0 + timedelta(days=1)
    n, state = _answer_all(db, study, rater, 1, finished)
    assert n == total and state.phase is None
    assert state.opens_at == finished + timedelta(days=14)
    # a day before the washout ends: nothing to read, and a phase-2 reading is refused in words
    early = finished + timedelta(days=13)
    reading, state = next_reading(db, study, rater, early)
    assert reading is None and state.phase is None and not state.finished
    phase2 = db.scalar(
        select(StudyReading).where(StudyReading.rater_id == rater.id, StudyReading.phase == 2)
    )
    with pytest.raises(Conflict) as exc:
        answer_reading(db, rater, phase2, study, {"decision": "no_skin"}, now=early)
    assert "washout" in exc.value.message and exc.value.code == "washout"
    # once it ends, phase 2 opens; both phases' readings stay, and no label was written
    n2, state = _answer_all(db, study, rater, 2, finished + timedelta(days=14))
    assert n2 == total and state.finished
    assert db.scalar(select(func.count(Label.id)).where(Label.rater_id == rater.id)) == 0
    readings = db.scalars(select(StudyReading).where(StudyReading.rater_id == rater.id)).all()
    assert len(readings) == 2 * total and all(r.answered_at for r in readings)
    # answered once: a second answer is refused
    with pytest.raises(Conflict):
        answer_reading(db, rater, readings[0], study, {"decision": "lesion"}, now=early)
    # another rater is still in phase 1
    assert rater_phase(db, study, raters[1].id, early).phase == 1


def test_readings_are_validated_like_labels(db, assisted_project):
    lead, project, raters, _ = assisted_project
    study = _study(db, lead, project)
    reading, _ = next_reading(db, study, raters[0], T0)
    with pytest.raises(ValidationError):
        answer_reading(db, raters[0], reading, study, {"decision": "maybe"}, now=T0)
    assert reading.answered_at is None


CLASSES = ("lesion", "no_skin", "healthy_skin", "poor_quality")


def test_report_matches_a_hand_computed_example(db, assisted_project, client_for):
    from labeler.allocation.models import GoldenImage
    from labeler.assist.models import Suggestion

    lead, project, raters, _ = assisted_project
    golden = sorted(db.scalars(select(GoldenImage.image_id)).all())
    assert len(golden) == 6
    truth = [0, 0, 1, 3, 2, 2]  # the reference: every rater's normal label says it
    for rater in raters:
        for image_id, t in zip(golden, truth, strict=True):
            db.add(
                Label(
                    project_id=project.id, rater_id=rater.id, image_id=image_id, decision=CLASSES[t]
                )
            )
    model = [0, 0, 2, 2, 2, 2]  # right on images 0, 1, 4, 5; wrong on 2 and 3
    for image_id, m in zip(golden, model, strict=True):
        s = db.scalar(select(Suggestion).where(Suggestion.image_id == image_id))
        s.answer, s.error = {"class": CLASSES[m], "probability": 0.9, "issues": []}, None
    db.flush()
    study = _study(db, lead, project)
    reader = raters[0]
    unassisted = [0, 1, 1, 3, 2, 2]  # macro F1 (2/3 + 2/3 + 1 + 1) / 4 = 5/6
    assisted = [0, 0, 1, 2, 2, 2]  # macro F1 (1 + 1 + 4/5 + 0) / 4 = 0.7
    for image_id, u, a in zip(golden, unassisted, assisted, strict=True):
        for r in db.scalars(
            select(StudyReading).where(
                StudyReading.rater_id == reader.id, StudyReading.image_id == image_id
            )
        ):
            r.decision = CLASSES[a if r.assisted else u]
            r.answered_at = T0
    db.commit()

    report = study_report(db, study, resamples=400)
    assert report["metric"] == "macro_f1" and report["reference"]["images"] == 6
    assert report["reference"]["includes_assisted_labels"] is False
    (mine,) = [r for r in report["readers"] if r["rater_id"] == reader.id]
    acc = mine["accuracy"]
    assert acc["readings"] == 6 and acc["images"] == 6
    assert acc["unassisted"] == pytest.approx(5 / 6, abs=1e-12)
    assert acc["assisted"] == pytest.approx(0.7, abs=1e-12)
    assert acc["difference"] == pytest.approx(0.7 - 5 / 6, abs=1e-12)
    iv = acc["difference_interval"]
    assert iv["level"] == 0.95 and iv["resamples"] == 400 and iv["low"] <= iv["high"]
    assert mine["switches"] == {
        "model_right": 4,
        "model_wrong": 2,
        "to_model_when_right": 1,  # image 1: no skin -> the model's (right) lesion
        "away_when_right": 0,
        "to_model_when_wrong": 1,  # image 3: poor quality -> the model's (wrong) healthy skin
        "away_when_wrong": 0,
    }
    assert mine["assisted_phase"] == (1 if assisted_first(7, reader.id) else 2)
    assert report["overall"]["accuracy"]["difference"] == pytest.approx(0.7 - 5 / 6)
    others = [r for r in report["readers"] if r["rater_id"] != reader.id]
    assert others and all(r["accuracy"]["readings"] == 0 for r in others)

    client = client_for(lead)
    body = client.get(f"/api/v1/projects/{project.id}/reader-studies/{study.id}/report").get_json()
    assert body["overall"]["accuracy"]["unassisted"] == pytest.approx(5 / 6)
    page = client.get(f"/projects/{project.id}/reader-studies/{study.id}")
    assert page.status_code == 200 and "0.833" in page.get_data(as_text=True)
    # raters never read a report
    assert (
        client_for(reader)
        .get(f"/api/v1/projects/{project.id}/reader-studies/{study.id}/report")
        .status_code
        == 403
    )


def test_a_removed_rater_loses_access_to_their_readings(db, assisted_project, client_for):
    from labeler.projects.models import MemberRole, ProjectMember

    lead, project, raters, _ = assisted_project
    study = _study(db, lead, project)
    rater = raters[0]
    reading, _ = next_reading(db, study, rater, T0)
    db.commit()
    client = client_for(rater)
    assert client.get(f"/api/v1/readings/{reading.public_id}").status_code == 200
    assert client_for(raters[1]).get(f"/api/v1/readings/{reading.public_id}").status_code == 404
    db.execute(
        ProjectMember.__table__.delete().where(
            ProjectMember.user_id == rater.id, ProjectMember.role == MemberRole.rater
        )
    )
    db.commit()
    assert client.get(f"/api/v1/readings/{reading.public_id}").status_code == 404
    assert client.get(f"/api/v1/readings/{reading.public_id}/image").status_code == 404


def test_severity_report_by_hand(app, db, make_user, make_project):
    """Severity: RMSE against the consensus mean grade; the model right where its grade is the
    consensus grade."""
    from assist_support import store_suggestions, stored_images

    from labeler.allocation import services as allocation
    from labeler.allocation.models import GoldenImage

    lead = make_user(None, "lead")
    project = make_project(lead, protocol="severity")
    images = stored_images(app, db, project, 8)
    raters = [make_user(None, "rater") for _ in range(2)]
    allocation.allocate(db, lead, project, raters, golden_size=3, overlap=1, seed=5)
    golden = sorted(db.scalars(select(GoldenImage.image_id)).all())
    # the reference: rater A grades 2, 3, 4 and rater B 2, 4, 4 -> means 2, 3.5, 4 (grades 2, 4, 4)
    for rater, grades in zip(raters, ([2, 3, 4], [2, 4, 4]), strict=True):
        for image_id, g in zip(golden, grades, strict=True):
            db.add(
                Label(
                    project_id=project.id,
                    rater_id=rater.id,
                    image_id=image_id,
                    decision="graded",
                    grade=float(g),
                )
            )
    model = dict(zip(golden, [2, 3, 4], strict=True))  # right, wrong, right
    store_suggestions(
        db,
        project,
        {
            im.id: {"score": float(model.get(im.id, 1)), "grade": model.get(im.id, 1)}
            for im in images
        },
    )
    study = _study(db, lead, project)
    reader = raters[0]
    unassisted, assisted = [3, 4, 4], [2, 3, 4]  # errors 1, .5, 0 and 0, .5, 0
    for image_id, u, a in zip(golden, unassisted, assisted, strict=True):
        for r in db.scalars(
            select(StudyReading).where(
                StudyReading.rater_id == reader.id, StudyReading.image_id == image_id
            )
        ):
            r.decision, r.grade, r.answered_at = "graded", float(a if r.assisted else u), T0
    db.commit()
    report = study_report(db, study, resamples=200)
    assert report["metric"] == "rmse"
    (mine,) = [r for r in report["readers"] if r["rater_id"] == reader.id]
    acc = mine["accuracy"]
    assert acc["unassisted"] == pytest.approx((1.25 / 3) ** 0.5)
    assert acc["assisted"] == pytest.approx((0.25 / 3) ** 0.5)
    assert acc["difference"] == pytest.approx((0.25 / 3) ** 0.5 - (1.25 / 3) ** 0.5)
    # model right on images 0 and 2; image 0: 3 -> the model's 2 (right); image 1: 4 -> the
    # model's 3 (wrong, the consensus grade is 4)
    assert mine["switches"] == {
        "model_right": 2,
        "model_wrong": 1,
        "to_model_when_right": 1,
        "away_when_right": 0,
        "to_model_when_wrong": 1,
        "away_when_wrong": 0,
    }
