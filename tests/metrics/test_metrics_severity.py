"""Severity consensus, grade discretization and per-rater RMSE (the Microsoft/Nestlé acne severity study)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from labeler.metrics import (
    grade_codes,
    pairwise_severity_kappa,
    rater_rmse,
    rater_vs_fused,
    scale_edges,
    severity_consensus,
)

NAN = np.nan


def test_consensus_hand_case():
    grades = np.array([[1.0, 2.0, NAN], [3.0, 3.0, 4.0], [NAN, NAN, NAN], [1.0, 2.0, 5.0]])
    out = severity_consensus(grades)
    np.testing.assert_allclose(out.mean, [1.5, 10 / 3, NAN, 8 / 3])
    np.testing.assert_allclose(out.median, [1.5, 3.0, NAN, 2.0])
    # Population std (ddof=0): image 0 -> 0.5, not the sample std 0.7071.
    np.testing.assert_allclose(out.std, [0.5, math.sqrt(2 / 9), NAN, math.sqrt(26 / 9)])
    assert out.count.tolist() == [2, 3, 0, 3]
    assert out.grade.tolist() == [2, 3, -1, 3]


@pytest.mark.parametrize(
    ("mean", "grade"),
    [
        (1.0, 1),
        (1.49, 1),
        (1.5, 2),
        (2.4999, 2),
        (2.5, 3),
        (3.5, 4),
        (4.4999, 4),
        (4.5, 5),
        (5.0, 5),
    ],
)
def test_grade_edges_round_half_up(mean, grade):
    # A single rater's grade is the mean; an exact edge belongs to the upper grade.
    assert severity_consensus(np.array([[mean]])).grade.tolist() == [grade]


def test_custom_edges_and_bad_edges():
    assert severity_consensus(np.array([[2.0], [0.5]]), edges=[1.0, 3.0]).grade.tolist() == [2, 1]
    with pytest.raises(ValueError):
        severity_consensus(np.array([[2.0]]), edges=[2.5, 1.5])


def test_edges_are_the_midpoints_of_the_scale():
    assert scale_edges([1, 2, 3, 4, 5]) == (1.5, 2.5, 3.5, 4.5)
    assert scale_edges([0, 1, 2, 3, 4]) == (0.5, 1.5, 2.5, 3.5)
    assert scale_edges([1, 3, 5]) == (2.0, 4.0)
    with pytest.raises(ValueError):
        scale_edges([3, 1])


def test_zero_to_four_scale_keeps_unanimous_zero_and_one_apart():
    # The issue: with the fixed edges [1.5, 2.5, 3.5, 4.5], unanimous 0 and unanimous 1 both
    # became grade 1. Midpoint edges [0.5, 1.5, 2.5, 3.5] keep every scale value its own grade.
    scale = [0, 1, 2, 3, 4]
    grades = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [3.0, 4.0], [4.0, 4.0]])
    out = severity_consensus(grades, scale)
    assert out.grade.tolist() == [1, 2, 2, 5, 5]  # lower edge inclusive: 0.5 -> second grade
    assert out.value.tolist() == [0.0, 1.0, 1.0, 4.0, 4.0]
    assert out.edges == (0.5, 1.5, 2.5, 3.5)


def test_one_three_five_scale_feeds_the_agreement_figures():
    # The issue: on [1, 3, 5] the consensus grade went up to 5 and the agreement endpoint raised.
    scale = [1, 3, 5]
    grades = np.array([[1.0, 3.0], [5.0, 5.0], [3.0, 5.0], [1.0, 1.0]])
    out = severity_consensus(grades, scale)
    assert out.grade.tolist() == [2, 3, 3, 1]  # means 2, 5, 4, 1 with edges [2, 4]
    assert out.value.tolist() == [3.0, 5.0, 5.0, 1.0]
    codes = grade_codes(grades, scale)
    confusion = rater_vs_fused(codes, out.grade - 1, len(scale)).confusion
    assert confusion.shape == (2, 3, 3) and confusion.sum() == 8
    assert pairwise_severity_kappa(grades, scale).n_pairs == 1


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-10, 10, allow_nan=False), min_size=1, max_size=6, unique=True).map(sorted),
    st.data(),
)
def test_grade_is_the_nearest_scale_value_half_up(scale, data):
    grades = data.draw(
        hnp.arrays(float, (data.draw(st.integers(1, 12)), 3), elements=st.sampled_from(scale))
    )
    out = severity_consensus(grades, scale)
    np.testing.assert_allclose(out.mean, grades.mean(axis=1))
    arr = np.array(scale)
    for i, m in enumerate(out.mean):
        # the largest scale value whose lower midpoint is <= the mean (ties go up)
        below = [k for k in range(len(arr)) if k == 0 or m >= (arr[k - 1] + arr[k]) / 2]
        assert out.grade[i] == 1 + max(below)
        assert out.value[i] == arr[max(below)]


@settings(max_examples=50, deadline=None)
@given(
    hnp.arrays(
        float,
        hnp.array_shapes(min_dims=2, max_dims=2, max_side=8),
        elements=st.sampled_from([1.0, 2.0, 2.5, 3.0, 4.0, 5.0, NAN]),
    )
)
def test_consensus_matches_numpy_nan_functions(grades):
    out = severity_consensus(grades)
    has = (~np.isnan(grades)).any(axis=1)
    assert out.count.tolist() == (~np.isnan(grades)).sum(axis=1).tolist()
    assert np.isnan(out.mean[~has]).all() and (out.grade[~has] == -1).all()
    rows = grades[has]
    np.testing.assert_allclose(out.mean[has], np.nanmean(rows, axis=1))
    np.testing.assert_allclose(out.median[has], np.nanmedian(rows, axis=1))
    np.testing.assert_allclose(out.std[has], np.nanstd(rows, axis=1, ddof=0), atol=1e-12)
    expected = 1 + np.digitize(np.nanmean(rows, axis=1), [1.5, 2.5, 3.5, 4.5], right=False)
    assert out.grade[has].tolist() == expected.tolist()


def test_rater_rmse_hand_case():
    # Golden images 0 and 1; image 2 is not golden and must not count.
    grades = np.array([[1.0, 2.0, 3.0], [2.0, 2.0, NAN], [5.0, 1.0, 1.0]])
    out = rater_rmse(grades, golden=np.array([0, 1]))
    # consensus (rater included): image 0 -> 2, image 1 -> 2.
    # rater 0: (1-2)^2, (2-2)^2 -> sqrt(1/2); rater 1: 0; rater 2: (3-2)^2 on one image -> 1.
    np.testing.assert_allclose(out.rmse, [math.sqrt(0.5), 0.0, 1.0])
    assert out.n_images.tolist() == [2, 2, 1]
    assert out.bar == 1.0 and out.bar_rater == 2
    # leave-one-out: rater 0 vs 2.5 and 2 -> sqrt(2.25/2); rater 1 vs 2 and 2 -> 0; rater 2 vs 1.5.
    np.testing.assert_allclose(out.rmse_loo, [math.sqrt(1.125), 0.0, 1.5])
    assert out.bar_loo == 1.5


def test_rater_rmse_loo_skips_images_graded_by_one_rater():
    grades = np.array([[1.0, NAN], [2.0, 4.0]])
    out = rater_rmse(grades)
    assert out.n_images.tolist() == [2, 1]
    assert out.n_images_loo.tolist() == [1, 1]
    np.testing.assert_allclose(out.rmse, [math.sqrt(0.5), 1.0])
    np.testing.assert_allclose(out.rmse_loo, [2.0, 2.0])


def test_rater_rmse_with_an_absent_rater():
    out = rater_rmse(np.array([[1.0, NAN], [3.0, NAN]]))
    assert np.isnan(out.rmse[1]) and out.n_images[1] == 0
    assert out.bar == 0.0 and out.bar_rater == 0
    assert np.isnan(out.bar_loo)


@settings(max_examples=50, deadline=None)
@given(
    hnp.arrays(
        float,
        hnp.array_shapes(min_dims=2, max_dims=2, max_side=8),
        elements=st.sampled_from([1.0, 2.0, 3.0, 3.5, 4.0, 5.0, NAN]),
    )
)
def test_rater_rmse_matches_loop(grades):
    out = rater_rmse(grades)
    for i in range(grades.shape[1]):
        errs, loo = [], []
        for k in range(grades.shape[0]):
            y = grades[k, i]
            if np.isnan(y):
                continue
            valid = grades[k][~np.isnan(grades[k])]
            errs.append((y - valid.mean()) ** 2)
            if valid.size > 1:
                loo.append((y - (valid.sum() - y) / (valid.size - 1)) ** 2)
        expected = math.sqrt(sum(errs) / len(errs)) if errs else NAN
        expected_loo = math.sqrt(sum(loo) / len(loo)) if loo else NAN
        np.testing.assert_allclose(out.rmse[i], expected, atol=1e-12)
        np.testing.assert_allclose(out.rmse_loo[i], expected_loo, atol=1e-12)
    if np.isnan(out.rmse).all():
        assert np.isnan(out.bar) and out.bar_rater == -1
    else:
        assert out.bar == np.nanmax(out.rmse) == out.rmse[out.bar_rater]


def test_grade_codes():
    codes = grade_codes(np.array([[1.0, NAN, 5.0], [3.0, 2.0, 4.0]]))
    assert codes.tolist() == [[0, -1, 4], [2, 1, 3]]
    with pytest.raises(ValueError):
        grade_codes(np.array([[6.0]]))
    with pytest.raises(ValueError):
        grade_codes(np.array([[np.inf]]))


def test_grade_codes_on_an_uneven_scale():
    scale = [0.0, 0.5, 2.0]
    codes = grade_codes(np.array([[0.5, NAN], [2.0, 0.0]]), scale)
    assert codes.tolist() == [[1, -1], [2, 0]]
    with pytest.raises(ValueError):
        grade_codes(np.array([[1.0]]), scale)
