"""With pre-labeling on, an import queues the suggestion job for its new images (started once the
import has committed); off, nothing is queued; a model that cannot be used any more skips in words
and the import stands."""

from __future__ import annotations

import io

from assist_support import MODEL_ID
from PIL import Image as PILImage
from sqlalchemy import select

from labeler.assist import compute, jobs
from labeler.assist.models import JobStatus, SuggestionJob
from labeler.demo import MemorySource
from labeler.images.services import import_images, run_import_hooks
from labeler.projects.settings import merge_settings


def _import(app, db, project, n: int, first: int = 0):
    storage = app.extensions["labeler_storage"]
    sources = []
    for i in range(first, first + n):
        buf = io.BytesIO()
        PILImage.new("RGB", (64, 48), (i, 120, 30)).save(buf, "JPEG", comment=f"new {i}")
        sources.append(MemorySource(f"new{i}.jpg", buf.getvalue()))
    summary = import_images(
        db, None, project, sources, storage=storage, source_label="t", checkpoint=db.flush
    )
    run_import_hooks(db, app.config, project, summary, storage)
    db.commit()
    return summary


def _jobs(db, project):
    return list(db.scalars(select(SuggestionJob).where(SuggestionJob.project_id == project.id)))


def test_an_import_queues_the_new_images_suggestions(app, db, assisted_project, monkeypatch):
    _lead, project, _raters, _images = assisted_project
    started = []
    monkeypatch.setattr(compute, "launch_job", lambda _config, job_id: started.append(job_id))
    monkeypatch.setattr(jobs, "check_model", lambda _config, _project, model_id: model_id)
    before = len(_jobs(db, project))

    off = _import(app, db, project, 2)
    assert off.after_import["suggestions"] == {"status": "off"} and started == []
    assert len(_jobs(db, project)) == before

    project.settings = merge_settings(
        project.protocol, project.settings or {}, {"suggestions_model_id": MODEL_ID}
    )
    db.commit()
    summary = _import(app, db, project, 3, first=10)
    result = summary.after_import["suggestions"]
    assert result["status"] == "queued" and result["images"] == 3, summary.as_dict()
    job = db.get(SuggestionJob, result["job"])
    assert (job.model_id, job.status) == (MODEL_ID, JobStatus.queued)
    assert started == [job.id]  # launched once the import committed
    assert "suggestions for 3 new images are being computed" in summary.line()


def test_a_model_gone_skips_in_words_and_the_import_stands(app, db, assisted_project, monkeypatch):
    _lead, project, _raters, _images = assisted_project
    monkeypatch.setattr(compute, "launch_job", lambda *_a: None)
    project.settings = {**(project.settings or {}), "suggestions_model_id": "quality-gone"}
    db.commit()
    before = len(_jobs(db, project))
    summary = _import(app, db, project, 1)
    result = summary.after_import["suggestions"]
    assert result["status"] == "skipped" and result["reason"]
    assert len(summary.imported) == 1 and len(_jobs(db, project)) == before
    assert "suggestions not computed" in summary.line()
