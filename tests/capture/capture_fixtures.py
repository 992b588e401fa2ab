"""Fixtures for the capture tests: the training tests' synthetic quality model, and photos."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "training"))
from training_fixtures import ml_app, ml_root, quality_model, synth  # noqa: F401

from labeler.training.models import ModelKind, RunStatus, TrainingRun


def skin_photo(seed: int, *, size: tuple[int, int] | None = None, blur: float = 0.0) -> bytes:
    """A synthetic skin close-up with a lesion as JPEG; `blur` is a Gaussian radius at 256 px."""
    im = synth.skin(np.random.default_rng(seed), lesion=True)
    if blur:
        im = im.filter(ImageFilter.GaussianBlur(blur))
    if size:
        im = im.resize(size, Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=92)
    return buf.getvalue()


def with_exif_gps(data: bytes) -> bytes:
    """The same photo with an EXIF block holding a GPS position and a name."""
    im = Image.open(io.BytesIO(data))
    exif = Image.Exif()
    exif[0x013B] = "Patient Jane Doe"  # Artist
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 0.0)}  # GPSInfo
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=92, exif=exif)
    return buf.getvalue()


def trained_run(project_id: int, model_id: str) -> TrainingRun:
    return TrainingRun(
        project_id=project_id,
        kind=ModelKind.quality,
        status=RunStatus.succeeded,
        seed=0,
        done=1,
        total=1,
        model_id=model_id,
        metrics={},
    )
