"""Agreement JSON and exports: full precision, intervals, both readings of mean ± std, Fleiss over
complete raters, the minimum co-labeled images per pair, tied diagnoses and grade votes."""

from __future__ import annotations

import csv
import io
import json

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import f1_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

L, N, H, P = "lesion", "no_skin", "healthy_skin", "poor_quality"
CLASSES = [L, N, H, P]


def poor(*expl):
    return {"decision": P, "explanations": list(expl)}


def lesion(code):
    return {"decision": L, "icd10": code}


def g(x):
    return {"decision": "graded", "grade": x}


def agreement(client, b, scope="all"):
    resp = client.get(f"/api/v1/projects/{b.project.id}/agreement?scope={scope}", headers=b.headers)
    assert resp.status_code == 200
    return resp.json


def fused(client, b, fmt="jsonl"):
    text = client.get(
        f"/api/v1/projects/{b.project.id}/export?kind=fused&format={fmt}", headers=b.headers
    ).get_data(as_text=True)
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(text)))
    return [json.loads(x) for x in text.splitlines()]


def random_table(seed: int, n: int, r: int, missing: float = 0.0):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 4, n)
    codes = np.where(rng.random((n, r)) < 0.7, truth[:, None], rng.integers(0, 4, (n, r)))
    codes = np.where(rng.random((n, r)) < missing, -1, codes)
    expl = ["blurry", "bad_light", "bad_framing"]
    table = [
        [
            None
            if c < 0
            else poor(*[e for e in expl if rng.random() < 0.5] or ["blurry"])
            if c == 3
            else CLASSES[c]
            for c in row
        ]
        for row in codes
    ]
    return codes, table


def sk_pairwise(codes):
    """Per pair a < b on co-labeled images: scikit-learn per-class F1 (NaN where undefined)."""
    r = codes.shape[1]
    out = []
    for a in range(r):
        for b in range(a + 1, r):
            both = (codes[:, a] >= 0) & (codes[:, b] >= 0)
            if not both.any():
                continue
            ya, yb = codes[both, a], codes[both, b]
            row = []
            for c in range(4):
                if not ((ya == c) | (yb == c)).any():
                    row.append(np.nan)
                else:
                    row.append(f1_score(yb == c, ya == c))
            out.append(row)
    return np.array(out)


def test_agreement_json_has_full_precision_intervals_and_both_readings(client, build_project):
    codes, table = random_table(3, 40, 4, missing=0.2)
    b = build_project("quality", table, golden=set(range(0, 40, 2)))
    fig = agreement(client, b)
    per_pair = sk_pairwise(codes)
    macro = np.nanmean(per_pair, axis=1)
    # Reading (a): over rater pairs of the pairwise macro F1, at full precision (not 6 decimals).
    assert fig["macro_f1"]["mean"] == pytest.approx(macro.mean(), rel=1e-12)
    assert fig["macro_f1"]["std"] == pytest.approx(macro.std(), rel=1e-12)
    assert fig["macro_f1"]["mean"] != round(fig["macro_f1"]["mean"], 6)
    bar = fig["expert_bar"]
    assert bar["default"] == "pairs" and "one-sided" in bar["rule"]
    assert bar["pairs"]["bar"] == pytest.approx(macro.mean() - macro.std(), rel=1e-12)
    # Reading (b): the ImageQX paper's average over classes of per-class mean and std.
    class_mean = np.nanmean(per_pair, axis=0)
    class_std = np.nanstd(per_pair, axis=0)
    assert bar["class_average"]["mean"] == pytest.approx(class_mean.mean(), rel=1e-12)
    assert bar["class_average"]["std"] == pytest.approx(class_std.mean(), rel=1e-12)
    assert "ImageQX" in bar["class_average"]["label"] and "pairs" in bar["pairs"]["label"]

    boot = fig["bootstrap"]
    assert (boot["resamples"], boot["level"], boot["unit"]) == (2000, 0.95, "image")
    assert isinstance(boot["seed"], int)
    iv = fig["macro_f1"]["interval"]
    assert iv["low"] < fig["macro_f1"]["mean"] < iv["high"]
    for d in fig["distribution"]:
        assert d["f1_mean_interval"]["low"] <= d["f1_mean_interval"]["high"]
    for key in ("kappa",):
        assert fig[key]["interval"]["low"] < fig[key]["mean"] < fig[key]["interval"]["high"]
    alpha = fig["krippendorff_alpha_nominal"]
    assert alpha["interval"]["low"] < alpha["alpha"] < alpha["interval"]["high"]
    # Same seed, same intervals: the figures are reproducible.
    assert agreement(client, b)["macro_f1"]["interval"] == iv


