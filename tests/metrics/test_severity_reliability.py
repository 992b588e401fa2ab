"""ICC(2,1)/ICC(3,1) against pingouin; per-rater MAE by hand; bootstrap replicates by repetition."""

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labeler.metrics.bootstrap import bootstrap_weights, percentile_interval
from labeler.metrics.severity_reliability import intraclass_correlation, rater_mae


@st.composite
def grade_tables(draw, missing: bool = True):
    n = draw(st.integers(3, 40))
    k = draw(st.integers(2, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, 6, n)
    g = np.clip(truth[:, None] + rng.integers(-1, 2, (n, k)) + rng.integers(-1, 1, k), 1, 5)
    g = g.astype(float)
    if missing:
        g[rng.random((n, k)) < 0.1] = np.nan
    return g


def _pingouin(g: np.ndarray) -> dict[str, float]:
    import pingouin

    complete = g[~np.isnan(g).any(axis=1)]
    n, k = complete.shape
    df = pd.DataFrame(
        {
            "image": np.repeat(np.arange(n), k),
            "rater": np.tile(np.arange(k), n),
            "grade": complete.reshape(-1),
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = pingouin.intraclass_corr(df, targets="image", raters="rater", ratings="grade")
    # pingouin 0.7 names them after McGraw and Wong: ICC(A,1) = ICC(2,1), ICC(C,1) = ICC(3,1)
    return dict(zip(out["Type"], out["ICC"], strict=True))


@settings(max_examples=60, deadline=None)
@given(grade_tables())
def test_icc_matches_pingouin_on_complete_cases(g):
    complete = ~np.isnan(g).any(axis=1)
    res = intraclass_correlation(g, resamples=0)
    assert res.n_images == complete.sum()
    assert res.n_images_dropped == (~complete & ~np.isnan(g).all(axis=1)).sum()
    if complete.sum() < 3 or np.ptp(g[complete]) == 0:
        return  # pingouin needs a few images with some variance
    ref = _pingouin(g)
    assert res.icc2 == pytest.approx(ref["ICC(A,1)"], abs=1e-9)
    assert res.icc3 == pytest.approx(ref["ICC(C,1)"], abs=1e-9)


@settings(max_examples=15, deadline=None)
@given(grade_tables(missing=False), st.integers(0, 1000))
def test_icc_bootstrap_replicates_equal_recomputing_on_repeated_images(g, seed):
    res = intraclass_correlation(g, resamples=40, seed=seed)
    w = np.concatenate(list(bootstrap_weights(g.shape[0], 40, seed)))
    reps = [intraclass_correlation(np.repeat(g, row, axis=0), resamples=0).icc2 for row in w]
    expected = percentile_interval(np.array(reps), seed=seed)
    assert res.icc2_interval.low == pytest.approx(expected.low, abs=1e-9, nan_ok=True)
    assert res.icc2_interval.high == pytest.approx(expected.high, abs=1e-9, nan_ok=True)
    assert res.icc2_interval.seed == seed and res.icc2_interval.resamples == 40


def test_icc_rows_and_raters_select_the_table():
    rng = np.random.default_rng(2)
    g = rng.integers(1, 6, (30, 4)).astype(float)
    g[:, 3] = np.nan  # a rater with no grades would leave no complete case
    assert intraclass_correlation(g, resamples=0).n_images == 0
    sub = intraclass_correlation(g, raters=np.array([0, 1, 2]), rows=np.arange(20), resamples=0)
    assert sub.n_images == 20 and sub.n_raters == 3
    assert sub.icc2 == pytest.approx(_pingouin(g[:20, :3])["ICC(A,1)"], abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(grade_tables(), st.integers(0, 1000))
def test_rater_mae_by_hand(g, seed):
    golden = np.random.default_rng(seed).random(g.shape[0]) < 0.7
    res = rater_mae(g, golden, resamples=0)
    for j in range(g.shape[1]):
        errs, errs_loo = [], []
        for i in np.flatnonzero(golden):
            if np.isnan(g[i, j]):
                continue
            row = g[i][~np.isnan(g[i])]
            errs.append(abs(g[i, j] - row.mean()))
            others = np.delete(g[i], j)
            others = others[~np.isnan(others)]
            if others.size:
                errs_loo.append(abs(g[i, j] - others.mean()))
        assert res.n_images[j] == len(errs)
        if errs:
            assert res.mae[j] == pytest.approx(np.mean(errs))
        else:
            assert np.isnan(res.mae[j])
        if errs_loo:
            assert res.mae_loo[j] == pytest.approx(np.mean(errs_loo))


def test_rater_mae_intervals_bracket_the_estimate_and_are_seeded():
    rng = np.random.default_rng(4)
    truth = rng.integers(1, 6, 200)
    g = np.clip(truth[:, None] + rng.integers(-1, 2, (200, 3)) * [0, 1, 2], 1, 5).astype(float)
    a = rater_mae(g, resamples=300, seed=5)
    b = rater_mae(g, resamples=300, seed=5)
    for j in range(3):
        iv = a.intervals[j]
        assert iv.low <= a.mae[j] <= iv.high
        assert (iv.low, iv.high) == (b.intervals[j].low, b.intervals[j].high)
    assert a.mae[0] < a.mae[2]  # the noisier rater is further from the consensus
