"""Fitzpatrick skin type: fusion by hand; kappa against scikit-learn, alpha against krippendorff,
agreement rates and MAD against plain loops; bootstrap replicates by repetition."""

import krippendorff
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score

from labeler.metrics.bootstrap import bootstrap_weights
from labeler.metrics.skin_type import (
    SKIN_TYPES,
    fuse_skin_types,
    rater_mad,
    skin_type_agreement,
    skin_type_replicates,
)


@st.composite
def answer_tables(draw, min_images: int = 1):
    """Raters who mostly agree within a type or two, with "cannot assess" (0) and no label (-1)."""
    n = draw(st.integers(min_images, 40))
    r = draw(st.integers(2, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    truth = rng.integers(1, 7, n)
    x = np.clip(truth[:, None] + rng.integers(-1, 2, (n, r)) + rng.integers(-1, 2, r), 1, 6)
    cut = rng.random((n, r))
    x[cut < draw(st.sampled_from([0.0, 0.05, 0.2]))] = 0
    x[cut > 1 - draw(st.sampled_from([0.0, 0.1, 0.4]))] = -1
    return x.astype(np.int64)


# --- fusion -------------------------------------------------------------------------------------


def test_fusion_hand_cases():
    x = np.array(
        [
            [2, 3, 3, 5],  # even count, equal middles: type 3
            [1, 2, 0, -1],  # graded 1, 2: a tie, "cannot assess" counted apart
            [3, 3, 4, 4],  # a tie 3/4
            [2, 4, -1, -1],  # a tie 2/4 (not 3: no type in between is invented)
            [0, 0, -1, -1],  # only "cannot assess"
            [-1, -1, -1, -1],  # nobody answered
            [5, 2, 3, 0],  # odd count: median 3
            [6, -1, -1, -1],  # one answer
        ]
    )
    f = fuse_skin_types(x)
    assert f.fused.tolist() == [3, -1, -1, -1, -1, -1, 3, 6]
    assert f.tie.tolist() == [False, True, True, True, False, False, False, False]
    assert f.tie_low.tolist() == [0, 1, 3, 2, 0, 0, 0, 0]
    assert f.tie_high.tolist() == [0, 2, 4, 4, 0, 0, 0, 0]
    assert f.only_cannot_assess.tolist() == [False, False, False, False, True, False, False, False]
    assert f.unlabeled.tolist() == [False, False, False, False, False, True, False, False]
    assert f.cannot_assess.tolist() == [0, 1, 0, 0, 2, 0, 1, 0]
    assert f.n_graded.tolist() == [4, 2, 4, 2, 0, 0, 3, 1]
    np.testing.assert_array_equal(f.median, [3, 1.5, 3.5, 3, np.nan, np.nan, 3, 6])
    assert f.votes[0].tolist() == [0, 1, 2, 0, 1, 0]
    assert f.votes[3].tolist() == [0, 1, 0, 1, 0, 0]


@settings(max_examples=60, deadline=None)
@given(answer_tables())
def test_fusion_matches_numpy_median(x):
    f = fuse_skin_types(x)
    for i, row in enumerate(x):
        g = np.sort(row[row >= 1])
        assert f.votes[i].tolist() == [int((g == t).sum()) for t in SKIN_TYPES]
        assert f.cannot_assess[i] == (row == 0).sum()
        if g.size == 0:
            assert f.fused[i] == -1 and np.isnan(f.median[i]) and not f.tie[i]
            assert f.only_cannot_assess[i] == (row == 0).any()
            continue
        assert f.median[i] == np.median(g)
        lo, hi = g[(g.size - 1) // 2], g[g.size // 2]
        assert f.tie[i] == (lo != hi)
        assert f.fused[i] == (-1 if lo != hi else lo)


def test_rejects_codes_outside_the_scale():
    with pytest.raises(ValueError, match="Fitzpatrick"):
        fuse_skin_types(np.array([[7, 1]]))
    with pytest.raises(ValueError):
        fuse_skin_types(np.array([1, 2]))
    with pytest.raises(ValueError):
        skin_type_agreement(np.array([[1.5, 2.0]]), resamples=0)


# --- agreement against references ---------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(answer_tables())
def test_kappa_matches_sklearn_per_pair(x):
    res = skin_type_agreement(x, resamples=0)
    r = x.shape[1]
    values = []
    for a in range(r):
        for b in range(a + 1, r):
            both = (x[:, a] >= 1) & (x[:, b] >= 1)
            assert res.kappa.n_co_labeled[a, b] == both.sum()
            ya, yb = x[both, a], x[both, b]
            if np.isnan(res.kappa.kappa[a, b]):
                # Undefined only when chance disagreement is nil: one shared type throughout.
                assert both.sum() == 0 or np.unique(np.concatenate([ya, yb])).size == 1
                continue
            ref = cohen_kappa_score(ya, yb, labels=list(SKIN_TYPES), weights="quadratic")
            assert res.kappa.kappa[a, b] == pytest.approx(ref, abs=1e-10)
            values.append(ref)
    assert res.kappa.n_pairs == len(values)
    if values:
        assert res.kappa.mean == pytest.approx(np.mean(values), abs=1e-10)
        assert res.kappa.std == pytest.approx(np.std(values), abs=1e-10)


@settings(max_examples=50, deadline=None)
@given(answer_tables())
def test_alpha_matches_krippendorff_ordinal(x):
    res = skin_type_agreement(x, resamples=0)
    data = np.where(x >= 1, x, np.nan).astype(float)
    rows = data[(~np.isnan(data)).sum(axis=1) >= 2]
    if np.unique(rows[~np.isnan(rows)]).size < 2:
        assert np.isnan(res.alpha.alpha)
        return
    ref = krippendorff.alpha(
        reliability_data=data.T, level_of_measurement="ordinal", value_domain=list(SKIN_TYPES)
    )
    assert res.alpha.alpha == pytest.approx(ref, abs=1e-10)
    assert res.alpha.level == "ordinal"


@settings(max_examples=50, deadline=None)
@given(answer_tables(), st.integers(1, 6))
def test_exact_and_within_one_match_loops(x, min_co):
    res = skin_type_agreement(x, min_co_labeled=min_co, resamples=0)
    r = x.shape[1]
    for rate, tol in ((res.exact, 0), (res.within_one, 1)):
        kept, hits, total, excluded = [], 0, 0, 0
        for a in range(r):
            for b in range(a + 1, r):
                both = (x[:, a] >= 1) & (x[:, b] >= 1)
                if both.sum() < min_co:
                    excluded += 1
                    assert np.isnan(rate.rate[a, b])
                    continue
                agree = np.abs(x[both, a] - x[both, b]) <= tol
                kept.append(agree.mean())
                hits += agree.sum()
                total += both.sum()
                assert rate.rate[a, b] == pytest.approx(agree.mean())
                assert rate.rate[b, a] == rate.rate[a, b]
        assert rate.n_pairs == len(kept)
        assert rate.n_excluded_pairs == excluded
        if kept:
            assert rate.mean == pytest.approx(np.mean(kept))
            assert rate.std == pytest.approx(np.std(kept))
            assert rate.pooled == pytest.approx(hits / total)
        else:
            assert np.isnan(rate.mean) and np.isnan(rate.pooled)
    assert (res.within_one.mean >= res.exact.mean) or np.isnan(res.exact.mean)


@settings(max_examples=50, deadline=None)
@given(answer_tables(), st.data())
def test_mad_matches_loops_on_golden_images(x, data):
    golden = np.array(data.draw(st.lists(st.booleans(), min_size=len(x), max_size=len(x))))
    res = rater_mad(x, golden)
    gx = x[golden]
    tied = 0
    for row in gx:
        g = np.sort(row[row >= 1])
        tied += g.size > 0 and g[(g.size - 1) // 2] != g[g.size // 2]
    assert res.n_tied_images == tied
    for j in range(x.shape[1]):
        devs, devs_loo = [], []
        for row in gx:
            if row[j] < 1:
                continue
            devs.append(abs(row[j] - np.median(row[row >= 1])))
            others = np.delete(row, j)
            others = others[others >= 1]
            if others.size:
                devs_loo.append(abs(row[j] - np.median(others)))
        assert res.n_images[j] == len(devs)
        assert res.n_images_loo[j] == len(devs_loo)
        if devs:
            assert res.mad[j] == pytest.approx(np.mean(devs))
        else:
            assert np.isnan(res.mad[j])
        if devs_loo:
            assert res.mad_loo[j] == pytest.approx(np.mean(devs_loo))
        else:
            assert np.isnan(res.mad_loo[j])


def test_cannot_assess_is_counted_and_left_out_of_every_figure():
    x = np.array([[1, 2, 0], [3, 3, 0], [5, 6, 4], [2, 2, 0]])
    res = skin_type_agreement(x, resamples=0)
    assert res.n_cannot_assess == 3
    # Rater 2 graded only image 2, so its pairs have one co-graded image each.
    assert res.exact.n_co_labeled[0, 2] == 1 and res.exact.n_co_labeled[0, 1] == 4
    assert res.exact.rate[0, 1] == pytest.approx(2 / 4)
    assert res.within_one.rate[0, 1] == pytest.approx(1.0)
    assert res.mad.n_images.tolist() == [4, 4, 1]
    # Replacing "cannot assess" by "no label" changes nothing but the count.
    same = skin_type_agreement(np.where(x == 0, -1, x), resamples=0)
    assert same.n_cannot_assess == 0
    assert same.kappa.mean == res.kappa.mean and same.alpha.alpha == res.alpha.alpha
    np.testing.assert_array_equal(same.mad.mad, res.mad.mad)


# --- bootstrap ----------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(answer_tables(min_images=2), st.integers(1, 3), st.data())
def test_replicates_equal_the_figures_on_repeated_images(x, min_co, data):
    n = len(x)
    golden = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    rows = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    reps = skin_type_replicates(
        x, rows=rows, golden=golden, min_co_labeled=min_co, resamples=4, seed=7
    )
    weights = np.concatenate(list(bootstrap_weights(n, 4, 7)))
    for k, w in enumerate(weights):
        pick = np.repeat(np.arange(n), w)
        res = skin_type_agreement(
            x[pick], rows=rows[pick], golden=golden[pick], min_co_labeled=min_co, resamples=0
        )
        for key, point in (
            ("kappa", res.kappa.mean),
            ("alpha", res.alpha.alpha),
            ("exact", res.exact.mean),
            ("within", res.within_one.mean),
        ):
            np.testing.assert_allclose(reps[key][k], point, atol=1e-9, err_msg=key)
        np.testing.assert_allclose(reps["mad"][k], res.mad.mad, atol=1e-9)


def test_intervals_cover_the_point_figures_and_are_reproducible():
    rng = np.random.default_rng(3)
    truth = rng.integers(1, 7, 300)
    x = np.clip(truth[:, None] + rng.integers(-1, 2, (300, 4)), 1, 6)
    x[rng.random(x.shape) < 0.05] = 0
    res = skin_type_agreement(x, resamples=300, seed=11)
    again = skin_type_agreement(x, resamples=300, seed=11)
    for name, point in (
        ("kappa_interval", res.kappa.mean),
        ("alpha_interval", res.alpha.alpha),
        ("exact_interval", res.exact.mean),
        ("within_one_interval", res.within_one.mean),
    ):
        iv = getattr(res, name)
        assert iv.low < point < iv.high, name
        assert iv.resamples == 300 and iv.seed == 11
        assert getattr(again, name) == iv
    assert all(iv.low <= m <= iv.high for iv, m in zip(res.mad_intervals, res.mad.mad, strict=True))
    cases = np.repeat(np.arange(150), 2)
    by_case = skin_type_agreement(x, resamples=300, seed=11, groups=cases)
    assert by_case.kappa_interval != res.kappa_interval
    assert skin_type_agreement(x, resamples=0).kappa_interval is None
