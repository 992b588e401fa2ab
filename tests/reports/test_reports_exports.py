"""Fused/raw exports, ties and adjudication, agreement JSON, against hand-computed values."""

from __future__ import annotations

import csv
import io
import json

import pytest

from labeler.labeling.models import LabelRevision

L, N, H, P = "lesion", "no_skin", "healthy_skin", "poor_quality"


def poor(*expl):
    return {"decision": P, "explanations": list(expl)}


def lesion(code):
    return {"decision": L, "icd10": code}


QUALITY_TABLE = [
    [lesion("L70.0"), lesion("L70.0"), lesion("L20.9")],  # lesion 3-0, diagnosis L70.0 with 2 votes
    [N, N, H],  # no_skin 2-1
    [poor("blurry"), poor("blurry", "bad_light"), L],  # poor 2-1, blurry 2, bad_light 1
    [L, N, None],  # tie lesion/no_skin
    [H, P, N],  # three-way tie
    [None, None, None],  # unlabeled
]


def test_fused_export_quality(client, build_project):
    b = build_project("quality", QUALITY_TABLE, golden={0, 1})
    resp = client.get(
        f"/api/v1/projects/{b.project.id}/export?kind=fused&format=jsonl", headers=b.headers
    )
    assert resp.status_code == 200 and resp.mimetype == "application/x-ndjson"
    rows = [json.loads(line) for line in resp.get_data(as_text=True).splitlines()]
    assert [r["image_id"] for r in rows] == b.images
    r0, r1, r2, r3, r4, r5 = rows
    assert (r0["fused_class"], r0["diagnosis"], r0["diagnosis_votes"], r0["split"]) == (
        L,
        "L70.0",
        2,
        "golden",
    )
    assert r0["votes"] == {L: 3, N: 0, H: 0, P: 0} and r0["rater_count"] == 3
    assert (r1["fused_class"], r1["votes"][N], r1["votes"][H], r1["split"]) == (N, 2, 1, "golden")
    assert r2["fused_class"] == P and r2["relevant_explanations"] == [
        "blurry",
        "bad_light",
    ]  # k = 1
    assert r2["explanation_counts"]["blurry"] == 2 and r2["explanation_counts"]["bad_light"] == 1
    assert (r3["fused_class"], r3["tie"], r3["tied_classes"], r3["resolution"]) == (
        None,
        True,
        [L, N],
        "unresolved",
    )
    assert r4["tied_classes"] == [L, N, H, P][1:] or r4["tied_classes"] == [N, H, P]
    assert r5["rater_count"] == 0 and r5["resolution"] == "unlabeled" and r5["fused_class"] is None


def test_csv_export_is_flat_and_parses(client, build_project):
    b = build_project("quality", QUALITY_TABLE)
    text = client.get(
        f"/api/v1/projects/{b.project.id}/export?kind=fused&format=csv", headers=b.headers
    ).get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 6
    assert rows[0]["votes_lesion"] == "3" and rows[3]["tied_classes"] == "lesion;no_skin"
    assert rows[2]["relevant_explanations"] == "blurry;bad_light"


def test_adjudication_resolves_tie_and_is_audited(client, db, build_project):
    from labeler.audit.models import AuditEvent

    b = build_project("quality", QUALITY_TABLE)
    url = f"/api/v1/projects/{b.project.id}/ties"
    not_tied = client.post(f"{url}/{b.images[0]}", json={"decision": L}, headers=b.headers)
    assert not_tied.status_code == 409
    wrong = client.post(f"{url}/{b.images[3]}", json={"decision": H}, headers=b.headers)
    assert wrong.status_code == 422 and "tied classes" in wrong.json["error"]["message"]
    assert client.post(f"{url}/999999", json={"decision": L}, headers=b.headers).status_code == 404
    ok = client.post(
        f"{url}/{b.images[3]}",
        json={"decision": N, "note": "dermoscopy shows no lesion"},
        headers=b.headers,
    )
    assert ok.status_code == 200
    rows = [
        json.loads(x)
        for x in client.get(
            f"/api/v1/projects/{b.project.id}/export?kind=fused&format=jsonl", headers=b.headers
        )
        .get_data(as_text=True)
        .splitlines()
    ]
    assert (rows[3]["fused_class"], rows[3]["resolution"], rows[3]["adjudication"]) == (
        N,
        "adjudicated",
        N,
    )
    ties = client.get(f"/api/v1/projects/{b.project.id}/ties", headers=b.headers).json["ties"]
    assert {t["image_id"]: t["adjudication"] for t in ties} == {b.images[3]: N, b.images[4]: None}
    assert db.query(AuditEvent).filter_by(action="adjudication.set").count() == 1


