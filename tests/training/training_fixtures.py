"""Fixtures for the training tests (imported by the test modules; not a conftest, so the root one rules).

A small quality project built from tests/ml's synthetic photographs, labeled through the models by
three raters; a quality model trained once per session; an app on a committed database of its own
for the background worker (which runs in another process and cannot see a test's transaction).
"""

from __future__ import annotations

import io
import os
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from helpers import make_config
from sqlalchemy import text

from labeler import create_app
from labeler.allocation.models import GoldenImage
from labeler.db import make_engine
from labeler.demo import MemorySource
from labeler.images.services import import_images
from labeler.labeling.models import Label
from labeler.migrate import upgrade
from labeler.projects.models import MemberRole
from labeler.projects.services import add_member, create_project

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ml"))
import synth  # tests/ml's synthetic data helpers (on the path above)

CLASSES = ("lesion", "no_skin", "healthy_skin", "poor_quality")
PG_URL = os.environ.get("LABELER_TEST_DATABASE_URL")


def synthetic_image(rng: np.random.Generator, cls: str, photos: dict) -> tuple[bytes, list[str]]:
    """One JPEG of a class, with the explanations a rater would give (poor quality: one degradation)."""
    expl: list[str] = []
    names = sorted(photos)
    if cls == "no_skin":
        im = synth._crop(rng, photos[names[int(rng.integers(len(names)))]])
    else:
        im = synth.skin(
            rng, lesion=cls == "lesion" or (cls == "poor_quality" and rng.random() < 0.5)
        )
    if cls == "poor_quality":
        kind = ("blurry", "bad_light", "low_resolution")[int(rng.integers(3))]
        bg = synth._crop(rng, photos[names[int(rng.integers(len(names)))]])
        im = synth.degrade(rng, im, kind, bg)
        expl = [kind]
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue(), expl


def dark_blurry_jpeg(seed: int = 99) -> bytes:
    """Skin that is both very dark and blurred: the prescreen should flag it."""
    from PIL import ImageFilter

    rng = np.random.default_rng(seed)
    im = synth.skin(rng, lesion=True).filter(ImageFilter.GaussianBlur(6))
    a = np.asarray(im, float) * 0.15
    buf = io.BytesIO()
    from PIL import Image

    Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def good_jpeg(seed: int = 7) -> bytes:
    buf = io.BytesIO()
    synth.skin(np.random.default_rng(seed), lesion=True).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def build_quality_project(
    db,
    storage,
    lead,
    *,
    n: int = 60,
    golden: int = 16,
    raters: int = 3,
    seed: int = 0,
    labeled: bool = True,
    make_user=None,
    name: str | None = None,
):
    """A quality project of n synthetic images, the last `golden` in the golden set, labeled by raters.

    Raters give the true class (one of them errs on ~10% of images), so the golden set has
    inter-rater figures. Flushes; the caller commits (or the test rolls back).
    """
    from labeler.auth.models import Role
    from labeler.auth.services import add_user

    rng = np.random.default_rng(seed)
    photos = {p: synth.photo(p) for p in synth.PHOTOS[:8]}
    project = create_project(db, lead, name or f"train-{uuid.uuid4().hex[:8]}", "quality")
    truth = [CLASSES[i % 4] for i in range(n)]
    rng.shuffle(truth)
    items = [synthetic_image(rng, cls, photos) for cls in truth]
    summary = import_images(
        db,
        None,
        project,
        [MemorySource(f"im{i:03d}.jpg", b) for i, (b, _e) in enumerate(items)],
        storage=storage,
        source_label="test",
        checkpoint=db.flush,
    )
    ids = [row["id"] for row in summary.imported]
    assert len(ids) == n
    if labeled:
        users = [
            add_user(
                db, None, f"rater{j}-{uuid.uuid4().hex[:6]}@train.test", f"Rater {j}", {Role.rater}
            )
            for j in range(raters)
        ]
        db.flush()
        for u in users:
            add_member(db, None, project, u, MemberRole.rater)
        for i in range(n - golden, n):
            db.add(GoldenImage(project_id=project.id, image_id=ids[i]))
        for i, (cls, (_b, expl)) in enumerate(zip(truth, items, strict=True)):
            for j, u in enumerate(users):
                decision = cls
                if j == raters - 1 and rng.random() < 0.1:
                    decision = CLASSES[(CLASSES.index(cls) + 1) % 4]
                db.add(
                    Label(
                        project_id=project.id,
                        rater_id=u.id,
                        image_id=ids[i],
                        decision=decision,
                        explanations=expl if decision == "poor_quality" else [],
                    )
                )
    db.flush()
    return project, ids


@pytest.fixture(scope="session")
def ml_root(tmp_path_factory) -> Path:
    """One ML folder for the session: the exported backbone and the feature cache are reused."""
    return tmp_path_factory.mktemp("training-ml")


@pytest.fixture(scope="session")
def quality_model(ml_root: Path, tmp_path_factory):
    """A quality model trained once (library call) on synthetic images, for predict and prescreen tests."""
    from labeler.ml import train_quality

    root = tmp_path_factory.mktemp("synth-quality")
    manifest = synth.quality_dataset(root, 140, seed=3, golden=0)
    return train_quality(manifest, ml_root / "models", ml_root / "cache", seed=0, epochs=60)


@pytest.fixture()
def ml_app(app, ml_root):
    """The test app with its ML folder on the session's (models and cache shared) and no spawned workers."""
    app.config.update(ML_DIR=str(ml_root), ML_SPAWN_WORKER=False)
    return app


@pytest.fixture()
def committed_app(tmp_path, ml_root):
    """An app on a database of its own whose rows are committed, for the worker process to read."""
    if PG_URL:
        name = f"labeler_train_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        admin = make_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = PG_URL.rsplit("/", 1)[0] + "/" + name
    else:
        url = f"sqlite:///{tmp_path / 'worker.db'}"
    upgrade(url)
    application = create_app(make_config(tmp_path, url, ML_DIR=str(ml_root)))
    yield application
    application.extensions["labeler_db"].engine.dispose()
    if PG_URL:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
