"""The active-learning simulation on a project's own labels (imports torch through quality.py).

The fold images with a clean fused quality label are the pool, the golden images the held-out set;
their frozen-backbone features come from the feature cache (computed once, shared with training).
``labeler.ml.active.simulate_label_order`` then reveals the pool's labels in random and in
most-uncertain-first order and scores each model on the held-out set: the learning curve of the
Models page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .active import simulate_label_order
from .config import QualityConfig
from .errors import NotEnoughData
from .manifest import read_manifest
from .quality import quality_targets, row_features
from .runtime import FeatureExtractor

MIN_POOL = 40  # fewer fold labels than this draw no curve worth reading
MIN_HELD_OUT = 10


def simulate_from_manifest(
    manifest_path: str | Path, cache_dir: str | Path, *, seed: int = 0, step: int = 20
) -> dict[str, Any]:
    """The simulation of a quality manifest: curves, target and labels needed, and the counts."""
    manifest = read_manifest(manifest_path)
    pool, held_out = manifest.quality_rows("fold"), manifest.quality_rows("golden")
    if len(pool) < MIN_POOL or len(held_out) < MIN_HELD_OUT:
        raise NotEnoughData(
            f"the simulation needs at least {MIN_POOL} labeled fold images and {MIN_HELD_OUT} "
            f"labeled golden images; this project has {len(pool)} and {len(held_out)}"
        )
    cfg = QualityConfig()
    extractor = FeatureExtractor(cache_dir)
    Xp, Xt = row_features(extractor, pool), row_features(extractor, held_out)
    yp, yt = quality_targets(pool, cfg)[0], quality_targets(held_out, cfg)[0]
    sim = simulate_label_order(
        Xp, yp, Xt, yt, n_classes=len(cfg.classes), start=step, step=step, seed=seed
    )
    return {**sim.to_dict(), "pool": len(pool), "held_out": len(held_out), "step": step}