def test_raw_export_and_revisions(client, db, build_project):
    from labeler.labeling.models import Label

    b = build_project("quality", QUALITY_TABLE)
    label = db.query(Label).filter_by(image_id=b.images[1], rater_id=b.raters[2].id).one()
    db.add(LabelRevision(label_id=label.id, version=1, author_id=b.raters[2].id, decision=N))
    db.add(LabelRevision(label_id=label.id, version=2, author_id=b.raters[2].id, decision=H))
    label.version = 2
    db.flush()
    raw = client.get(
        f"/api/v1/projects/{b.project.id}/export?kind=raw&format=jsonl", headers=b.headers
    )
    rows = [json.loads(x) for x in raw.get_data(as_text=True).splitlines()]
    assert len(rows) == 3 + 3 + 3 + 2 + 3
    assert {r["rater_email"] for r in rows} == {r.email for r in b.raters}
    revs = client.get(
        f"/api/v1/projects/{b.project.id}/export?kind=raw&format=jsonl&revisions=1",
        headers=b.headers,
    )
    rev_rows = [json.loads(x) for x in revs.get_data(as_text=True).splitlines()]
    assert [(r["version"], r["decision"]) for r in rev_rows] == [(1, N), (2, H)]


@pytest.mark.parametrize("query", ["kind=bogus&format=csv", "kind=fused&format=xml"])
def test_export_bad_arguments(client, build_project, query):
    b = build_project("quality", QUALITY_TABLE)
    resp = client.get(f"/api/v1/projects/{b.project.id}/export?{query}", headers=b.headers)
    assert resp.status_code == 400 and resp.json["error"]["message"]


def test_reports_forbidden_to_raters_and_other_leads(client, db, make_user, build_project):
    from labeler.auth.services import create_token

    b = build_project("quality", QUALITY_TABLE)
    other = make_user(None, "lead")
    _t, raw = create_token(db, other, other, "x")
    _t2, rater_raw = create_token(db, b.raters[0], b.raters[0], "x")
    db.flush()
    for token in (raw, rater_raw):
        for path in ("agreement", "export?kind=fused&format=csv", "ties"):
            resp = client.get(
                f"/api/v1/projects/{b.project.id}/{path}",
                headers={"Authorization": f"Bearer {token}"},
            )
            assert resp.status_code == 403, path


def test_agreement_json_quality(client, build_project):
    b = build_project("quality", QUALITY_TABLE, golden={0, 1, 2})
    fig = client.get(f"/api/v1/projects/{b.project.id}/agreement", headers=b.headers).json
    dist = {d["class"]: d["count"] for d in fig["distribution"]}
    assert dist == {L: 1, N: 1, H: 0, P: 1} and fig["ties_unresolved"] == 2
    # pair (r1, r2) co-labeled images 0-4; lesion F1 over images where either chose lesion: hand count
    # r1: L, N, P, L, H ; r2: L, N, P, N, P -> lesion TP=1, FP=1 (img3), FN=0 -> F1 = 2/3
    import numpy as np

    pair = fig["pair_macro_f1"]
    assert pair[0][0] is None and pair[0][1] == pair[1][0]
    golden = client.get(
        f"/api/v1/projects/{b.project.id}/agreement?scope=golden", headers=b.headers
    ).json
    assert golden["images"] == 3 and golden["scope"] == "golden"
    assert (
        client.get(
            f"/api/v1/projects/{b.project.id}/agreement?scope=x", headers=b.headers
        ).status_code
        == 400
    )
    assert np.isfinite(fig["macro_f1"]["mean"])


def g(x):
    return {"decision": "graded", "grade": x}


def test_severity_figures_match_seed_definition(client, build_project):
    table = [
        [g(1), g(2), g(2)],
        [g(3), g(3), g(5)],
        [g(4), g(4), g(4)],
        [g(2), None, {"decision": "not_acne"}],
    ]
    b = build_project("severity", table, golden={0, 1, 2})
    fig = client.get(f"/api/v1/projects/{b.project.id}/agreement", headers=b.headers).json
    # consensus (with the rater) on golden: 5/3, 11/3, 4
    cons = [5 / 3, 11 / 3, 4.0]
    grades = [[1, 2, 2], [3, 3, 5], [4, 4, 4]]
    expected = [(sum((grades[k][j] - cons[k]) ** 2 for k in range(3)) / 3) ** 0.5 for j in range(3)]
    got = [r["rmse"] for r in fig["raters"]]
    assert got == pytest.approx(expected, abs=1e-6)
    assert fig["bar"] == pytest.approx(max(expected), abs=1e-6)
    assert fig["non_graded"] == 1
    rows = [
        json.loads(x)
        for x in client.get(
            f"/api/v1/projects/{b.project.id}/export?kind=fused&format=jsonl", headers=b.headers
        )
        .get_data(as_text=True)
        .splitlines()
    ]
    assert rows[1]["severity"] == {
        "mean": pytest.approx(11 / 3, abs=1e-6),
        "median": 3.0,
        "std": pytest.approx(0.942809, abs=1e-6),
        "count": 3,
        "grade": 4,
    }
    assert rows[3]["severity"]["count"] == 1 and rows[3]["non_graded"] == {
        "not_acne": 1,
        "cannot_assess": 0,
    }


