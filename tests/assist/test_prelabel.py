"""Pre-labeling: with the project's setting on, every item of every rater carries the model's
suggestion (golden and fold alike), and labels made then are stored as assisted with the model."""

from __future__ import annotations

from assist_support import MODEL_ID
from sqlalchemy import select

from labeler.allocation.models import QueueItem
from labeler.assist.suggestions import prelabel_model, suggestion_text
from labeler.labeling.models import Label, LabelRevision
from labeler.projects.settings import merge_settings


def _turn_on(db, project, model_id=MODEL_ID):
    project.settings = merge_settings(
        project.protocol, project.settings or {}, {"suggestions_model_id": model_id}
    )
    db.commit()


def _put(client, public_id, body):
    return client.put(
        f"/api/v1/items/{public_id}/label", json=body, headers={"X-CSRFToken": client.csrf}
    )


def test_suggestions_in_plain_words():
    assert (
        suggestion_text(
            {
                "class": "poor_quality",
                "probability": 0.9,
                "issues": [{"name": "blurry", "probability": 0.82}],
            },
            {},
        )
        == "Model suggests: Poor quality (0.90) — blurry (0.82)"
    )
    assert suggestion_text({"class": "lesion", "probability": 0.7, "issues": []}, {}) == (
        "Model suggests: Lesion (0.70)"
    )
    assert (
        suggestion_text({"score": 2.84, "grade": 3}, {}) == "Model suggests: 3 · Mild (score 2.84)"
    )
    assert suggestion_text(None, {}) == "The model has no suggestion for this image."


def test_off_by_default_and_labels_are_not_assisted(db, assisted_project, client_for):
    _lead, project, raters, _images = assisted_project
    assert prelabel_model(db, project) is None
    client = client_for(raters[0])
    item = db.scalar(select(QueueItem).where(QueueItem.rater_id == raters[0].id).limit(1))
    body = client.get(f"/api/v1/items/{item.public_id}/label").get_json()
    assert body["suggestion"] is None
    resp = _put(client, item.public_id, {"decision": "no_skin"})
    assert resp.status_code == 200 and resp.get_json()["assisted"] is False
    label = db.scalar(select(Label).where(Label.rater_id == raters[0].id))
    assert label.assisted is False and label.suggestion_model_id is None


def test_on_every_item_shows_the_suggestion_and_labels_are_assisted(
    db, assisted_project, client_for
):
    _lead, project, raters, images = assisted_project
    _turn_on(db, project)
    assert prelabel_model(db, project) == MODEL_ID
    unreadable = images[5].id
    rater = raters[0]
    client = client_for(rater)
    items = list(db.scalars(select(QueueItem).where(QueueItem.rater_id == rater.id)))
    assert {it.is_golden for it in items} == {True, False}
    for it in items:
        body = client.get(f"/api/v1/items/{it.public_id}/label").get_json()
        s = body["suggestion"]
        assert s is not None and set(s) == {"model_id", "answer", "text"}
        assert s["model_id"] == MODEL_ID
        if it.image_id == unreadable:
            assert s["answer"] is None and "no suggestion" in s["text"]
        else:
            assert s["text"].startswith("Model suggests: ")
        page = client.get(f"/items/{it.public_id}").get_data(as_text=True)
        assert "Model suggests" in page or "no suggestion" in page
    resp = _put(client, items[0].public_id, {"decision": "no_skin"})
    assert resp.status_code == 200 and resp.get_json()["assisted"] is True
    resp = _put(
        client, items[0].public_id, {"decision": "lesion", "icd10": "L40.0", "base_version": 1}
    )
    assert resp.status_code == 200, resp.get_json()
    label = db.scalar(select(Label).where(Label.rater_id == rater.id))
    assert label.assisted is True and label.suggestion_model_id == MODEL_ID
    revs = db.scalars(select(LabelRevision).where(LabelRevision.label_id == label.id)).all()
    assert [(r.assisted, r.suggestion_model_id) for r in revs] == [(True, MODEL_ID)] * 2


def test_not_shown_until_the_suggestions_are_computed(db, assisted_project, client_for):
    _lead, project, raters, _images = assisted_project
    _turn_on(db, project, "quality-20261130T000000-notrun")  # a model never computed here
    assert prelabel_model(db, project) is None
    item = db.scalar(select(QueueItem).where(QueueItem.rater_id == raters[0].id).limit(1))
    body = client_for(raters[0]).get(f"/api/v1/items/{item.public_id}/label").get_json()
    assert body["suggestion"] is None


def test_the_setting_refuses_a_model_the_server_lacks(db, assisted_project, client_for):
    lead, project, _raters, _images = assisted_project
    client = client_for(lead)
    resp = client.patch(
        f"/api/v1/projects/{project.id}",
        json={"settings": {"suggestions_model_id": "quality-20990101T000000-nothere"}},
        headers={"X-CSRFToken": client.csrf},
    )
    assert resp.status_code == 422, resp.get_json()
    assert "suggestions_model_id" not in (db.get(type(project), project.id).settings or {}) or (
        db.get(type(project), project.id).settings.get("suggestions_model_id") is None
    )
    bad = client.patch(
        f"/api/v1/projects/{project.id}",
        json={"settings": {"suggestions_model_id": 5}},
        headers={"X-CSRFToken": client.csrf},
    )
    assert bad.status_code == 422 and "model id or null" in bad.get_json()["error"]["message"]
