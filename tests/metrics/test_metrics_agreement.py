"""Pairwise F1 (classes, explanations), Cohen's kappa and rater-vs-fused against scikit-learn."""

from itertools import combinations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.metrics import cohen_kappa_score, confusion_matrix, f1_score

from labeler.metrics import (
    co_occurrence,
    fuse_quality,
    pairwise_explanation_f1,
    pairwise_f1,
    pairwise_kappa,
    pairwise_severity_kappa,
    rater_vs_fused,
)

UNDEFINED_METRIC = "ignore::sklearn.exceptions.UndefinedMetricWarning"
# scikit-learn warns about a one-class confusion matrix even when `labels` lists the one class.
SINGLE_LABEL = "ignore:A single label was found:UserWarning"


@st.composite
def label_sets(draw, max_classes: int = 5, max_images: int = 30, max_raters: int = 6):
    """Label matrices (n_images, n_raters) with -1 for missing, plus the class count."""
    n_classes = draw(st.integers(1, max_classes))
    shape = (draw(st.integers(0, max_images)), draw(st.integers(1, max_raters)))
    labels = draw(hnp.arrays(np.int64, shape, elements=st.integers(-1, n_classes - 1)))
    return labels, n_classes


def _nan_equal(a, b):
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-9, atol=1e-12)


def _summary(values):
    values = np.asarray(values, float)
    if values.size == 0:
        return np.nan, np.nan, 0
    return values.mean(), values.std(), values.size


def test_hand_computed_pair():
    # a = [0, 0, 1, 1], b = [0, 1, 1, 1] with b as reference:
    # class 0: TP 1, FP 1, FN 0 -> 2/3; class 1: TP 2, FP 0, FN 1 -> 4/5; classes 2, 3 left out.
    labels = np.array([[0, 0], [0, 1], [1, 1], [1, 1]])
    out = pairwise_f1(labels, 4)
    _nan_equal(out.f1[0, 1], [2 / 3, 4 / 5, np.nan, np.nan])
    _nan_equal(out.f1[1, 0], out.f1[0, 1])  # F1 is symmetric in the pair
    assert out.n_pairs.tolist() == [1, 1, 0, 0]
    _nan_equal(out.mean, [2 / 3, 4 / 5, np.nan, np.nan])
    assert out.macro_mean == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert out.macro_std == 0.0 and out.macro_n_pairs == 1
    assert out.n_co_labeled.tolist() == [[4, 4], [4, 4]]


def test_single_class_pair_and_min_co_labeled():
    labels = np.array([[0, 0, -1], [0, 0, 2], [-1, 1, 2], [0, -1, -1]])
    out = pairwise_f1(labels, 3)
    # (0,1): both only chose class 0 on their 2 co-labeled images -> F1_0 = 1, others left out.
    _nan_equal(out.f1[0, 1], [1.0, np.nan, np.nan])
    # (0,2): 1 co-labeled image (0 vs 2); (1,2): 2 images.
    assert out.n_co_labeled[0, 2] == 1 and out.n_co_labeled[1, 2] == 2
    strict = pairwise_f1(labels, 3, min_co_labeled=2)
    assert strict.n_excluded_pairs == 1
    assert np.isnan(strict.f1[0, 2]).all() and np.isnan(strict.macro[2, 0])
    assert strict.macro_n_pairs == 2
    kappa = pairwise_kappa(labels, 3)
    assert np.isnan(kappa.kappa[0, 1])  # one class only: chance agreement is total
    with pytest.raises(ValueError):
        pairwise_f1(labels, 3, min_co_labeled=0)


def test_pairs_without_co_labeled_images_are_excluded_and_counted():
    labels = np.array([[0, -1, 1], [-1, 1, 1]])
    out = pairwise_f1(labels, 2)
    assert out.n_excluded_pairs == 1  # raters 0 and 1 never labeled the same image
    assert out.macro_n_pairs == 2


def test_co_occurrence_counts():
    labels = np.array([[0, 1], [0, 0], [1, -1]])
    m = co_occurrence(labels, 2)
    assert m[0, 1].tolist() == [[1, 1], [0, 0]]
    assert m[0, 0].tolist() == [[2, 0], [0, 1]]


