"""Every evaluation says how many images it rests on and refuses a verdict below the minimum."""

from __future__ import annotations

import pytest

from labeler.errors import ValidationError
from labeler.ml import evaluate
from labeler.ml.evaluation import DEFAULT_MIN_EVAL_IMAGES, too_few_to_judge
from labeler.projects.settings import merge_settings, read_settings

QUALITY_BAR = {"macro_f1_mean": 0.77, "macro_f1_std": 0.07}


def test_quality_verdict_only_on_enough_images(quality_model, quality_manifest):
    judged = evaluate(quality_model.path, quality_manifest, QUALITY_BAR, save=False, resamples=50)
    n = judged["figures"]["n"]
    assert judged["n_images"] == n and n >= DEFAULT_MIN_EVAL_IMAGES
    assert judged["verdict"] is not None and judged["verdict_withheld"] is None

    withheld = evaluate(
        quality_model.path,
        quality_manifest,
        QUALITY_BAR,
        save=False,
        resamples=50,
        min_images=n + 1,
    )
    assert withheld["verdict"] is None
    assert withheld["verdict_withheld"] == (
        f"too few images to judge: the figures rest on {n} golden images, "
        f"and a verdict needs at least {n + 1}"
    )
    # the figures are still there, the same as with a verdict
    assert withheld["figures"]["macro_f1"] == judged["figures"]["macro_f1"]
    assert withheld["n_images"] == n and withheld["min_images"] == n + 1


def test_severity_verdict_only_on_enough_images(severity_model, severity_manifest):
    withheld = evaluate(
        severity_model.path,
        severity_manifest,
        {"bar": 0.5},
        save=False,
        resamples=50,
        min_images=1000,
    )
    n = withheld["n_images"]
    assert (
        withheld["verdict"] is None and f"rest on {n} golden images" in withheld["verdict_withheld"]
    )
    judged = evaluate(
        severity_model.path, severity_manifest, {"bar": 0.5}, save=False, resamples=50, min_images=n
    )
    assert judged["verdict"] is not None and judged["verdict_withheld"] is None


def test_the_minimum_is_a_validated_project_setting():
    assert read_settings({}).min_eval_images == DEFAULT_MIN_EVAL_IMAGES
    new = merge_settings("quality", {}, {"agreement": {"min_eval_images": "30"}})
    assert read_settings(new).min_eval_images == 30
    for bad in (0, -1, "lots", 2.5):
        with pytest.raises(ValidationError, match="minimum of golden images"):
            merge_settings("severity", {}, {"agreement": {"min_eval_images": bad}})
    assert too_few_to_judge(1, 2) == (
        "too few images to judge: the figures rest on 1 golden image, and a verdict needs at least 2"
    )
    assert too_few_to_judge(2, 2) is None