def test_fleiss_over_raters_with_complete_golden_labels(client, build_project):
    codes, table = random_table(5, 24, 4)
    golden = set(range(12))
    for i in golden:  # rater 4 never labels a golden image
        table[i][3] = None
        codes[i, 3] = -1
    b = build_project("quality", table, golden=golden)
    fk = agreement(client, b)["fleiss_kappa_golden"]
    gold = codes[:12, :3]
    expected = fleiss_kappa(aggregate_raters(gold, n_cat=4)[0])
    assert fk["kappa"] == pytest.approx(expected, rel=1e-9)
    assert (fk["raters"], fk["raters_left_out"], fk["images"]) == (3, 1, 12)
    # Krippendorff's alpha beside it, on every rater's golden labels (it allows missing ones).
    data = np.where(codes[:12] < 0, np.nan, codes[:12]).T
    ref = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert fk["krippendorff_alpha"] == pytest.approx(ref, rel=1e-9)
    assert fk["interval"]["low"] <= fk["interval"]["high"]


def test_min_pair_images_is_a_project_setting(client, db, build_project):
    # Raters 1-2 share 4 images, rater 3 shares 2 with each of them.
    table = [[L, L, None], [N, N, None], [L, N, None], [H, H, None], [L, None, L], [None, N, N]]
    b = build_project("quality", table)
    before = agreement(client, b)["macro_f1"]
    assert (before["pairs"], before["excluded_pairs"], before["min_co_labeled"]) == (3, 0, 1)
    b.project.settings = {**(b.project.settings or {}), "agreement": {"min_pair_images": 3}}
    db.flush()
    after = agreement(client, b)
    assert (after["macro_f1"]["pairs"], after["macro_f1"]["excluded_pairs"]) == (1, 2)
    assert after["macro_f1"]["min_co_labeled"] == 3
    assert after["kappa"]["excluded_pairs"] == 2 and after["kappa"]["pairs"] == 1
    codes = np.array([[0, 0], [1, 1], [0, 1], [2, 2]])
    expected = np.nanmean(sk_pairwise(codes), axis=1)[0]
    assert after["macro_f1"]["mean"] == pytest.approx(expected, rel=1e-12)


def test_explanation_mean_is_over_the_explanations_that_exist(client, build_project):
    table = [
        [poor("blurry"), poor("blurry", "bad_light"), poor("blurry")],
        [poor("bad_light"), poor("bad_light"), L],
        [L, L, L],
        [N, poor("blurry"), N],
    ]
    b = build_project("quality", table)
    fig = agreement(client, b)
    defined = [e["f1_mean"] for e in fig["explanations"] if e["f1_mean"] is not None]
    assert len(defined) == 2  # blurry and bad light; nobody chose the other four
    em = fig["explanation_mean"]
    assert em["explanations"] == 2 and em["mean"] == pytest.approx(sum(defined) / 2, rel=1e-12)


def test_cases_are_resampled_whole(client, db, build_project):
    from labeler.images.models import Image

    _codes, table = random_table(8, 12, 3)
    b = build_project("quality", table)
    assert agreement(client, b)["bootstrap"]["unit"] == "image"
    for k, image_id in enumerate(b.images):
        db.get(Image, image_id).case_id = f"p{k // 3}"
    db.flush()
    assert agreement(client, b)["bootstrap"]["unit"] == "case"


def test_fused_export_has_tied_diagnoses_and_grade_votes(client, db, build_project):
    b = build_project(
        "quality", [[lesion("L70.0"), lesion("L20.9"), lesion("L20.9"), lesion("L70.0")]]
    )
    (row,) = fused(client, b)
    assert row["diagnosis"] is None and row["diagnosis_tie"] is True
    assert row["diagnosis_tied_codes"] == ["L20.9", "L70.0"] or row["diagnosis_tied_codes"] == [
        "L70.0",
        "L20.9",
    ]
    assert sorted(row["diagnosis_tied_codes"]) == ["L20.9", "L70.0"]
    (flat,) = fused(client, b, "csv")
    assert sorted(flat["diagnosis_tied_codes"].split(";")) == ["L20.9", "L70.0"]

    sb = build_project("severity", [[g(1), g(3), g(3), g(5)], [g(2), None, None, None]])
    rows = fused(client, sb)
    assert rows[0]["grade_votes"] == {"1": 1, "2": 0, "3": 2, "4": 0, "5": 1}
    assert rows[1]["grade_votes"] == {"1": 0, "2": 1, "3": 0, "4": 0, "5": 0}
    assert fused(client, sb, "csv")[0]["grade_votes_3"] == "2"


@pytest.mark.parametrize(
    ("scale", "table", "grades"),
    [
        ([0, 1, 2, 3, 4], [[g(0), g(0)], [g(1), g(1)], [g(3), g(4)]], [0, 1, 4]),
        ([1, 3, 5], [[g(1), g(3)], [g(5), g(5)], [g(3), g(5)], [g(1), g(1)]], [3, 5, 5, 1]),
    ],
)
def test_severity_on_a_project_scale(client, db, build_project, scale, table, grades):
    b = build_project("severity", table, golden=set(range(len(table))))
    b.project.settings = {
        **(b.project.settings or {}),
        "scale": [{"value": v, "name": f"grade {v}"} for v in scale],
    }
    db.flush()
    fig = agreement(client, b)
    assert [d["grade"] for d in fig["grade_distribution"]] == scale
    assert [r["severity"]["grade"] for r in fused(client, b)] == grades
    assert fig["bar_interval"]["low"] <= fig["bar"] <= fig["bar_interval"]["high"]
    for r in fig["raters"]:
        assert r["rmse_interval"]["low"] <= r["rmse"] <= r["rmse_interval"]["high"]


