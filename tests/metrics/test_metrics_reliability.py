"""Fleiss' kappa against statsmodels; Krippendorff's alpha against the krippendorff package."""

import pathlib

import krippendorff
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

import labeler.metrics
from labeler.metrics import fleiss_kappa, krippendorff_alpha

NAN = np.nan
SCALE = [1.0, 2.0, 3.0, 4.0, 5.0]


def test_labeler_never_imports_gpl_krippendorff():
    package = pathlib.Path(labeler.metrics.__file__).parent
    for path in package.glob("*.py"):
        text = path.read_text()
        assert "import krippendorff" not in text and "from krippendorff" not in text, path


def test_fleiss_wikipedia_example():
    # Fleiss' kappa worked example (10 items, 14 raters, 5 categories): kappa = 0.210.
    table = np.array(
        [
            [0, 0, 0, 0, 14],
            [0, 2, 6, 4, 2],
            [0, 0, 3, 5, 6],
            [0, 3, 9, 2, 0],
            [2, 2, 8, 1, 1],
            [7, 7, 0, 0, 0],
            [3, 2, 6, 3, 0],
            [2, 5, 3, 2, 2],
            [6, 5, 2, 1, 0],
            [0, 2, 2, 3, 7],
        ]
    )
    labels = np.array([np.repeat(np.arange(5), row) for row in table])
    out = fleiss_kappa(labels, 5)
    assert out.kappa == pytest.approx(0.20993, abs=1e-5)
    assert (out.n_images, out.n_images_dropped, out.n_raters) == (10, 0, 14)


def test_fleiss_drops_incomplete_rows_and_selects_raters():
    labels = np.array([[0, 0, 1], [1, 1, -1], [0, 1, 1], [2, 2, 2]])
    out = fleiss_kappa(labels, 3, golden=np.array([True, True, True, False]))
    assert (out.n_images, out.n_images_dropped, out.n_raters) == (2, 1, 3)
    table, _ = aggregate_raters(labels[[0, 2]], n_cat=3)
    assert out.kappa == pytest.approx(sm_fleiss_kappa(table))
    subset = fleiss_kappa(labels, 3, raters=np.array([0, 1]))
    assert (subset.n_images, subset.n_images_dropped, subset.n_raters) == (4, 0, 2)


def test_fleiss_undefined_cases_are_nan():
    assert np.isnan(fleiss_kappa(np.array([[0, 0], [0, 0]]), 2).kappa)  # one class only
    assert np.isnan(fleiss_kappa(np.array([[0, -1]]), 2).kappa)  # no complete row
    assert np.isnan(fleiss_kappa(np.array([[0], [1]]), 2).kappa)  # one rater


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_fleiss_matches_statsmodels(data):
    n_classes = data.draw(st.integers(2, 5))
    n, r = data.draw(st.integers(1, 30)), data.draw(st.integers(2, 8))
    labels = data.draw(hnp.arrays(np.int64, (n, r), elements=st.integers(-1, n_classes - 1)))
    out = fleiss_kappa(labels, n_classes)
    complete = labels[(labels >= 0).all(axis=1)]
    assert out.n_images == complete.shape[0]
    assume(complete.shape[0] > 0 and np.unique(complete).size > 1)
    table, _ = aggregate_raters(complete, n_cat=n_classes)
    assert out.kappa == pytest.approx(sm_fleiss_kappa(table, method="fleiss"), abs=1e-12)


def test_krippendorff_reference_example():
    # The example from Krippendorff (2011) used in the krippendorff package's docs.
    data = np.array(
        [
            [NAN, NAN, NAN, NAN, NAN, 3, 4, 1, 2, 1, 1, 3, 3, NAN, 3],
            [1, NAN, 2, 1, 3, 3, 4, 3, NAN, NAN, NAN, NAN, NAN, NAN, NAN],
            [NAN, NAN, 2, 1, 3, 4, 4, NAN, 2, 1, 1, 3, 3, NAN, 4],
        ]
    ).T  # our layout is (n_images, n_raters)
    assert krippendorff_alpha(data, "nominal").alpha == pytest.approx(0.691358, abs=1e-6)
    assert krippendorff_alpha(data, "interval").alpha == pytest.approx(0.810845, abs=1e-6)
    codes = np.where(np.isnan(data), -1, data - 1).astype(np.int64)
    assert krippendorff_alpha(codes, "nominal").alpha == pytest.approx(0.691358, abs=1e-6)


def _pairable_values(data: np.ndarray) -> int:
    """Distinct values among images with at least two values."""
    rows = data[(~np.isnan(data)).sum(axis=1) >= 2]
    return np.unique(rows[~np.isnan(rows)]).size


@settings(max_examples=60, deadline=None)
@given(
    st.data(),
    st.sampled_from(["nominal", "ordinal", "interval"]),
)
def test_krippendorff_matches_package(data, level):
    n, r = data.draw(st.integers(1, 25)), data.draw(st.integers(1, 7))
    grades = data.draw(hnp.arrays(float, (n, r), elements=st.sampled_from(SCALE + [NAN])))
    domain = SCALE if level == "ordinal" else None
    out = krippendorff_alpha(grades, level, value_domain=domain)
    if _pairable_values(grades) < 2:
        assert np.isnan(out.alpha)
        return
    ref = krippendorff.alpha(
        reliability_data=grades.T, level_of_measurement=level, value_domain=domain
    )
    assert out.alpha == pytest.approx(ref, abs=1e-10)
    assert out.n_images == int(((~np.isnan(grades)).sum(axis=1) >= 2).sum())


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_krippendorff_nominal_int_codes_match_package(data):
    n, r = data.draw(st.integers(1, 25)), data.draw(st.integers(2, 7))
    labels = data.draw(hnp.arrays(np.int64, (n, r), elements=st.integers(-1, 3)))
    as_float = np.where(labels >= 0, labels, NAN).astype(float)
    out = krippendorff_alpha(labels, "nominal")
    if _pairable_values(as_float) < 2:
        assert np.isnan(out.alpha)
        return
    ref = krippendorff.alpha(reliability_data=as_float.T, level_of_measurement="nominal")
    assert out.alpha == pytest.approx(ref, abs=1e-10)


def test_krippendorff_rejects_bad_input():
    with pytest.raises(ValueError):
        krippendorff_alpha(np.array([[1.0, 2.0]]), "ratio")
    with pytest.raises(ValueError):
        krippendorff_alpha(np.array([[1.0, 7.0]]), "ordinal", value_domain=SCALE)
