"""Active learning after a training run: the new model re-orders the never-shown fold items."""
# ruff: noqa: F811  (fixtures imported from training_fixtures are used as arguments)

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from training_fixtures import build_quality_project, ml_app, ml_root, quality_model  # noqa: F401

from labeler import ml
from labeler.allocation import services
from labeler.allocation.models import QueueItem
from labeler.images.models import Image
from labeler.ml.active import prediction_uncertainty
from labeler.projects.settings import merge_settings
from labeler.training.active import refresh_after_run


def _queues(db, project):
    out = defaultdict(list)
    for it in db.scalars(
        select(QueueItem).where(QueueItem.project_id == project.id).order_by(QueueItem.position)
    ):
        out[it.rater_id].append((it.image_id, it.is_golden, it.position))
    return out


def test_a_new_model_orders_fold_items_by_its_uncertainty(ml_app, db, make_user, quality_model):
    storage = ml_app.extensions["labeler_storage"]
    factory = ml_app.extensions["labeler_db"].session_factory
    lead = make_user(None, "lead")
    project, _ = build_quality_project(db, storage, lead, n=24, golden=0, labeled=False)
    raters = [make_user(None, "rater") for _ in range(2)]
    services.allocate(db, lead, project, raters, golden_size=4, overlap=1, seed=3)
    db.flush()
    seeded = _queues(db, project)

    # the seeded order (the default): nothing moves
    off = refresh_after_run(factory, ml_app.config, project.id, quality_model.id, storage)
    assert off == {"status": "off"}
    db.expire_all()
    assert _queues(db, project) == seeded

    project.settings = merge_settings(
        project.protocol, project.settings or {}, {"queue": {"order": "uncertainty"}}
    )
    db.flush()
    done = refresh_after_run(factory, ml_app.config, project.id, quality_model.id, storage)
    assert done["status"] == "done" and done["model_id"] == quality_model.id
    assert done["scored"] == 20 and done["movable"] == 20 and done["moved"] > 0
    model = ml.load_model(quality_model.path)
    expected = {}
    for image in db.scalars(select(Image).where(Image.project_id == project.id)):
        with storage.open(image.display_key) as fh:
            expected[image.id] = prediction_uncertainty(ml.predict(model, fh.read(), cams=False))
    db.expire_all()
    after = _queues(db, project)
    for rater_id, queue in after.items():
        golden = [(i, p) for i, g, p in queue if g]
        assert golden == [(i, p) for i, g, p in seeded[rater_id] if g]  # golden items stay put
        fold = [i for i, g, _ in queue if not g]
        assert [expected[i] for i in fold] == sorted((expected[i] for i in fold), reverse=True)
