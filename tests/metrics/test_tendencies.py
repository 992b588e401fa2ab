"""Rater tendencies against a per-rater, per-image loop, and on a simulated over-caller."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labeler.metrics.bootstrap import bootstrap_weights
from labeler.metrics.tendencies import rater_tendencies


def _loop(chosen, labeled):
    """The definition, literally: per rater, images they and someone else labeled."""
    n, r, k = chosen.shape
    rate = np.full((r, k), np.nan)
    panel = np.full((r, k), np.nan)
    counts = np.zeros(r, dtype=int)
    for j in range(r):
        own, pan = [], []
        for i in range(n):
            others = [o for o in range(r) if o != j and labeled[i, o]]
            if not labeled[i, j] or not others:
                continue
            own.append(chosen[i, j].astype(float))
            pan.append(np.mean([chosen[i, o] for o in others], axis=0))
        counts[j] = len(own)
        if own:
            rate[j], panel[j] = np.mean(own, axis=0), np.mean(pan, axis=0)
    return rate, panel, counts


@st.composite
def panels(draw):
    n = draw(st.integers(1, 30))
    r = draw(st.integers(1, 5))
    k = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    labeled = rng.random((n, r)) < 0.7
    chosen = rng.random((n, r, k)) < 0.3
    return chosen, labeled


@settings(max_examples=80, deadline=None)
@given(panels())
def test_rates_match_the_definition(panel):
    chosen, labeled = panel
    res = rater_tendencies(chosen, labeled, resamples=0)
    rate, pan, counts = _loop(chosen & labeled[:, :, None], labeled)
    np.testing.assert_allclose(res.rate, rate, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(res.panel_rate, pan, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(res.difference, rate - pan, atol=1e-12, equal_nan=True)
    assert res.n_images.tolist() == counts.tolist()


@settings(max_examples=10, deadline=None)
@given(panels(), st.integers(0, 100))
def test_interval_is_the_percentile_of_recomputed_resamples(panel, seed):
    chosen, labeled = panel
    res = rater_tendencies(chosen, labeled, resamples=60, seed=seed)
    keep = labeled.sum(axis=1) >= 2
    w = np.concatenate(list(bootstrap_weights(int(keep.sum()), 60, seed))) if keep.any() else []
    c, lab = chosen[keep], labeled[keep]
    reps = []
    for row in w:
        rate, pan, _ = _loop(
            np.repeat(c, row, axis=0) & np.repeat(lab, row, axis=0)[..., None],
            np.repeat(lab, row, axis=0),
        )
        reps.append(rate - pan)
    if not len(reps):
        assert np.isnan(res.low).all()
        return
    reps = np.array(reps)
    for j, m in np.ndindex(res.low.shape):
        col = reps[:, j, m]
        col = col[np.isfinite(col)]
        if col.size:
            # float32 sums inside: equal to 1e-6 (the interval itself is far wider)
            assert res.low[j, m] == pytest.approx(np.percentile(col, 2.5), abs=1e-6)
            assert res.high[j, m] == pytest.approx(np.percentile(col, 97.5), abs=1e-6)
        else:
            assert np.isnan(res.low[j, m])


def test_finds_the_rater_who_over_calls_blurry_and_the_one_who_never_uses_healthy():
    rng = np.random.default_rng(3)
    n, r = 400, 5
    truth = rng.choice(4, n, p=[0.5, 0.1, 0.2, 0.2])
    labels = np.where(rng.random((n, r)) < 0.85, truth[:, None], rng.integers(0, 4, (n, r)))
    labels[labels[:, 1] == 2, 1] = 0  # rater 1 never says healthy skin (class 2)
    blurry = (labels == 3) & (rng.random((n, r)) < 0.3)
    blurry[:, 4] |= rng.random(n) < 0.4  # rater 4 calls "blurry" far more often
    labeled = rng.random((n, r)) < 0.8
    onehot = np.eye(4, dtype=bool)[labels]
    cls = rater_tendencies(onehot, labeled, resamples=500, seed=1)
    assert cls.rate[1, 2] == 0
    assert cls.high[1, 2] < 0  # interval below 0: avoids healthy skin
    ex = rater_tendencies(blurry[:, :, None], labeled, resamples=500, seed=1)
    assert ex.low[4, 0] > 0  # interval above 0: over-calls blurry
    # the others sit a little below a panel that includes the over-caller, far less than 4 above
    assert (ex.difference[:4, 0] < 0).all()
    assert ex.difference[4, 0] > 2 * np.abs(ex.difference[:4, 0]).max()
    assert ex.interval.resamples == 500 and ex.interval.seed == 1


def test_shape_is_checked():
    with pytest.raises(ValueError):
        rater_tendencies(np.zeros((3, 2, 1), bool), np.ones((3, 3), bool))
