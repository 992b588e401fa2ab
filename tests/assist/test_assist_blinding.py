"""Blinding with the model in the loop (docs/domain.md section 2): with pre-labeling on, and in each
phase of a reader study (assisted and unassisted), nothing a rater receives tells golden from fold:
the same JSON shapes, headers, suggestion presence and an order that does not sort by kind."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

from assist_support import MODEL_ID
from helpers import header_view, shape
from sqlalchemy import select

from labeler.allocation.models import QueueItem
from labeler.assist.models import StudyReading
from labeler.assist.studies import create_study
from labeler.projects.settings import merge_settings


def _golden_images(db, project) -> set[int]:
    return set(
        db.scalars(
            select(QueueItem.image_id).where(
                QueueItem.project_id == project.id, QueueItem.is_golden.is_(True)
            )
        )
    )


def test_prelabeling_on_shows_the_same_to_golden_and_fold(db, assisted_project, client_for):
    _lead, project, raters, _images = assisted_project
    project.settings = merge_settings(
        project.protocol, project.settings or {}, {"suggestions_model_id": MODEL_ID}
    )
    db.commit()
    by_kind = defaultdict(lambda: defaultdict(set))
    for rater in raters:
        client = client_for(rater)
        items = db.scalars(select(QueueItem).where(QueueItem.rater_id == rater.id)).all()
        for it in items:
            resp = client.get(f"/api/v1/items/{it.public_id}/label")
            body = resp.get_json()
            kind = it.is_golden
            # the answer's own shape follows the image (issues or none), not its kind
            by_kind[kind]["shape"].add(
                repr(shape({**body, "suggestion": sorted(body["suggestion"])}))
            )
            by_kind[kind]["headers"].add(header_view(resp.headers))
            s = body["suggestion"]
            # present on every item; its keys and model are the same; only the answer's words differ
            by_kind[kind]["suggestion_keys"].add(tuple(sorted(s)))
            by_kind[kind]["model"].add(s["model_id"])
            text = resp.get_data(as_text=True)
            assert "golden" not in text and "fold" not in text
    for aspect in ("shape", "headers", "suggestion_keys", "model"):
        assert by_kind[True][aspect] == by_kind[False][aspect], aspect
    # a suggestion answer's shape: with and without issues, both kinds see both
    assert len(by_kind[True]["suggestion_keys"]) == 1


def _walk_study(db, client, project, phase):
    """Read the study through the API, answering each reading; (json, headers, golden?) per reading."""
    golden = _golden_images(db, project)
    seen = []
    while True:
        resp = client.get(f"/api/v1/projects/{project.id}/reader-study/next")
        body = resp.get_json()
        reading = body["reading"]
        if reading is None or reading["phase"] != phase:
            return seen, body
        row = db.scalar(select(StudyReading).where(StudyReading.public_id == reading["id"]))
        image = client.get(reading["image_url"])
        image.close()
        seen.append(
            (body, header_view(resp.headers), header_view(image.headers), row.image_id in golden)
        )
        put = client.put(
            f"/api/v1/readings/{reading['id']}",
            json={"decision": "no_skin"},
            headers={"X-CSRFToken": client.csrf},
        )
        assert put.status_code == 200, put.get_json()


def test_reader_study_phases_show_the_same_to_golden_and_fold(
    app, db, assisted_project, client_for, monkeypatch
):
    lead, project, raters, _images = assisted_project
    study = create_study(db, lead, project, model_id=MODEL_ID, washout_days=0, seed=3)
    db.commit()
    rater = raters[0]
    client = client_for(rater)
    assisted_phase = db.scalar(
        select(StudyReading.phase).where(
            StudyReading.study_id == study.id,
            StudyReading.rater_id == rater.id,
            StudyReading.assisted.is_(True),
        )
    )
    for phase in (1, 2):
        seen, last = _walk_study(db, client, project, phase)
        assert seen, f"phase {phase} served nothing"
        by_kind = defaultdict(lambda: defaultdict(set))
        for body, headers, image_headers, is_golden in seen:
            reading = body["reading"]
            assert reading["phase"] == phase
            by_kind[is_golden]["shape"].add(
                repr(shape({**body, "reading": {**reading, "suggestion": None}}))
            )
            by_kind[is_golden]["headers"].add(headers)
            by_kind[is_golden]["image_headers"].add(image_headers)
            # the suggestion is on every reading of the assisted phase and on none of the other
            by_kind[is_golden]["suggestion"].add(reading["suggestion"] is not None)
        for aspect in ("shape", "headers", "image_headers", "suggestion"):
            assert by_kind[True][aspect] == by_kind[False][aspect], (phase, aspect)
        assert by_kind[True]["suggestion"] == {phase == assisted_phase}
        # the order: golden images are spread through the phase, not first or last as a block
        kinds = [g for *_x, g in seen]
        assert True in kinds and False in kinds
        assert kinds not in (sorted(kinds), sorted(kinds, reverse=True))  # not a block
    assert last["state"]["finished"] is True


def test_phase_two_order_is_a_fresh_shuffle_of_the_same_images(db, assisted_project):
    lead, project, raters, _ = assisted_project
    study = create_study(
        db,
        lead,
        project,
        model_id=MODEL_ID,
        washout_days=14,
        seed=9,
        now=datetime(2026, 12, 1, tzinfo=UTC),
    )
    golden = _golden_images(db, project)
    for rater in raters:
        order = {}
        for phase in (1, 2):
            order[phase] = [
                r.image_id
                for r in db.scalars(
                    select(StudyReading)
                    .where(
                        StudyReading.study_id == study.id,
                        StudyReading.rater_id == rater.id,
                        StudyReading.phase == phase,
                    )
                    .order_by(StudyReading.position)
                )
            ]
        assert sorted(order[1]) == sorted(order[2])
        assert order[1] != order[2]
        # golden positions differ between the phases (reshuffled), and are not the same block
        pos = {p: [k for k, i in enumerate(order[p]) if i in golden] for p in (1, 2)}
        assert pos[1] != pos[2]
