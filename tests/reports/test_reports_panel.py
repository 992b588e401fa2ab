"""Fusion method, fairness breakdowns, rater tendencies, ICC and MAE in the JSON, export and page."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from labeler import metrics
from labeler.images.models import Image
from labeler.metrics.dawid_skene import dawid_skene
from labeler.metrics.severity_reliability import intraclass_correlation

L, N, H, P = "lesion", "no_skin", "healthy_skin", "poor_quality"


def poor(*expl):
    return {"decision": P, "explanations": list(expl)}


def g(x):
    return {"decision": "graded", "grade": x}


# Rater 3 over-calls poor quality / blurry; image 3 is a plurality tie.
TABLE = [
    [L, L, L],
    [N, N, poor("blurry")],
    [H, H, H],
    [L, N, None],
    [P, P, poor("blurry", "bad_light")],
    [L, L, poor("blurry")],
    [H, H, H],
    [L, L, L],
]
FITZ = ["I", 2, "type III", None, "V", "VI", "iv", "weird"]
SITES = ["face", "Face", "back", None, "back", "arm", "arm", "face"]


def _set_meta(db, ids, fitz=FITZ, sites=SITES):
    for image_id, f, s in zip(ids, fitz, sites, strict=True):
        img = db.get(Image, image_id)
        img.fitzpatrick = f if isinstance(f, int) else None
        img.meta = {"skin_type": f} if isinstance(f, str) else {}
        img.body_site = s
    db.flush()


def _settings(db, project, **sections):
    settings = json.loads(json.dumps(project.settings or {}))
    for key, value in sections.items():
        settings.setdefault(key, {}).update(value)
    project.settings = settings
    db.flush()


def _agreement(client, b, scope="all"):
    resp = client.get(f"/api/v1/projects/{b.project.id}/agreement?scope={scope}", headers=b.headers)
    assert resp.status_code == 200
    return resp.json


def test_fairness_groups_in_the_agreement_json(client, db, build_project):
    b = build_project("quality", TABLE, golden={0, 1})
    _set_meta(db, b.images)
    fig = _agreement(client, b)
    fair = fig["fairness"]
    assert fair["min_group_images"] == 30
    fitz = {row["group"]: row for row in fair["fitzpatrick"]}
    assert list(fitz) == ["I", "II", "III", "IV", "V", "VI", "I-II", "III-IV", "V-VI", "unknown"]
    # "type III" and "iv" come from the metadata's skin_type, parsed; "weird" and None are unknown
    counts = {k: v["images"] for k, v in fitz.items()}
    assert counts == {
        "I": 1, "II": 1, "III": 1, "IV": 1, "V": 1, "VI": 1,
        "I-II": 2, "III-IV": 2, "V-VI": 2, "unknown": 2,
    }  # fmt: skip
    assert all(row["too_few"] for row in fair["fitzpatrick"])  # 30 by default
    # group I-II = images 0 and 1: the reference pairwise F1 on those rows
    ref = metrics.pairwise_f1(np.array([[0, 0, 0], [1, 1, 3]]), 4)
    assert fitz["I-II"]["macro_f1_mean"] == pytest.approx(ref.macro_mean)
    assert fitz["I-II"]["macro_f1_std"] == pytest.approx(ref.macro_std)
    assert fitz["I-II"]["pairs"] == ref.macro_n_pairs
    sites = {row["group"]: row for row in fair["body_site"]}
    assert list(sites) == ["arm", "back", "face", "unknown"]
    assert [sites[s]["images"] for s in sites] == [2, 2, 3, 1]
    iv = sites["face"]["macro_f1_interval"]
    assert iv["low"] <= sites["face"]["macro_f1_mean"] <= iv["high"]

    _settings(db, b.project, agreement={"min_group_images": 2})
    fair = _agreement(client, b)["fairness"]
    assert {r["group"]: r["too_few"] for r in fair["body_site"]} == {
        "arm": False, "back": False, "face": False, "unknown": True,
    }  # fmt: skip
    golden = _agreement(client, b, "golden")["fairness"]
    assert sum(r["images"] for r in golden["body_site"]) == 2  # scope applies


def test_tendencies_in_the_agreement_json(client, build_project):
    b = build_project("quality", TABLE)
    fig = _agreement(client, b)
    ten = {r["name"]: r for r in fig["tendencies"]["raters"]}
    r3 = ten["Rater 3"]
    assert r3["images"] == 7  # image 3 has no label of rater 3
    poor_q = next(c for c in r3["classes"] if c["class"] == P)
    # rater 3 says poor quality on images 1, 4, 5 of 7; the others on image 4 only (both)
    assert poor_q["rate"] == pytest.approx(3 / 7)
    assert poor_q["panel_rate"] == pytest.approx(1 / 7)
    assert poor_q["difference"] == pytest.approx(2 / 7)
    assert poor_q["interval"]["low"] <= 2 / 7 <= poor_q["interval"]["high"]
    blurry = next(e for e in r3["explanations"] if e["explanation"] == "blurry")
    assert blurry["rate"] == pytest.approx(3 / 7) and blurry["panel_rate"] == 0
    r1 = ten["Rater 1"]
    healthy = next(c for c in r1["classes"] if c["class"] == H)
    # rater 1 on images 0-7 (8, image 3 shared with rater 2): healthy on 2, 6; panel the same
    assert healthy["difference"] == pytest.approx(0.0)


def test_dawid_skene_method_drives_json_and_export(client, db, build_project):
    b = build_project("quality", TABLE, golden={0, 1, 2})
    plain = _agreement(client, b)
    assert plain["fusion"]["method"] == "plurality"
    _settings(db, b.project, fusion={"method": "dawid_skene"})
    fig = _agreement(client, b)
    fusion = fig["fusion"]
    assert fusion["method"] == "dawid_skene" and "Dawid and Skene 1979" in fusion["reference"]
    assert len(fusion["raters"]) == 3
    for r in fusion["raters"]:
        np.testing.assert_allclose(np.array(r["confusion"]).sum(axis=1), 1.0)
    ds = dawid_skene(np.array([[0, 0, 0], [1, 1, 3], [2, 2, 2], [0, 1, -1], [3, 3, 3],
                                       [0, 0, 3], [2, 2, 2], [0, 0, 0]]), 4)  # fmt: skip
    np.testing.assert_allclose(fusion["raters"][2]["confusion"], ds.confusion[2])
    dist = {d["class"]: d["count"] for d in fig["distribution"]}
    assert sum(dist.values()) == int((ds.fused >= 0).sum())

    rows = [
        json.loads(line)
        for line in client.get(
            f"/api/v1/projects/{b.project.id}/export?kind=fused&format=jsonl", headers=b.headers
        )
        .get_data(as_text=True)
        .splitlines()
    ]
    assert {r["fusion_method"] for r in rows} == {"dawid_skene"}
    tie = rows[3]  # lesion vs no_skin: Dawid-Skene decides from the raters' estimated reliability
    assert tie["tie"] and tie["resolution"] == "dawid_skene"
    assert tie["fused_class"] == ["lesion", "no_skin", "healthy_skin", "poor_quality"][ds.fused[3]]
    assert sum(tie["posterior"].values()) == pytest.approx(1.0)
    assert tie["posterior"][tie["fused_class"]] == pytest.approx(ds.confidence[3])
    text = client.get(
        f"/api/v1/projects/{b.project.id}/export?kind=fused&format=csv", headers=b.headers
    ).get_data(as_text=True)
    first = next(csv.DictReader(io.StringIO(text)))
    assert first["fusion_method"] == "dawid_skene" and float(first["posterior_lesion"]) > 0.5


def test_severity_icc_mae_and_breakdown(client, db, build_project):
    table = [
        [g(1), g(2), g(2)],
        [g(3), g(3), g(5)],
        [g(4), g(4), g(4)],
        [g(2), None, g(3)],
        [g(5), g(4), g(5)],
    ]
    b = build_project("severity", table, golden={0, 1, 2, 3, 4})
    _set_meta(db, b.images, fitz=[1, 1, 5, 6, None], sites=["face"] * 5)
    fig = _agreement(client, b)
    sr = fig["severity_reliability"]
    assert sr["images"] == 4 and sr["images_left_out"] == 1 and sr["raters"] == 3
    complete = np.array([r for r in table if None not in r], dtype=object)
    ref = intraclass_correlation(
        np.array([[c["grade"] for c in r] for r in complete], dtype=float), resamples=0
    )
    assert sr["icc2_1"] == pytest.approx(ref.icc2) and sr["icc3_1"] == pytest.approx(ref.icc3)
    # MAE by hand for rater 1 on the 5 golden images (consensus includes the rater)
    cons = [5 / 3, 11 / 3, 4, 2.5, 14 / 3]
    mine = [1, 3, 4, 2, 5]
    r1 = fig["raters"][0]
    assert r1["mae"] == pytest.approx(np.mean(np.abs(np.subtract(mine, cons))))
    assert r1["mae_interval"]["low"] <= r1["mae"] <= r1["mae_interval"]["high"]
    fitz = {r["group"]: r for r in fig["fairness"]["fitzpatrick"]}
    assert fitz["I"]["images"] == 2 and fitz["I-II"]["images"] == 2
    assert fitz["I"]["mean_consensus"] == pytest.approx((5 / 3 + 11 / 3) / 2)
    sq = [(x - 5 / 3) ** 2 for x in (1, 2, 2)] + [(x - 11 / 3) ** 2 for x in (3, 3, 5)]
    assert fitz["I"]["rmse"] == pytest.approx(np.sqrt(np.mean(sq)))
    grades = {c["class"]: c for c in fig["tendencies"]["raters"][2]["classes"]}
    assert set(grades) == {"1", "2", "3", "4", "5"}


def test_dashboard_shows_fusion_fairness_tendencies(client, db, login_as, build_project):
    b = build_project("quality", TABLE, golden={0, 1})
    _set_meta(db, b.images)
    _settings(db, b.project, fusion={"method": "dawid_skene"})
    login_as(b.lead)
    html = client.get(f"/projects/{b.project.id}/dashboard").get_data(as_text=True)
    for anchor in ('id="tendencies"', 'id="fairness-fitzpatrick"', 'id="fairness-body_site"'):
        assert anchor in html
    assert "Fusion: Dawid-Skene" in html and "too few to say" in html
    sb = build_project("severity", [[g(1), g(2)], [g(3), g(4)]], golden={0, 1})
    login_as(sb.lead)
    html = client.get(f"/projects/{sb.project.id}/dashboard").get_data(as_text=True)
    assert 'id="severity-reliability"' in html and 'id="mae"' in html


def test_fused_export_and_training_manifest_carry_skin_type_and_site(
    app, client, db, build_project
):
    from labeler.reports.export import training_manifest

    b = build_project("quality", TABLE, golden={0, 1})
    _set_meta(db, b.images)
    rows = [
        json.loads(line)
        for line in client.get(
            f"/api/v1/projects/{b.project.id}/export?kind=fused&format=jsonl", headers=b.headers
        )
        .get_data(as_text=True)
        .splitlines()
    ]
    assert [r["fitzpatrick"] for r in rows] == [1, 2, 3, None, 5, 6, 4, None]
    assert [r["body_site"] for r in rows] == SITES
    assert {r["fusion_method"] for r in rows} == {"plurality"}
    lines = list(training_manifest(db, b.project, app.extensions["labeler_storage"]))
    images = [json.loads(x) for x in lines[1:]]
    assert [(x["fitzpatrick"], x["body_site"]) for x in images] == list(
        zip([1, 2, 3, None, 5, 6, 4, None], SITES, strict=True)
    )
