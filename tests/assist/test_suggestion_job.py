"""Computing suggestions with a trained model: a background job's body stores one answer per image
and model version (what ml.predict says), once; the API queues it for leads only."""
# ruff: noqa: F811  (fixtures imported from training_fixtures are used as arguments)

from __future__ import annotations

import re
import sys
from pathlib import Path

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "training"))
from training_fixtures import build_quality_project, ml_app, ml_root, quality_model  # noqa: F401

from labeler import ml
from labeler.assist.compute import run_job
from labeler.assist.jobs import start_job
from labeler.assist.models import JobStatus, Suggestion, SuggestionJob
from labeler.assist.suggestions import prelabel_model, suggestion_text
from labeler.images.models import Image

_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def test_a_job_stores_the_models_answer_for_every_image(ml_app, db, make_user, quality_model):
    storage = ml_app.extensions["labeler_storage"]
    factory = ml_app.extensions["labeler_db"].session_factory
    lead = make_user(None, "lead")
    project, ids = build_quality_project(db, storage, lead, n=12, golden=0, labeled=False)
    missing = db.get(Image, ids[0])
    missing.display_key = missing.display_key.replace("display", "display-gone")  # never stored
    job = start_job(db, ml_app.config, lead, project, quality_model.id)
    db.flush()
    assert job.status is JobStatus.queued
    done = run_job(factory, ml_app.config, storage, job.id)
    assert done.status is JobStatus.succeeded and (done.done, done.total) == (12, 12)
    model = ml.load_model(quality_model.path)
    rows = {
        s.image_id: s
        for s in db.scalars(select(Suggestion).where(Suggestion.project_id == project.id))
    }
    assert set(rows) == set(ids)
    assert rows[missing.id].answer is None and "missing" in rows[missing.id].error
    for image_id in ids[1:]:
        image = db.get(Image, image_id)
        with storage.open(image.display_key) as fh:
            pred = ml.predict(model, fh.read(), cams=False)
        answer = rows[image_id].answer
        assert answer["class"] == pred["class"]
        assert answer["probability"] == pred["probabilities"][pred["class"]]
        assert [i["name"] for i in answer["issues"]] == [i["name"] for i in pred["issues"]]
        assert suggestion_text(answer, {}).startswith("Model suggests: ")
    # a second job computes only what is missing: nothing, and the suggestions stay one per image
    again = start_job(db, ml_app.config, lead, project, quality_model.id)
    db.flush()
    assert run_job(factory, ml_app.config, storage, again.id).total == 0
    assert db.query(Suggestion).filter_by(project_id=project.id).count() == 12
    # claimed once: running a finished job again does nothing
    assert run_job(factory, ml_app.config, storage, again.id).status is JobStatus.succeeded
    # pre-labeling with this model is now ready
    project.settings = {**(project.settings or {}), "suggestions_model_id": quality_model.id}
    assert prelabel_model(db, project) == quality_model.id


def test_the_api_queues_a_job_for_leads_only(ml_app, db, make_user, quality_model):
    storage = ml_app.extensions["labeler_storage"]
    lead, rater = make_user(None, "lead"), make_user(None, "rater")
    project, _ids = build_quality_project(db, storage, lead, n=4, golden=0, labeled=False)
    db.commit()

    def client_for(user):
        c = ml_app.test_client()
        page = c.get("/auth/login").get_data(as_text=True)
        c.post(
            "/auth/dev-login", data={"email": user.email, "csrf_token": _CSRF.search(page).group(1)}
        )
        c.csrf = _CSRF.search(c.get("/").get_data(as_text=True)).group(1)
        return c

    client = client_for(lead)
    url = f"/api/v1/projects/{project.id}/suggestion-jobs"
    resp = client.post(
        url, json={"model_id": quality_model.id}, headers={"X-CSRFToken": client.csrf}
    )
    assert resp.status_code == 202, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "queued" and body["model_id"] == quality_model.id
    assert [j["id"] for j in client.get(url).get_json()["jobs"]] == [body["id"]]
    wrong = client.post(
        url,
        json={"model_id": "severity-20990101T000000-abcdef"},
        headers={"X-CSRFToken": client.csrf},
    )
    assert wrong.status_code == 422 and wrong.get_json()["error"]["message"]
    r = client_for(rater)
    assert (
        r.post(
            url, json={"model_id": quality_model.id}, headers={"X-CSRFToken": r.csrf}
        ).status_code
        == 403
    )
    assert db.query(SuggestionJob).filter_by(project_id=project.id).count() == 1
