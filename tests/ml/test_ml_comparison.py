"""Model against raters: paired bootstrap on the same resamples, verdicts per figure, class and
explanation (pure NumPy, no model needed)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score

from labeler.metrics import pairwise_explanation_f1, pairwise_f1, rater_rmse
from labeler.metrics.bootstrap import bootstrap_weights
from labeler.ml.comparison import (
    GoldenPanel,
    compare_quality,
    compare_severity,
    model_intervals_quality,
    quality_predictions,
    severity_predictions,
    verdict,
)
from labeler.ml.metrics import quality_figures

CLASSES = ("lesion", "no_skin", "healthy_skin", "poor_quality")
EXPL = ("too_far", "bad_framing", "lesion_covered", "blurry")
MODEL_EXPL = ("blurry", "too_far", "bad_framing")  # the model's own order; no lesion_covered


def quality_case(seed: int, n: int = 60, r: int = 4, model_acc: float = 0.8):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 4, n)
    labels = np.where(rng.random((n, r)) < 0.75, truth[:, None], rng.integers(0, 4, (n, r)))
    labels[rng.random((n, r)) < 0.1] = -1
    expl = (rng.random((n, r, len(EXPL))) < 0.4) & (labels == 3)[:, :, None]
    panel = GoldenPanel(
        image_ids=np.arange(100, 100 + n),
        groups=None,
        class_names=CLASSES,
        classes=labels,
        explanation_names=EXPL,
        explanations=expl,
    )
    rows = np.flatnonzero(rng.random(n) < 0.85)  # evaluated images (ties left out)
    y = truth[rows]
    pred = np.where(rng.random(rows.size) < model_acc, y, rng.integers(0, 4, rows.size))
    et = rng.random((rows.size, 3)) < 0.3
    ep = np.where(rng.random((rows.size, 3)) < 0.8, et, ~et)
    return panel, rows, y, pred, et, ep


def test_verdict_reads_the_interval_of_the_difference():
    assert verdict(0.01, 0.2, True) == "at expert level"
    assert verdict(-0.2, -0.01, True) == "below"
    assert verdict(-0.05, 0.05, True) == "not distinguishable"
    assert verdict(-0.2, -0.01, False) == "at expert level"  # RMSE: lower is better
    assert verdict(0.01, 0.2, False) == "below"
    assert verdict(0.0, 0.1, True) == "not distinguishable"  # contains 0
    assert verdict(None, None, True) is None


@given(st.integers(0, 10_000))
@settings(max_examples=15, deadline=None)
def test_quality_comparison_is_paired_on_the_same_resamples(seed):
    panel, rows, y, pred, et, ep = quality_case(seed)
    preds = quality_predictions(panel, rows, CLASSES, MODEL_EXPL, y, pred, et, ep)
    out = compare_quality(panel, [preds], resamples=40, seed=seed)
    # Point figures: the model's as in its report, the raters' as in the agreement figures.
    fig = quality_figures(y, pred, et, ep, CLASSES, MODEL_EXPL)
    assert out["model_macro_f1"] == pytest.approx(fig["macro_f1"], rel=1e-12)
    f1 = pairwise_f1(panel.classes, 4)
    a = out["readings"]["pairs"]
    assert a["bar"] == pytest.approx(f1.macro_mean - f1.macro_std, rel=1e-12)
    b = out["readings"]["class_average"]
    assert b["rater_mean"] == pytest.approx(np.nanmean(f1.mean), rel=1e-12)
    assert b["rater_std"] == pytest.approx(np.nanmean(np.where(np.isnan(f1.mean), np.nan, f1.std)))
    assert out["reading"] == "pairs" and out["verdict"] == a["verdict"]
    assert out["bootstrap"]["seed"] == seed and out["model_macro_f1_interval"]["seed"] == seed
    assert out["difference"] == pytest.approx(fig["macro_f1"] - a["bar"], rel=1e-12)

    # The interval of the difference comes from the same resamples on both sides: recompute it.
    diffs = []
    for w in np.concatenate(list(bootstrap_weights(panel.image_ids.size, 40, seed))):
        rep = np.repeat(panel.classes, w, axis=0)
        pf = pairwise_f1(rep, 4)
        wr = w[rows]
        yt, yp = np.repeat(y, wr), np.repeat(pred, wr)
        present = np.union1d(yt, yp)
        model = np.mean(f1_score(yt, yp, labels=present, average=None)) if yt.size else np.nan
        diffs.append(model - (pf.macro_mean - pf.macro_std))
    diffs = np.array(diffs)
    ok = diffs[~np.isnan(diffs)]
    assert out["difference_interval"]["low"] == pytest.approx(np.percentile(ok, 2.5), rel=1e-9)
    assert out["difference_interval"]["high"] == pytest.approx(np.percentile(ok, 97.5), rel=1e-9)


def test_per_class_and_per_explanation_verdicts():
    panel, rows, y, pred, et, ep = quality_case(4, n=200)
    preds = quality_predictions(panel, rows, CLASSES, MODEL_EXPL, y, pred, et, ep)
    out = compare_quality(panel, [preds], resamples=200)
    f1 = pairwise_f1(panel.classes, 4)
    fig = quality_figures(y, pred, et, ep, CLASSES, MODEL_EXPL)
    assert list(out["per_class"]) == list(CLASSES)
    for c, name in enumerate(CLASSES):
        row = out["per_class"][name]
        assert row["model_f1"] == pytest.approx(fig["per_class"][name]["f1"], rel=1e-12)
        assert row["bar"] == pytest.approx(f1.mean[c] - f1.std[c], rel=1e-12)
        lo, hi = row["difference_interval"]["low"], row["difference_interval"]["high"]
        assert row["verdict"] == verdict(lo, hi, True)
    # Explanations: only those the model predicts, in the panel's order, against the raters'.
    assert list(out["per_explanation"]) == ["too_far", "bad_framing", "blurry"]
    ef1 = pairwise_explanation_f1(panel.explanations, panel.classes >= 0)
    blurry = out["per_explanation"]["blurry"]
    assert blurry["bar"] == pytest.approx(ef1.mean[3] - ef1.std[3], rel=1e-12)
    assert blurry["model_f1"] == pytest.approx(fig["per_explanation"]["blurry"]["f1"], rel=1e-12)
    assert "one-sided" in out["rule"]


def test_quality_verdicts_follow_the_model():
    good = quality_case(1, n=400, model_acc=1.0)
    bad = quality_case(1, n=400, model_acc=0.2)
    for case, expected in ((good, "at expert level"), (bad, "below")):
        panel, rows, y, pred, et, ep = case
        preds = quality_predictions(panel, rows, CLASSES, MODEL_EXPL, y, pred, et, ep)
        assert compare_quality(panel, [preds], resamples=300)["verdict"] == expected


def test_model_intervals_without_raters():
    panel, rows, y, pred, et, ep = quality_case(2, n=150)
    own = GoldenPanel(image_ids=panel.image_ids[rows], groups=None)
    preds = quality_predictions(own, np.arange(rows.size), CLASSES, MODEL_EXPL, y, pred, et, ep)
    iv = model_intervals_quality(own, [preds], resamples=300)
    macro = quality_figures(y, pred, et, ep, CLASSES, MODEL_EXPL)["macro_f1"]
    assert iv["macro_f1"]["low"] < macro < iv["macro_f1"]["high"]
    assert set(iv["per_explanation"]) == set(MODEL_EXPL)


def severity_case(seed: int, n: int, noise: float, r: int = 5):
    rng = np.random.default_rng(seed)
    true = rng.uniform(1, 5, n)
    grades = np.clip(np.rint(true[:, None] + rng.normal(0, 0.6, (n, r))), 1, 5)
    grades[rng.random((n, r)) < 0.05] = np.nan
    consensus = np.nanmean(grades, axis=1)
    pred = consensus + rng.normal(0, noise, n)
    panel = GoldenPanel(image_ids=np.arange(n), groups=None, grades=grades)
    return panel, consensus, pred


def test_severity_comparison_is_paired_and_decides_like_seed_001():
    panel, consensus, pred = severity_case(3, 230, 0.3)
    rows, truth, p = severity_predictions(panel, np.arange(230), consensus, pred)
    out = compare_severity(panel, rows, truth, [p], resamples=60, seed=5)
    bar = rater_rmse(panel.grades).bar
    model = float(np.sqrt(np.mean((pred - consensus) ** 2)))
    assert out["bar"] == pytest.approx(bar, rel=1e-12)
    assert out["model_rmse"] == pytest.approx(model, rel=1e-12)
    diffs = []
    for w in np.concatenate(list(bootstrap_weights(230, 60, 5))):
        rep_bar = rater_rmse(np.repeat(panel.grades, w, axis=0)).bar
        rep_model = np.sqrt(np.average((pred - consensus) ** 2, weights=w))
        diffs.append(rep_model - rep_bar)
    assert out["difference_interval"]["low"] == pytest.approx(np.percentile(diffs, 2.5))
    assert out["difference_interval"]["high"] == pytest.approx(np.percentile(diffs, 97.5))
    # A clearly better, a clearly worse, and a model within noise of the bar.
    for noise, expected in ((0.05, "at expert level"), (1.5, "below")):
        rows, truth, p = severity_predictions(
            panel,
            np.arange(230),
            consensus,
            consensus + np.random.default_rng(0).normal(0, noise, 230),
        )
        assert compare_severity(panel, rows, truth, [p], resamples=300)["verdict"] == expected
    # the acne severity study: 0.482 against 0.517 on 230 images can go either way: the interval decides.
    z = np.random.default_rng(1).normal(0, 1, 230)
    close = consensus + z / np.sqrt(np.mean(z**2)) * bar * (0.482 / 0.517)  # RMSE exactly
    rows, truth, p = severity_predictions(panel, np.arange(230), consensus, close)
    res = compare_severity(panel, rows, truth, [p], resamples=300)
    assert res["difference"] < 0 and res["verdict"] == "not distinguishable"
