"""The shared bootstrap: counts per image, whole cases, reproducible whatever the chunk size."""

import numpy as np
import pytest

from labeler.metrics.bootstrap import bootstrap_weights, percentile_interval


def _all(*args, **kwargs) -> np.ndarray:
    return np.concatenate(list(bootstrap_weights(*args, **kwargs)))


def test_each_resample_draws_as_many_images_as_there_are():
    w = _all(40, 333, seed=3, chunk=50)
    assert w.shape == (333, 40)
    assert (w.sum(axis=1) == 40).all()
    assert (w >= 0).all()


def test_same_seed_same_resamples_whatever_the_chunk():
    assert (_all(25, 250, seed=9, chunk=7) == _all(25, 250, seed=9, chunk=1000)).all()
    assert not (_all(25, 250, seed=9) == _all(25, 250, seed=10)).all()


def test_cases_are_drawn_whole():
    groups = np.repeat(np.array(["a", "b", "c", "d", "e"]), [1, 2, 3, 4, 5])
    w = _all(15, 400, seed=1, groups=groups)
    for case in set(groups):
        cols = w[:, groups == case]
        assert (cols == cols[:, :1]).all()
    # whole cases of unequal size: the number of images drawn varies, the number of cases does not
    case_counts = w[:, [0, 1, 3, 6, 10]]
    assert (case_counts.sum(axis=1) == 5).all()
    assert len(set(w.sum(axis=1))) > 1


def test_resample_counts_are_uniform_in_expectation():
    w = _all(10, 2000, seed=5)
    assert np.allclose(w.mean(axis=0), 1.0, atol=0.1)


def test_percentile_interval_drops_undefined_replicates():
    iv = percentile_interval(np.r_[np.arange(1000.0), [np.nan] * 10], level=0.9, seed=4)
    assert iv.low == pytest.approx(np.percentile(np.arange(1000.0), 5))
    assert iv.high == pytest.approx(np.percentile(np.arange(1000.0), 95))
    assert iv.resamples == 1010 and iv.seed == 4
    assert iv.defined == 1000 and iv.as_dict()["defined_resamples"] == 1000
    empty = percentile_interval(np.array([np.nan, np.nan]))
    assert empty.low is None and empty.high is None
    assert empty.defined == 0


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        _all(5, 0)
    with pytest.raises(ValueError):
        _all(5, 10, groups=np.arange(4))
    with pytest.raises(ValueError):
        percentile_interval(np.arange(3.0), level=1.0)
