"""Fairness breakdowns: Fitzpatrick parsing and groups, per-group figures against references."""

from itertools import combinations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score

from labeler.metrics.bootstrap import bootstrap_weights, percentile_interval
from labeler.metrics.breakdowns import (
    Group,
    body_site_groups,
    fitzpatrick_groups,
    model_quality_breakdown,
    model_severity_breakdown,
    parse_fitzpatrick,
    quality_breakdown,
    severity_breakdown,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1, 1),
        (6, 6),
        (7, None),
        (0, None),
        (3.0, 3),
        (3.5, None),
        ("4", 4),
        (" II ", 2),
        ("iii", 3),
        ("VI", 6),
        ("type III", 3),
        ("Type 5", 5),
        ("Fitzpatrick type IV", 4),
        ("FST II", 2),
        ("skin type: v", 5),
        ("VII", None),
        ("brown", None),
        ("", None),
        (None, None),
        (True, None),
    ],
)
def test_parse_fitzpatrick(raw, expected):
    assert parse_fitzpatrick(raw) == expected


def test_fitzpatrick_groups_cover_each_type_the_pairs_and_unknown():
    groups = {g.name: g.members for g in fitzpatrick_groups(["I", 2, "type III", None, "6", "x"])}
    assert list(groups) == ["I", "II", "III", "IV", "V", "VI", "I-II", "III-IV", "V-VI", "unknown"]
    assert groups["I-II"].tolist() == [True, True, False, False, False, False]
    assert groups["III-IV"].tolist() == [False, False, True, False, False, False]
    assert groups["V-VI"].tolist() == [False, False, False, False, True, False]
    assert groups["unknown"].tolist() == [False, False, False, True, False, True]
    assert groups["IV"].sum() == 0


def test_body_sites_group_case_insensitively_with_unknown_last():
    groups = body_site_groups(["Face", "face ", None, "Back", "", "back"])
    assert [g.name for g in groups] == ["Back", "Face", "unknown"]
    assert [g.members.tolist() for g in groups] == [
        [False, False, False, True, False, True],
        [True, True, False, False, False, False],
        [False, False, True, False, True, False],
    ]


def _sklearn_macro(labels, c, min_co):
    """Pairwise macro F1 (mean, population std, pairs) with scikit-learn per pair."""
    macros = []
    for a, b in combinations(range(labels.shape[1]), 2):
        both = (labels[:, a] >= 0) & (labels[:, b] >= 0)
        if both.sum() < min_co or not both.any():
            continue
        ya, yb = labels[both, a], labels[both, b]
        present = np.union1d(ya, yb)
        f1 = f1_score(yb, ya, labels=present, average=None, zero_division=0)
        macros.append(f1.mean())
    if not macros:
        return np.nan, np.nan, 0
    return np.mean(macros), np.std(macros), len(macros)