def test_dashboard_shows_rounded_intervals_and_the_resamples(client, login_as, build_project):
    import re

    _codes, table = random_table(11, 30, 4)
    b = build_project("quality", table, golden=set(range(10)))
    fig = agreement(client, b)
    login_as(b.lead)
    html = client.get(f"/projects/{b.project.id}/dashboard").get_data(as_text=True)
    macro = re.search(r'id="macro-f1">([^<]*)<span class="ci muted">\[([\d.]+), ([\d.]+)\]', html)
    assert macro is not None
    assert macro.group(1).startswith(f"{fig['macro_f1']['mean']:.2f} ± ")
    assert float(macro.group(2)) <= float(macro.group(3))
    note = re.search(r'id="bootstrap-note">[^<]*', html).group(0)
    assert "1000 resamples" in note and "2000" in note and str(fig["bootstrap"]["seed"]) in note
    bar = re.search(r'id="expert-bar">(.*?)</p>', html, re.DOTALL).group(1)
    assert "(a) over rater pairs" in bar and "ImageQX" in bar and "one-sided" in bar
    assert f"{fig['expert_bar']['pairs']['bar']:.3f}" in bar
    assert 'id="explanation-mean"' in html and 'id="kappas"' in html

    sb = build_project(
        "severity", [[g(1), g(2), g(2)], [g(3), g(3), g(5)], [g(4), g(4), g(4)]], golden={0, 1, 2}
    )
    login_as(sb.lead)
    html = client.get(f"/projects/{sb.project.id}/dashboard").get_data(as_text=True)
    assert re.search(r'id="bar">.*?<span class="ci muted">\[[\d.]+, [\d.]+\]', html, re.DOTALL)


def test_model_report_shows_the_paired_verdicts_per_class_and_explanation(app, build_project):
    from flask import render_template

    from labeler.ml.comparison import GoldenPanel, compare_quality, quality_predictions
    from labeler.ml.metrics import quality_figures

    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, (80, 3))
    expl = (rng.random((80, 3, 2)) < 0.5) & (labels == 3)[:, :, None]
    panel = GoldenPanel(
        image_ids=np.arange(80),
        groups=None,
        class_names=tuple(CLASSES),
        classes=labels,
        explanation_names=("blurry", "bad_light"),
        explanations=expl,
    )
    y = labels[:, 0]
    preds = quality_predictions(
        panel, np.arange(80), CLASSES, ["blurry"], y, y, expl[:, 0, :1], expl[:, 0, :1]
    )
    v = compare_quality(panel, [preds], resamples=200)
    v["expert_level"] = v["difference"] >= 0
    b = build_project("quality", [[L, L]])
    report = {
        "model": {"id": "m1", "kind": "quality", "created": "2026-11-30T10:00", "size_mb": 1.0},
        "evaluation": {
            "verdict": v,
            "figures": quality_figures(y, y, expl[:, 0, :1], expl[:, 0, :1], CLASSES, ["blurry"]),
        },
        "run": None,
        "validation": None,
    }
    with app.test_request_context():
        html = render_template("training/model_report.html", project=b.project, report=report)
    assert f"Verdict, taking the uncertainty into account: {v['verdict']}" in html
    assert 'id="verdict-per-class"' in html and 'id="verdict-per-explanation"' in html
    assert "the verdict uses the marked one" in html and "used for the verdict" in html
    # the resampling in words, not its internals' names
    assert f"95% intervals from {v['bootstrap']['resamples']:,} resamples" in html
    assert "one-sided" not in html and "percentile bootstrap" not in html
    for name, row in v["per_class"].items():
        assert f"{row['difference']:.3f}" in html and row["verdict"] in html, name
    assert "bad light" not in html.split('id="verdict-per-explanation"')[1].split("</table>")[0]


def test_exports_carry_full_precision(client, build_project):
    b = build_project("severity", [[g(3), g(3), g(5)], [g(1), g(2), g(2)]], golden={0, 1})
    rows = fused(client, b)
    assert rows[0]["severity"]["mean"] == 11 / 3 and rows[0]["severity"]["std"] == np.std([3, 3, 5])
    assert fused(client, b, "csv")[0]["severity_mean"] == repr(11 / 3)
    fig = agreement(client, b)
    cons = np.array([11 / 3, 5 / 3])
    grades = np.array([[3, 3, 5], [1, 2, 2]])
    rmse = np.sqrt(((grades - cons[:, None]) ** 2).mean(axis=0))
    assert [r["rmse"] for r in fig["raters"]] == pytest.approx(rmse.tolist(), rel=1e-15, abs=0)
    assert fig["bar"] == pytest.approx(rmse.max(), rel=1e-15, abs=0)
