"""Bootstrap replicates: each resample's figure equals the plain figure on the resampled data.

A resample with counts w is the data set in which image i appears w_i times, so the reference for
every replicate is the plain metric (itself tested against scikit-learn, statsmodels and
krippendorff) on `np.repeat(data, w, axis=0)`.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from labeler.metrics import (
    fleiss_kappa,
    grade_codes,
    krippendorff_alpha,
    pairwise_explanation_f1,
    pairwise_f1,
    pairwise_kappa,
    pairwise_severity_kappa,
    rater_rmse,
)
from labeler.metrics.bootstrap import bootstrap_weights
from labeler.metrics.intervals import (
    PairTable,
    as_columns,
    intervals,
    quality_replicates,
    severity_replicates,
)

SCALE = [1.0, 2.0, 3.0, 4.0, 5.0]


@st.composite
def quality_sets(draw):
    n, r = draw(st.integers(1, 14)), draw(st.integers(2, 5))
    c = draw(st.integers(2, 4))
    labels = draw(hnp.arrays(np.int64, (n, r), elements=st.integers(-1, c - 1)))
    expl = draw(hnp.arrays(bool, (n, r, 3))) & (labels >= 0)[:, :, None]
    w = draw(hnp.arrays(np.int32, n, elements=st.integers(0, 3)))
    return labels, c, expl, w


def _close(a, b):
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-9, atol=1e-12)


@given(quality_sets(), st.integers(1, 3))
@settings(max_examples=120, deadline=None)
def test_pair_statistics_equal_the_plain_figures_on_the_resampled_data(case, min_co):
    labels, c, expl, w = case
    rep = np.repeat(labels, w, axis=0)
    rep_expl = np.repeat(expl, w, axis=0)
    cls, ex = PairTable(labels, c, expl).stats(as_columns(w[None]), min_co)
    f1 = pairwise_f1(rep, c, min_co_labeled=min_co)
    _close(cls.class_mean[0], f1.mean)
    _close(cls.class_std[0], f1.std)
    _close(cls.macro_mean[0], f1.macro_mean)
    _close(cls.macro_std[0], f1.macro_std)
    _close(cls.kappa_mean[0], pairwise_kappa(rep, c, min_co_labeled=min_co).mean)
    ef1 = pairwise_explanation_f1(rep_expl, rep >= 0, min_co_labeled=min_co)
    _close(ex.class_mean[0], ef1.mean)
    _close(ex.class_std[0], ef1.std)
    # Reading (b): the average over classes of the per-class means and stds.
    defined = ~np.isnan(f1.mean)
    if defined.any():
        _close(cls.class_average_mean[0], f1.mean[defined].mean())
        _close(cls.class_average_std[0], f1.std[defined].mean())


@given(quality_sets())
@settings(max_examples=60, deadline=None)
def test_quality_replicates_follow_the_shared_resamples(case):
    labels, c, expl, _ = case
    n = labels.shape[0]
    golden = np.arange(n) % 2 == 0
    scope = np.arange(n) % 3 != 0  # pairwise figures and alpha on these rows only
    reps = quality_replicates(
        labels, c, expl=expl, rows=scope, golden=golden, resamples=7, seed=11, chunk=3
    )
    weights = np.concatenate(list(bootstrap_weights(n, 7, 11)))
    assert reps["macro_mean"].shape == (7,) and reps["class_mean"].shape == (7, c)
    for b, w in enumerate(weights):
        rep = np.repeat(labels[scope], w[scope], axis=0)
        f1 = pairwise_f1(rep, c)
        _close(reps["macro_mean"][b], f1.macro_mean)
        _close(reps["pairs_bar"][b], f1.macro_mean - f1.macro_std)
        _close(reps["alpha"][b], krippendorff_alpha(rep, "nominal").alpha)
        gold = np.repeat(labels[golden], w[golden], axis=0)
        _close(reps["alpha_golden"][b], krippendorff_alpha(gold, "nominal").alpha)
        _close(reps["fleiss"][b], fleiss_kappa(gold, c).kappa)


@st.composite
def severity_sets(draw):
    n, r = draw(st.integers(1, 12)), draw(st.integers(2, 4))
    grades = draw(hnp.arrays(float, (n, r), elements=st.sampled_from([*SCALE, np.nan, np.nan])))
    return grades


@given(severity_sets())
@settings(max_examples=60, deadline=None)
def test_severity_replicates_equal_the_plain_figures_on_the_resampled_data(grades):
    golden = np.arange(grades.shape[0]) % 3 != 1
    codes = grade_codes(grades, SCALE)
    reps = severity_replicates(grades, codes, SCALE, golden=golden, resamples=5, seed=3)
    weights = np.concatenate(list(bootstrap_weights(grades.shape[0], 5, 3)))
    for b, w in enumerate(weights):
        rep = np.repeat(grades, w, axis=0)
        rm = rater_rmse(rep, golden=np.repeat(golden, w))
        _close(reps["rmse"][b], rm.rmse)
        _close(reps["rmse_loo"][b], rm.rmse_loo)
        _close(reps["bar"][b], rm.bar)
        _close(reps["bar_loo"][b], rm.bar_loo)
        _close(reps["kappa_mean"][b], pairwise_severity_kappa(rep, SCALE).mean)
        _close(reps["alpha_ordinal"][b], krippendorff_alpha(rep, "ordinal").alpha)
        _close(reps["alpha_interval"][b], krippendorff_alpha(rep, "interval").alpha)
        rep_codes = grade_codes(rep, SCALE)
        _close(reps["fleiss"][b], fleiss_kappa(rep_codes, 5, golden=np.repeat(golden, w)).kappa)


def test_intervals_cover_the_point_figure_and_shrink_with_more_images():
    rng = np.random.default_rng(0)

    def panel(n):
        truth = rng.integers(0, 3, n)
        noisy = np.where(rng.random((n, 4)) < 0.8, truth[:, None], rng.integers(0, 3, (n, 4)))
        return noisy

    small, large = panel(60), panel(2000)
    iv_small = intervals(quality_replicates(small, 3, resamples=400)["macro_mean"])
    iv_large = intervals(quality_replicates(large, 3, resamples=400)["macro_mean"])
    point = pairwise_f1(large, 3).macro_mean
    assert iv_large.low <= point <= iv_large.high
    assert iv_large.high - iv_large.low < (iv_small.high - iv_small.low) / 3
    assert (iv_large.resamples, iv_large.level) == (400, 0.95)


def test_cases_keep_their_images_together_in_the_replicates():
    labels = np.array([[0, 0], [1, 1], [0, 1], [1, 0]])
    # Two cases of two images: one agreeing and one disagreeing image each, so every resample
    # has the same agreement whatever cases it draws.
    reps = quality_replicates(labels, 2, groups=np.array([7, 7, 9, 9])[[0, 2, 1, 3]], resamples=50)
    assert np.allclose(reps["kappa_mean"], reps["kappa_mean"][0])
    free = quality_replicates(labels, 2, resamples=50)
    assert np.ptp(free["kappa_mean"][~np.isnan(free["kappa_mean"])]) > 0


def test_intervals_reject_nothing_and_nest():
    nested = intervals(np.arange(20.0).reshape(10, 2))
    assert len(nested) == 2 and nested[0].low == pytest.approx(
        np.percentile(np.arange(0, 20, 2), 2.5)
    )


@pytest.mark.parametrize("shape", [(0, 0), (5, 0), (0, 3), (4, 1), (3, 2)])
def test_replicates_of_empty_or_tiny_panels_are_undefined_not_errors(shape):
    labels = np.full(shape, -1, dtype=np.int64)
    reps = quality_replicates(labels, 4, expl=np.zeros((*shape, 3), bool), resamples=3)
    assert reps["macro_mean"].shape == (3,) and np.isnan(reps["macro_mean"]).all()
    assert np.isnan(reps["fleiss"]).all() and np.isnan(reps["alpha"]).all()
    grades = np.full(shape, np.nan)
    sev = severity_replicates(grades, grade_codes(grades, SCALE), SCALE, resamples=3)
    assert np.isnan(sev["bar"]).all() and sev["rmse"].shape == (3, shape[1])
    assert intervals(sev["bar"]).low is None
