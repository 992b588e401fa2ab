"""Raters' flags in the reports: the unsure column of the exports, and the flagged filter of the
exports, the ties and the dashboard."""

from __future__ import annotations

import csv
import io
import json

import pytest

from labeler.labeling.models import ItemFlag

L, N, H = "lesion", "no_skin", "healthy_skin"
TABLE = [
    [L, L, N],  # 0: lesion 2-1
    [L, N, None],  # 1: tie lesion / no_skin
    [H, N, None],  # 2: tie healthy_skin / no_skin
    [N, N, N],  # 3
]


@pytest.fixture()
def flagged(db, build_project):
    """Rater 1 marks image 1 unsure; rater 2 leaves a note (not unsure) on image 0; rater 3 marks image
    1 unsure too, then takes it back (the row stays, unsure false, no note)."""
    b = build_project("quality", TABLE, golden={0})
    r1, r2, r3 = b.raters
    for rater, image, unsure, comment in (
        (r1, 1, True, None),
        (r2, 0, False, "Is this a scar?"),
        (r3, 3, False, None),
    ):
        db.add(
            ItemFlag(
                project_id=b.project.id,
                rater_id=rater.id,
                image_id=b.images[image],
                unsure=unsure,
                comment=comment,
            )
        )
    db.flush()
    return b


def get(client, b, path):
    resp = client.get(f"/api/v1/projects/{b.project.id}/{path}", headers=b.headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp


def test_raw_export_carries_each_raters_unsure_mark(client, flagged):
    b = flagged
    rows = list(csv.DictReader(io.StringIO(get(client, b, "export?kind=raw&format=csv").text)))
    unsure = {(int(r["image_id"]), int(r["rater_id"])) for r in rows if r["unsure"] == "True"}
    assert unsure == {(b.images[1], b.raters[0].id)}
    assert len(rows) == 10  # every label, flagged or not
    only = list(
        csv.DictReader(io.StringIO(get(client, b, "export?kind=raw&format=csv&flagged=1").text))
    )
    # images 0 (a note) and 1 (unsure); a withdrawn mark with no note is not a flag
    assert {int(r["image_id"]) for r in only} == {b.images[0], b.images[1]}
    assert len(only) == 5


def test_fused_export_counts_unsure_raters_and_filters_flagged(client, flagged):
    b = flagged
    lines = get(client, b, "export?kind=fused&format=jsonl").text.splitlines()
    counts = {json.loads(x)["image_id"]: json.loads(x)["unsure_count"] for x in lines}
    assert counts == {b.images[0]: 0, b.images[1]: 1, b.images[2]: 0, b.images[3]: 0}
    only = get(client, b, "export?kind=fused&format=jsonl&flagged=1").text.splitlines()
    assert [json.loads(x)["image_id"] for x in only] == [b.images[0], b.images[1]]


def test_ties_and_dashboard_filter_by_flag(client, db, flagged, login_as):
    b = flagged
    ties = get(client, b, "ties").json["ties"]
    assert {t["image_id"]: t["flagged"] for t in ties} == {b.images[1]: True, b.images[2]: False}
    assert [t["image_id"] for t in get(client, b, "ties?flagged=1").json["ties"]] == [b.images[1]]
    figures = get(client, b, "agreement?scope=flagged").json
    assert figures["scope"] == "flagged" and figures["images"] == 2
    page = login_as(b.lead)
    dash = page.get(f"/projects/{b.project.id}/dashboard?scope=flagged")
    assert dash.status_code == 200 and b"Flagged by raters" in dash.data
    tie_page = page.get(f"/projects/{b.project.id}/ties?flagged=1")
    assert tie_page.status_code == 200 and b"flagged by a rater" in tie_page.data
    assert f"#{b.images[2]}".encode() not in tie_page.data


def test_dashboard_with_no_flagged_image(client, build_project, login_as):
    b = build_project("severity", [[{"decision": "graded", "grade": 3.0}, None]])
    figures = get(client, b, "agreement?scope=flagged").json
    assert figures["images"] == 0
    assert (
        login_as(b.lead).get(f"/projects/{b.project.id}/dashboard?scope=flagged").status_code == 200
    )
