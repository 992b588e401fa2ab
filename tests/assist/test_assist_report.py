"""Reader-study figures against a hand-computed example, and the interval against a plain loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score

from labeler.assist.report import macro_f1, paired_accuracy, rmse, switches
from labeler.metrics.bootstrap import bootstrap_weights, percentile_interval

# four golden images, one rater; class codes (0 lesion, 1 no skin, 2 healthy skin, 3 poor quality)
TRUTH = np.array([0, 0, 1, 3])
UNASSISTED = np.array([0, 1, 1, 3])
ASSISTED = np.array([0, 0, 1, 2])
MODEL = np.array([0, 0, 2, 2])


def test_macro_f1_by_hand():
    ones = np.ones((1, 4))
    # unassisted: lesion 2/3 (1 hit, 1 missed), no skin 2/3 (1 hit, 1 false), poor quality 1
    assert macro_f1(TRUTH, UNASSISTED, ones)[0] == pytest.approx(7 / 9, abs=1e-12)
    # assisted: lesion 1, no skin 1, healthy skin 0 (only a false one), poor quality 0 (missed)
    assert macro_f1(TRUTH, ASSISTED, ones)[0] == pytest.approx(0.5, abs=1e-12)
    for pred in (UNASSISTED, ASSISTED):
        assert macro_f1(TRUTH, pred, ones)[0] == pytest.approx(
            f1_score(TRUTH, pred, average="macro"), abs=1e-12
        )


def test_rmse_by_hand():
    truth = np.array([1.0, 2.5, 4.0])
    ones = np.ones((1, 3))
    assert rmse(truth, np.array([1, 3, 4]), ones)[0] == pytest.approx(math.sqrt(0.25 / 3))
    assert rmse(truth, np.array([2, 2, 5]), ones)[0] == pytest.approx(math.sqrt(2.25 / 3))


def test_switches_by_hand():
    s = switches(TRUTH, MODEL, UNASSISTED, ASSISTED)
    # the model is right on images 0 and 1, wrong on 2 and 3
    assert (s.model_right, s.model_wrong) == (2, 2)
    # image 1: unassisted "no skin", assisted took the model's (right) "lesion"
    assert s.to_model_when_right == 1 and s.away_when_right == 0
    # image 3: unassisted right (poor quality), assisted took the model's wrong "healthy skin"
    assert s.to_model_when_wrong == 1 and s.away_when_wrong == 0
    away = switches(TRUTH, MODEL, ASSISTED, UNASSISTED)  # the same readings the other way round
    assert (away.away_when_right, away.away_when_wrong) == (1, 1)


def test_paired_difference_and_its_interval_match_a_plain_loop():
    acc = paired_accuracy(
        TRUTH, UNASSISTED, ASSISTED, np.arange(4), 4, severity=False, resamples=300, seed=5
    )
    assert acc.unassisted == pytest.approx(7 / 9)
    assert acc.assisted == pytest.approx(0.5)
    assert acc.difference == pytest.approx(0.5 - 7 / 9)
    assert (acc.readings, acc.images) == (4, 4)
    reps = []
    for counts in bootstrap_weights(4, 300, 5):
        for row in counts:
            idx = np.repeat(np.arange(4), row)  # the resample, drawn images repeated
            reps.append(
                f1_score(TRUTH[idx], ASSISTED[idx], average="macro")
                - f1_score(TRUTH[idx], UNASSISTED[idx], average="macro")
            )
    expected = percentile_interval(np.array(reps), seed=5)
    assert acc.interval.low == pytest.approx(expected.low, abs=1e-12)
    assert acc.interval.high == pytest.approx(expected.high, abs=1e-12)
    assert acc.interval.low <= acc.difference <= acc.interval.high


def test_readings_of_one_image_are_drawn_together():
    # two raters read the same two images: rows 0/2 are image 0, rows 1/3 image 1
    truth = np.array([1.0, 3.0, 1.0, 3.0])
    un = np.array([1.0, 3.0, 2.0, 3.0])
    asst = np.array([1.0, 3.0, 1.0, 3.0])
    acc = paired_accuracy(truth, un, asst, np.array([0, 1, 0, 1]), 2, severity=True, resamples=200)
    assert acc.unassisted == pytest.approx(math.sqrt(1 / 4)) and acc.assisted == 0.0
    # a resample without image 0 has no error on either side: the difference is 0 there, never
    # positive; with image 0 it is negative (assisted better)
    assert acc.interval.high <= 0.0 and acc.interval.low < 0.0