@st.composite
def quality_panels(draw):
    n = draw(st.integers(2, 40))
    r = draw(st.integers(2, 5))
    c = draw(st.integers(2, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    labels = rng.integers(0, c, (n, r))
    labels[rng.random((n, r)) < 0.35] = -1
    fitz = rng.choice(["I", "II", "III", "V", None], n)
    return labels, c, fitz


@settings(max_examples=50, deadline=None)
@given(quality_panels(), st.integers(1, 3))
def test_quality_group_figures_match_scikit_learn(panel, min_co):
    labels, c, fitz = panel
    scope = np.random.default_rng(0).random(labels.shape[0]) < 0.8
    figs = quality_breakdown(
        labels, c, fitzpatrick_groups(fitz), scope=scope, min_co_labeled=min_co, resamples=0
    )
    for fig, group in zip(figs, fitzpatrick_groups(fitz), strict=True):
        rows = group.members & scope
        mean, std, pairs = _sklearn_macro(labels[rows], c, min_co)
        assert fig.n_images == rows.sum()
        assert fig.n_labeled == (rows & (labels >= 0).any(axis=1)).sum()
        assert fig.too_few == (fig.n_labeled < 30)
        assert fig.n_units == pairs
        if pairs:
            assert fig.value == pytest.approx(mean) and fig.std == pytest.approx(std)
        else:
            assert np.isnan(fig.value)


@settings(max_examples=10, deadline=None)
@given(quality_panels(), st.integers(0, 100))
def test_quality_group_interval_is_the_percentile_of_recomputed_resamples(panel, seed):
    labels, c, _ = panel
    members = np.ones(labels.shape[0], dtype=bool)
    (fig,) = quality_breakdown(labels, c, [Group("all", members)], resamples=50, seed=seed)
    multi = (labels >= 0).sum(axis=1) >= 2
    if not multi.any():
        assert fig.interval is None
        return
    sub = labels[multi]
    reps = [
        _sklearn_macro(np.repeat(sub, w, axis=0), c, 1)[0]
        for w in np.concatenate(list(bootstrap_weights(len(sub), 50, seed)))
    ]
    expected = percentile_interval(np.array(reps), seed=seed)
    assert fig.interval.low == pytest.approx(expected.low, nan_ok=True)
    assert fig.interval.high == pytest.approx(expected.high, nan_ok=True)


def test_whole_cases_are_resampled_together():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 3, (60, 3))
    members = np.ones(60, dtype=bool)
    cases = np.repeat(np.arange(6), 10)
    (by_case,) = quality_breakdown(labels, 3, [Group("all", members)], cases=cases, resamples=200)
    (by_img,) = quality_breakdown(labels, 3, [Group("all", members)], resamples=200)
    assert by_case.value == by_img.value
    assert (by_case.interval.low, by_case.interval.high) != (
        by_img.interval.low,
        by_img.interval.high,
    )


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_severity_group_figures_by_hand(n, r, seed):
    rng = np.random.default_rng(seed)
    g = rng.integers(1, 6, (n, r)).astype(float)
    g[rng.random((n, r)) < 0.4] = np.nan
    sites = rng.choice(["face", "back", None], n)
    figs = severity_breakdown(g, body_site_groups(sites), min_group_images=3, resamples=0)
    for fig, group in zip(figs, body_site_groups(sites), strict=True):
        errs, cons = [], []
        for i in np.flatnonzero(group.members):
            row = g[i][~np.isnan(g[i])]
            if row.size:
                cons.append(row.mean())
            if row.size >= 2:
                errs += list((row - row.mean()) ** 2)
        assert fig.n_labeled == len(cons) and fig.too_few == (len(cons) < 3)
        assert fig.n_units == len(errs)
        if errs:
            assert fig.value == pytest.approx(np.sqrt(np.mean(errs)))
        else:
            assert np.isnan(fig.value)
        if cons:
            assert fig.extra["mean_consensus"] == pytest.approx(np.mean(cons))


def test_severity_interval_brackets_and_is_seeded():
    rng = np.random.default_rng(8)
    truth = rng.integers(1, 6, 300)
    g = np.clip(truth[:, None] + rng.integers(-1, 2, (300, 3)), 1, 5).astype(float)
    group = [Group("all", np.ones(300, dtype=bool))]
    (a,) = severity_breakdown(g, group, resamples=400, seed=3)
    (b,) = severity_breakdown(g, group, resamples=400, seed=3)
    assert a.interval.low < a.value < a.interval.high
    assert (
        a.extra["mean_consensus_low"] < a.extra["mean_consensus"] < a.extra["mean_consensus_high"]
    )
    assert (a.interval.low, a.interval.high) == (b.interval.low, b.interval.high)
    assert not a.too_few


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 60), st.integers(2, 4), st.integers(0, 2**31 - 1))
def test_model_quality_breakdown_matches_scikit_learn(n, c, seed):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, c, n)
    pred = np.where(rng.random(n) < 0.7, truth, rng.integers(0, c, n))
    groups = fitzpatrick_groups(rng.choice(["I", "IV", "VI", None], n))
    figs = model_quality_breakdown(truth, pred, c, groups, min_group_images=5, resamples=0)
    for fig, group in zip(figs, groups, strict=True):
        rows = group.members
        assert fig.n_images == rows.sum() and fig.too_few == (rows.sum() < 5)
        if not rows.any():
            assert np.isnan(fig.value)
            continue
        present = np.union1d(truth[rows], pred[rows])
        ref = f1_score(truth[rows], pred[rows], labels=present, average="macro", zero_division=0)
        assert fig.value == pytest.approx(ref)


def test_model_breakdown_intervals_are_recomputed_resamples():
    rng = np.random.default_rng(11)
    truth = rng.integers(0, 3, 80)
    pred = np.where(rng.random(80) < 0.6, truth, rng.integers(0, 3, 80))
    group = [Group("all", np.ones(80, dtype=bool))]
    (fig,) = model_quality_breakdown(truth, pred, 3, group, resamples=60, seed=2)
    reps = []
    for w in np.concatenate(list(bootstrap_weights(80, 60, 2))):
        t, p = np.repeat(truth, w), np.repeat(pred, w)
        reps.append(f1_score(t, p, labels=np.union1d(t, p), average="macro", zero_division=0))
    expected = percentile_interval(np.array(reps), seed=2)
    assert fig.interval.low == pytest.approx(expected.low)
    assert fig.interval.high == pytest.approx(expected.high)
    score = rng.normal(3, 1, 80)
    consensus = score + rng.normal(0, 0.5, 80)
    (sev,) = model_severity_breakdown(consensus, score, group, resamples=60, seed=2)
    assert sev.value == pytest.approx(np.sqrt(np.mean((score - consensus) ** 2)))
    reps = [
        np.sqrt(np.mean((np.repeat(score, w) - np.repeat(consensus, w)) ** 2))
        for w in np.concatenate(list(bootstrap_weights(80, 60, 2)))
    ]
    assert sev.interval.low == pytest.approx(percentile_interval(np.array(reps)).low)
    assert sev.interval.high == pytest.approx(percentile_interval(np.array(reps)).high)