@pytest.mark.filterwarnings(UNDEFINED_METRIC)
@settings(max_examples=50, deadline=None)
@given(label_sets(), st.integers(1, 3))
def test_pairwise_f1_matches_sklearn(case, min_co):
    labels, n_classes = case
    out = pairwise_f1(labels, n_classes, min_co_labeled=min_co)
    per_class = [[] for _ in range(n_classes)]
    macros, excluded = [], 0
    for a, b in combinations(range(labels.shape[1]), 2):
        co = (labels[:, a] >= 0) & (labels[:, b] >= 0)
        assert out.n_co_labeled[a, b] == co.sum()
        if co.sum() < min_co:
            excluded += 1
            assert np.isnan(out.f1[a, b]).all()
            continue
        ya, yb = labels[co, a], labels[co, b]
        for c in range(n_classes):
            if c in ya or c in yb:
                ref = f1_score(yb, ya, labels=[c], average=None)[0]
                assert out.f1[a, b, c] == pytest.approx(ref)
                per_class[c].append(ref)
            else:
                assert np.isnan(out.f1[a, b, c])
        macro = f1_score(yb, ya, average="macro")
        assert out.macro[a, b] == pytest.approx(macro)
        macros.append(macro)
    assert out.n_excluded_pairs == excluded
    for c in range(n_classes):
        mean, std, n = _summary(per_class[c])
        assert out.n_pairs[c] == n
        _nan_equal([out.mean[c], out.std[c]], [mean, std])
    mean, std, n = _summary(macros)
    assert out.macro_n_pairs == n
    _nan_equal([out.macro_mean, out.macro_std], [mean, std])


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_pairwise_explanation_f1_matches_sklearn(data):
    n, r, e = (
        data.draw(st.integers(0, 25)),
        data.draw(st.integers(1, 6)),
        data.draw(st.integers(1, 5)),
    )
    labels = data.draw(hnp.arrays(np.int64, (n, r), elements=st.integers(-1, 3)))
    expl = data.draw(hnp.arrays(bool, (n, r, e)))
    out = pairwise_explanation_f1(expl, labels)
    per_expl = [[] for _ in range(e)]
    for a, b in combinations(range(r), 2):
        co = (labels[:, a] >= 0) & (labels[:, b] >= 0)
        if not co.any():
            assert np.isnan(out.f1[a, b]).all()
            continue
        for j in range(e):
            ya, yb = expl[co, a, j].astype(int), expl[co, b, j].astype(int)
            if ya.any() or yb.any():
                ref = f1_score(yb, ya)
                assert out.f1[a, b, j] == pytest.approx(ref)
                assert out.f1[b, a, j] == pytest.approx(ref)
                per_expl[j].append(ref)
            else:
                assert np.isnan(out.f1[a, b, j])
    for j in range(e):
        mean, std, count = _summary(per_expl[j])
        assert out.n_pairs[j] == count
        _nan_equal([out.mean[j], out.std[j]], [mean, std])


@pytest.mark.filterwarnings(UNDEFINED_METRIC)
@pytest.mark.filterwarnings(SINGLE_LABEL)
@settings(max_examples=50, deadline=None)
@given(label_sets(), st.sampled_from([None, "linear", "quadratic"]))
def test_pairwise_kappa_matches_sklearn(case, weights):
    labels, n_classes = case
    out = pairwise_kappa(labels, n_classes, weights=weights)
    kappas = []
    for a, b in combinations(range(labels.shape[1]), 2):
        co = (labels[:, a] >= 0) & (labels[:, b] >= 0)
        if not co.any():
            assert np.isnan(out.kappa[a, b])
            continue
        ref = cohen_kappa_score(
            labels[co, a], labels[co, b], labels=list(range(n_classes)), weights=weights
        )
        _nan_equal(out.kappa[a, b], ref)
        _nan_equal(out.kappa[b, a], ref)
        if not np.isnan(ref):
            kappas.append(ref)
    mean, std, n = _summary(kappas)
    assert out.n_pairs == n
    _nan_equal([out.mean, out.std], [mean, std])


@pytest.mark.filterwarnings(UNDEFINED_METRIC)
@settings(max_examples=40, deadline=None)
@given(st.data())
def test_pairwise_severity_kappa_is_quadratic_weighted(data):
    n, r = data.draw(st.integers(0, 25)), data.draw(st.integers(2, 6))
    grades = data.draw(
        hnp.arrays(float, (n, r), elements=st.sampled_from([1.0, 2.0, 3.0, 4.0, 5.0, np.nan]))
    )
    out = pairwise_severity_kappa(grades)
    assert out.weights == "quadratic"
    for a, b in combinations(range(r), 2):
        co = ~np.isnan(grades[:, a]) & ~np.isnan(grades[:, b])
        if not co.any():
            continue
        ref = cohen_kappa_score(
            grades[co, a], grades[co, b], labels=[1.0, 2.0, 3.0, 4.0, 5.0], weights="quadratic"
        )
        _nan_equal(out.kappa[a, b], ref)


def test_severity_kappa_rejects_off_scale_grades():
    with pytest.raises(ValueError):
        pairwise_severity_kappa(np.array([[1.0, 2.5]]))


def test_rater_vs_fused_hand_case():
    # Golden images 0-2; image 3 is not golden; image 2 is a tie (left out via plurality).
    labels = np.array([[0, 0, 1], [1, 1, 1], [0, 1, 2], [2, 2, 2]])
    fusion = fuse_quality(labels, 3)
    golden = np.array([True, True, True, False])
    out = rater_vs_fused(labels, fusion.plurality, 3, golden=golden)
    assert out.n_images.tolist() == [2, 2, 2]
    assert out.confusion[2].tolist() == [[0, 1, 0], [0, 1, 0], [0, 0, 0]]
    _nan_equal(out.f1[2], [0.0, 2 / 3, np.nan])
    _nan_equal(out.macro_f1, [1.0, 1.0, 1 / 3])


@pytest.mark.filterwarnings(UNDEFINED_METRIC)
@pytest.mark.filterwarnings(SINGLE_LABEL)
@settings(max_examples=50, deadline=None)
@given(label_sets(), st.data())
def test_rater_vs_fused_matches_sklearn(case, data):
    labels, n_classes = case
    golden = data.draw(hnp.arrays(bool, (labels.shape[0],)))
    fused = fuse_quality(labels, n_classes).plurality
    out = rater_vs_fused(labels, fused, n_classes, golden=golden)
    for r in range(labels.shape[1]):
        use = golden & (labels[:, r] >= 0) & (fused >= 0)
        assert out.n_images[r] == use.sum()
        if not use.any():
            assert not out.confusion[r].any() and np.isnan(out.macro_f1[r])
            continue
        ref_conf = confusion_matrix(fused[use], labels[use, r], labels=list(range(n_classes)))
        assert out.confusion[r].tolist() == ref_conf.tolist()
        macro = f1_score(fused[use], labels[use, r], average="macro")
        assert out.macro_f1[r] == pytest.approx(macro)