def test_cli_export_and_manifest(runner, build_project, tmp_path):
    b = build_project("quality", QUALITY_TABLE, golden={0})
    out = tmp_path / "fused.csv"
    res = runner.invoke(
        args=["export", str(b.project.id), "--kind", "fused", "--format", "csv", "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert len(list(csv.DictReader(io.StringIO(out.read_text())))) == 6
    man = tmp_path / "manifest.jsonl"
    res = runner.invoke(args=["export", str(b.project.id), "--kind", "manifest", "-o", str(man)])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in man.read_text().splitlines()]
    assert lines[0]["manifest"] == "labeler-training"
    body = lines[1:]
    assert len(body) == 5  # the unlabeled image is left out
    assert body[0]["split"] == "golden" and body[0]["quality"] == {
        "class": L,
        "tie": False,
        "explanations": [],
    }
    assert body[3]["quality"]["class"] is None and body[3]["quality"]["tie"] is True
    from pathlib import Path

    assert all(Path(r["path"]).is_file() for r in body)


def test_dashboard_pages_render(client, login_as, build_project):
    b = build_project("quality", QUALITY_TABLE, golden={0, 1})
    login_as(b.lead)
    for scope in ("all", "golden", "fold"):
        page = client.get(f"/projects/{b.project.id}/dashboard?scope={scope}")
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        assert 'id="distribution"' in html and "<svg" in html
    ties = client.get(f"/projects/{b.project.id}/ties").get_data(as_text=True)
    assert f"#{b.images[3]}" in ties
    resp = client.post(
        f"/projects/{b.project.id}/ties/{b.images[3]}",
        data={"decision": L, "csrf_token": client.csrf},
    )
    assert resp.status_code == 303
    sb = build_project("severity", [[g(1), g(2)], [g(3), g(4)]], golden={0, 1})
    login_as(sb.lead)
    html = client.get(f"/projects/{sb.project.id}/dashboard").get_data(as_text=True)
    assert 'id="rmse"' in html and "The bar" in html


def test_outdated_adjudication_is_flagged_and_never_a_clean_label(
    client, db, runner, login_as, build_project, tmp_path
):
    from labeler.labeling.models import Label

    # Lesion and poor quality tie 2-2; a lead adjudicates lesion. Then a rater changes lesion to
    # healthy skin: the tie is now healthy skin / poor quality and lesion has one vote of five.
    b = build_project("quality", [[L, H, poor("blurry"), L, poor("blurry")]], golden={0})
    url = f"/api/v1/projects/{b.project.id}/ties/{b.images[0]}"
    resp = client.post(url, json={"decision": L}, headers=b.headers)
    assert resp.status_code == 200
    label = db.query(Label).filter_by(image_id=b.images[0], rater_id=b.raters[3].id).one()
    label.decision = H
    db.flush()

    export = f"/api/v1/projects/{b.project.id}/export?kind=fused&format="
    (row,) = [
        json.loads(x) for x in client.get(export + "jsonl", headers=b.headers).text.splitlines()
    ]
    assert (row["fused_class"], row["resolution"], row["tied_classes"]) == (
        None,
        "unresolved",
        [H, P],
    )
    assert (row["adjudication"], row["adjudication_outdated"]) == (L, True)
    (flat,) = csv.DictReader(io.StringIO(client.get(export + "csv", headers=b.headers).text))
    assert flat["adjudication_outdated"] == "True" and flat["fused_class"] == ""

    ties = client.get(f"/api/v1/projects/{b.project.id}/ties", headers=b.headers).json["ties"]
    assert [(t["image_id"], t["status"]) for t in ties] == [(b.images[0], "adjudication outdated")]
    agreement = client.get(
        f"/api/v1/projects/{b.project.id}/agreement?scope=golden", headers=b.headers
    ).json
    assert (agreement["ties_adjudicated"], agreement["ties_unresolved"]) == (0, 1)
    assert agreement["adjudications_outdated"] == 1
    login_as(b.lead)
    dashboard = client.get(f"/projects/{b.project.id}/dashboard").get_data(as_text=True)
    assert "1 adjudication outdated" in dashboard
    page = client.get(f"/projects/{b.project.id}/ties").get_data(as_text=True)
    assert "adjudication outdated" in page and "the decision Lesion is not among" in page

    man = tmp_path / "manifest.jsonl"
    res = runner.invoke(args=["export", str(b.project.id), "--kind", "manifest", "-o", str(man)])
    assert res.exit_code == 0, res.output
    quality = json.loads(man.read_text().splitlines()[1])["quality"]
    assert (quality["class"], quality["tie"]) == (None, True)

    # A rater changes back: the adjudicated class is tied again, so the decision counts again.
    label.decision = L
    db.flush()
    (row,) = [
        json.loads(x) for x in client.get(export + "jsonl", headers=b.headers).text.splitlines()
    ]
    assert (row["fused_class"], row["resolution"], row["adjudication_outdated"]) == (
        L,
        "adjudicated",
        False,
    )
