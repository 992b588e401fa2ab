"""Active learning: uncertainty of predictions, and the simulation on the synthetic quality data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labeler.ml.active import (
    edge_uncertainty,
    entropy,
    macro_f1,
    prediction_uncertainty,
    simulate_label_order,
)


def test_entropy_and_edge_distance():
    h = entropy(np.array([[1.0, 0, 0, 0], [0.25] * 4, [0.5, 0.5, 0, 0]]))
    assert h == pytest.approx([0.0, math.log(4), math.log(2)], abs=1e-9)
    u = edge_uncertainty(np.array([2.5, 2.0, 1.0, 4.9]), [1.5, 2.5, 3.5, 4.5])
    assert u == pytest.approx([0.0, -0.5, -0.5, -0.4])
    q = {"kind": "quality", "probabilities": {"a": 0.5, "b": 0.5, "c": 0.0, "d": 0.0}}
    assert prediction_uncertainty(q) == pytest.approx(math.log(2))
    s = {"kind": "severity", "score": 3.4}
    assert prediction_uncertainty(s, [1.5, 2.5, 3.5, 4.5]) == pytest.approx(-0.1)
    with pytest.raises(ValueError):
        prediction_uncertainty(s)


def test_macro_f1_matches_scikit_learn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(3)
    y, p = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    assert macro_f1(y, p, 4) == pytest.approx(f1_score(y, p, average="macro"))


@pytest.fixture(scope="module")
def quality_features(quality_manifest, cache_dir):
    from labeler.ml.config import QualityConfig
    from labeler.ml.manifest import read_manifest
    from labeler.ml.quality import quality_targets, row_features
    from labeler.ml.runtime import FeatureExtractor

    m = read_manifest(quality_manifest)
    pool, held_out = m.quality_rows("fold"), m.quality_rows("golden")
    ex = FeatureExtractor(cache_dir)
    cfg = QualityConfig()
    return (
        row_features(ex, pool),
        quality_targets(pool, cfg)[0],
        row_features(ex, held_out),
        quality_targets(held_out, cfg)[0],
    )


def test_uncertainty_order_needs_fewer_labels_on_the_synthetic_data(quality_features):
    Xp, yp, Xt, yt = quality_features
    sim = simulate_label_order(Xp, yp, Xt, yt, n_classes=4, start=20, step=40, seed=0)
    assert sim.sizes[0] == 20 and sim.sizes[-1] == len(Xp)
    assert len(sim.random_f1) == len(sim.uncertainty_f1) == len(sim.sizes)
    # with every label revealed both orders train the same model
    assert sim.random_f1[-1] == sim.uncertainty_f1[-1]
    assert sim.target_f1 == pytest.approx(0.95 * sim.random_f1[-1], abs=1e-4)
    need = sim.labels_to_target
    assert need["random"] is not None and need["uncertainty"] is not None
    assert need["uncertainty"] < need["random"], sim
