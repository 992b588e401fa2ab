"""The skin-type second question in the reports: the fused type fills the fairness breakdowns where
the manifest has none (and says so), the agreement JSON's skin-type section, the export columns."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from sqlalchemy import update

from labeler.images.models import Image
from labeler.metrics.breakdowns import fitzpatrick_with_fallback
from labeler.metrics.skin_type import skin_type_agreement
from labeler.reports.export import training_manifest

H, N = "healthy_skin", "no_skin"


def st(decision, skin):
    return {"decision": decision, "skin_type": skin}


# image 0: the manifest says II (the raters' V is not used); image 1: no manifest, raters 4, 4, 5
# (median IV); image 2: no manifest, raters 3, 4 and "cannot assess" (a tie, left unknown); image
# 3: no manifest, no skin-type answer; image 4: no manifest, raters 6, 6 (VI)
TABLE = [
    [st(H, 5), st(H, 5), st(N, 5)],
    [st(H, 4), st(H, 4), st(H, 5)],
    [st(N, 3), st(N, 4), st(N, 0)],
    [H, H, N],
    [st(H, 6), st(N, 6), None],
]


@pytest.fixture()
def asked(db, build_project):
    b = build_project("quality", TABLE, golden={0, 1})
    b.project.settings = {**b.project.settings, "ask_skin_type": True}
    db.execute(update(Image).where(Image.id == b.images[0]).values(fitzpatrick=2))
    db.flush()
    return b


def _agreement(client, b):
    resp = client.get(f"/api/v1/projects/{b.project.id}/agreement", headers=b.headers)
    assert resp.status_code == 200, resp.json
    return resp.json


def _export(client, b, kind, fmt):
    resp = client.get(
        f"/api/v1/projects/{b.project.id}/export?kind={kind}&format={fmt}", headers=b.headers
    )
    assert resp.status_code == 200
    text = resp.get_data(as_text=True)
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(text)))
    return [json.loads(line) for line in text.splitlines()]


def test_the_breakdown_takes_the_manifest_first_then_the_raters_fused_type(client, asked):
    fairness = _agreement(client, asked)["fairness"]
    assert fairness["fitzpatrick_sources"] == {
        "manifest": 1,
        "raters": 2,
        "unknown": 2,
        "rater_ties": 1,
    }
    assert "import manifest" in fairness["fitzpatrick_source"]
    assert "raters' fused answer" in fairness["fitzpatrick_source"]
    groups = {g["group"]: g for g in fairness["fitzpatrick"]}
    assert (groups["II"]["images"], groups["II"]["from_manifest"], groups["II"]["from_raters"]) == (
        1,
        1,
        0,
    )
    assert (groups["IV"]["images"], groups["IV"]["from_raters"]) == (1, 1)
    assert (groups["VI"]["images"], groups["VI"]["from_raters"]) == (1, 1)
    assert groups["V"]["images"] == 0  # image 0's raters said V; the manifest's II wins
    assert groups["III-IV"]["images"] == 1 and groups["unknown"]["images"] == 2
    assert groups["unknown"]["from_manifest"] == groups["unknown"]["from_raters"] == 0


def test_the_dashboard_says_where_the_types_come_from(client, asked, login_as):
    page = login_as(asked.lead).get(f"/projects/{asked.project.id}/dashboard")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "1 images from the manifest, 2 from the raters" in html
    assert 'id="skin-type-agreement"' in html


def test_agreement_json_has_the_skin_type_section(client, asked):
    body = _agreement(client, asked)
    section = body["skin_type"]
    codes = np.array(
        [[5, 5, 5], [4, 4, 5], [3, 4, 0], [-1, -1, -1], [6, 6, -1]], dtype=np.int64
    )  # rows follow the images by id (the build order)
    ref = skin_type_agreement(codes, golden=np.array([1, 1, 0, 0, 0], bool), resamples=0)
    assert section["kappa_quadratic"]["mean"] == pytest.approx(ref.kappa.mean)
    assert section["krippendorff_alpha_ordinal"]["alpha"] == pytest.approx(ref.alpha.alpha)
    # exact agreement by hand, per pair over the images both graded (1-6):
    # raters 1-2: images 0, 1, 2, 4 -> 3 of 4; 1-3: images 0, 1 -> 1 of 2; 2-3: 0, 1 -> 1 of 2
    assert section["exact_agreement"]["mean"] == pytest.approx((0.75 + 0.5 + 0.5) / 3)
    assert section["within_one_agreement"]["mean"] == pytest.approx(1.0)
    assert section["cannot_assess"] == 1 and section["answers"] == 11
    assert section["fused_images"] == 3 and section["fused_ties"] == 1
    assert [r["golden_images"] for r in section["raters"]] == [2, 2, 2]
    # MAD on the golden images 0 (median 5) and 1 (median 4): rater 3 is off by 1 on image 1
    assert [r["mad"] for r in section["raters"]] == pytest.approx([0.0, 0.0, 0.5])
    assert section["kappa_quadratic"]["interval"]["low"] is not None


def test_fused_and_raw_exports_gain_skin_type_columns(client, asked):
    fused = _export(client, asked, "fused", "jsonl")
    by_image = {r["image_id"]: r for r in fused}
    first, second, third, fourth = (by_image[i] for i in asked.images[:4])
    assert first["fitzpatrick"] == 2 and first["skin_type"] == 5  # manifest and raters side by side
    assert second["skin_type"] == 4 and second["skin_type_median"] == 4.0
    assert second["skin_type_votes"] == {"I": 0, "II": 0, "III": 0, "IV": 2, "V": 1, "VI": 0}
    assert third["skin_type"] is None and third["skin_type_tie"] == [3, 4]
    assert third["skin_type_cannot_assess"] == 1 and third["skin_type_median"] == 3.5
    assert fourth["skin_type"] is None and fourth["skin_type_median"] is None
    rows = _export(client, asked, "fused", "csv")
    assert {"skin_type", "skin_type_votes_IV", "skin_type_tie"} <= set(rows[0])
    assert {r["image_id"]: r["skin_type_tie"] for r in rows}[str(asked.images[2])] == "3;4"
    raw = _export(client, asked, "raw", "csv")
    got = {(r["image_id"], r["rater_id"]): r["skin_type"] for r in raw}
    rater3 = str(asked.raters[2].id)
    assert got[(str(asked.images[2]), rater3)] == "0"  # "cannot assess"
    assert got[(str(asked.images[3]), rater3)] == ""  # not answered
    raw_json = _export(client, asked, "raw", "jsonl")
    assert sorted(r["skin_type"] for r in raw_json if r["skin_type"] is not None) == sorted(
        [5, 5, 5, 4, 4, 5, 3, 4, 0, 6, 6]
    )


def test_projects_without_the_question_have_no_skin_type_columns(client, build_project):
    b = build_project("quality", [[H, N], [N, N]])
    body = _agreement(client, b)
    assert "skin_type" not in body
    assert body["fairness"]["fitzpatrick_sources"]["raters"] == 0
    assert "skin_type" not in _export(client, b, "fused", "jsonl")[0]
    assert "skin_type" not in _export(client, b, "raw", "jsonl")[0]


def test_severity_projects_feed_the_breakdown_too(client, db, build_project):
    g = {"decision": "graded"}
    b = build_project(
        "severity",
        [[{**g, "grade": 2, "skin_type": 1}, {**g, "grade": 3, "skin_type": 2}]],
    )
    b.project.settings = {**b.project.settings, "ask_skin_type": True}
    db.flush()
    fairness = _agreement(client, b)["fairness"]
    groups = {x["group"]: x for x in fairness["fitzpatrick"]}
    # a tie between I and II: the image stays unknown, and the tie is counted
    assert groups["unknown"]["images"] == 1 and fairness["fitzpatrick_sources"]["rater_ties"] == 1


def test_fitzpatrick_with_fallback_is_manifest_first():
    types, source = fitzpatrick_with_fallback(
        ["III", None, "", 7, None], np.array([5, 2, -1, 4, 0])
    )
    assert types.tolist() == [3, 2, 0, 4, 0]
    assert source.tolist() == [0, 1, 2, 1, 2]
    types, source = fitzpatrick_with_fallback([1, None])
    assert types.tolist() == [1, 0] and source.tolist() == [0, 2]


def test_training_manifest_takes_the_raters_type_where_the_manifest_has_none(app, db, asked):
    lines = [
        json.loads(x)
        for x in training_manifest(db, asked.project, app.extensions["labeler_storage"])
    ]
    fitz = {x["image_id"]: x["fitzpatrick"] for x in lines[1:]}
    assert [fitz[i] for i in asked.images] == [2, 4, None, None, 6]
