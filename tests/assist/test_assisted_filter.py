"""Assisted labels in the figures: the agreement JSON, the exports and the dashboard carry the flag,
filter on it (?assisted=0|1) and say when their figures include labels made with suggestions."""

from __future__ import annotations

import json

import pytest
from assist_support import MODEL_ID
from sqlalchemy import select

from labeler.allocation.models import QueueItem
from labeler.labeling.models import Label


@pytest.fixture()
def labeled(db, assisted_project):
    """Every rater labels every item; rater 0's labels were made with suggestions shown."""
    lead, project, raters, _images = assisted_project
    for k, rater in enumerate(raters):
        for it in db.scalars(select(QueueItem).where(QueueItem.rater_id == rater.id)):
            db.add(
                Label(
                    project_id=project.id,
                    rater_id=rater.id,
                    image_id=it.image_id,
                    decision="no_skin",
                    assisted=k == 0,
                    suggestion_model_id=MODEL_ID if k == 0 else None,
                )
            )
    db.commit()
    n_assisted = db.query(Label).filter(Label.assisted.is_(True)).count()
    return lead, project, n_assisted, db.query(Label).count()


def test_agreement_json_says_and_filters(labeled, client_for):
    lead, project, n_assisted, total = labeled
    client = client_for(lead)
    body = client.get(f"/api/v1/projects/{project.id}/agreement").get_json()
    assert body["assisted"] == {
        "filter": None,
        "labels": total,
        "assisted_labels": n_assisted,
        "note": f"{n_assisted} of the {total} labels behind these figures were made with the "
        "model's suggestions shown (pre-labeling)",
    }
    without = client.get(f"/api/v1/projects/{project.id}/agreement?assisted=0").get_json()
    assert without["assisted"]["assisted_labels"] == 0 and without["assisted"]["note"] is None
    assert without["assisted"]["labels"] == total - n_assisted
    only = client.get(f"/api/v1/projects/{project.id}/agreement?assisted=1").get_json()
    assert only["assisted"]["labels"] == only["assisted"]["assisted_labels"] == n_assisted
    bad = client.get(f"/api/v1/projects/{project.id}/agreement?assisted=yes")
    assert bad.status_code == 400 and "0 or 1" in bad.get_json()["error"]["message"]


def test_raw_export_carries_the_flag_and_filters(labeled, client_for):
    lead, project, n_assisted, total = labeled
    client = client_for(lead)

    def rows(query=""):
        resp = client.get(f"/api/v1/projects/{project.id}/export?kind=raw&format=jsonl{query}")
        assert resp.status_code == 200
        return [json.loads(line) for line in resp.get_data(as_text=True).splitlines()]

    bad = client.get(f"/api/v1/projects/{project.id}/export?kind=raw&assisted=2")
    assert bad.status_code == 400 and "0 or 1" in bad.get_json()["error"]["message"]
    every = rows()
    assert len(every) == total
    assert sum(r["assisted"] for r in every) == n_assisted
    assert {r["suggestion_model_id"] for r in every if r["assisted"]} == {MODEL_ID}
    assert (
        all(r["assisted"] for r in rows("&assisted=1")) and len(rows("&assisted=1")) == n_assisted
    )
    assert len(rows("&assisted=0")) == total - n_assisted
    revs = client.get(f"/api/v1/projects/{project.id}/export?kind=raw&format=csv")
    assert "assisted" in revs.get_data(as_text=True).splitlines()[0].split(",")
    fused = client.get(f"/api/v1/projects/{project.id}/export?kind=fused&format=jsonl&assisted=0")
    assert fused.status_code == 200


def test_dashboard_says_when_figures_include_assisted_labels(labeled, client_for):
    lead, project, n_assisted, total = labeled
    client = client_for(lead)
    page = client.get(f"/projects/{project.id}/dashboard").get_data(as_text=True)
    assert f"{n_assisted} of the {total} labels behind these figures" in page
    without = client.get(f"/projects/{project.id}/dashboard?assisted=0").get_data(as_text=True)
    assert "Only labels made without the model" in without
    assert "labels behind these figures were made with" not in without
