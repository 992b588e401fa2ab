"""Large uploads imported by a worker: the page and the API queue a job (202), the job's body imports
with the same service (hostile entries rejected per file), progress and the per-file result live on
the job's row, a job whose worker stopped reads failed and leaves no orphan files."""

from __future__ import annotations

import io
import json
import socket
import zipfile
from datetime import timedelta

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select

from labeler.auth.services import create_token
from labeler.db import database, utcnow
from labeler.images import import_jobs
from labeler.images.import_jobs import (
    dead_job_error,
    execute_import_job,
    job_json,
    reap_dead_jobs,
    upload_bytes,
)
from labeler.images.journal import StoreJournal, replay_store_journal
from labeler.images.models import Image, ImportJob, ImportJobStatus


def jpeg(seed: int, size=(96, 64)) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    PILImage.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(
        buf, "JPEG", quality=85
    )
    return buf.getvalue()


def archive(n: int, *, hostile: bool = True, size=(96, 64)) -> bytes:
    """A zip of n photos, plus (hostile) a zip-slip entry and a text file posing as a photo."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(n):
            zf.writestr(f"photos/p{i:03d}.jpg", jpeg(i, size))
        if hostile:
            zf.writestr("../../evil.jpg", jpeg(999))
            zf.writestr("photos/notes.jpg", b"not a photograph")
    return buf.getvalue()


def stored_keys(storage, prefix: str) -> list[str]:
    return list(storage.iter_keys(prefix))


@pytest.fixture()
def jobs_app(app):
    """Uploads above 10 KB become jobs; queued jobs wait (the tests run the job's body)."""
    app.config.update(IMPORT_JOB_MB=0.01, JOBS_LOCAL="off", TILES_AT_IMPORT=False)
    return app


def test_a_large_page_upload_becomes_a_job_and_the_worker_imports_it(
    jobs_app, db, make_user, make_project, login_as
):
    app = jobs_app
    storage = app.extensions["labeler_storage"]
    lead = make_user(None, "lead")
    project = make_project(lead)
    client = login_as(lead)
    data = archive(5)
    resp = client.post(
        f"/projects/{project.id}/upload",
        data={"files": [(io.BytesIO(data), "clinic.zip")], "csrf_token": client.csrf},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 302, resp.get_data(as_text=True)
    job = db.scalars(select(ImportJob).where(ImportJob.project_id == project.id)).one()
    assert resp.headers["Location"].endswith(f"/projects/{project.id}/imports/{job.id}")
    assert job.status is ImportJobStatus.queued and job.total_bytes == len(data)
    # the upload is in the blob store (any app server or worker reads it there), nothing imported
    (key,) = [u["key"] for u in job.uploads]
    assert key.startswith("jobs/imports/") and b"".join(storage.stream(key)) == data
    assert db.scalar(select(func.count(Image.id)).where(Image.project_id == project.id)) == 0
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Waiting for a worker" in page and 'data-status="queued"' in page

    done = execute_import_job(database(app).session_factory, app.config, storage, job.id)
    assert done.status is ImportJobStatus.succeeded and done.error is None
    assert (done.done, done.total) == (7, 7)
    assert len(done.summary["imported"]) == 5 and done.summary["duplicates"] == []
    rejected = {r["filename"]: r["error"] for r in done.summary["rejected"]}
    assert set(rejected) == {"clinic.zip/../../evil.jpg", "clinic.zip/photos/notes.jpg"}
    assert rejected["clinic.zip/../../evil.jpg"] == "unsafe path in archive"
    assert db.scalar(select(func.count(Image.id)).where(Image.project_id == project.id)) == 5
    assert stored_keys(storage, "jobs") == []  # the stored upload is gone once imported
    page = client.get(f"/projects/{project.id}/imports/{job.id}").get_data(as_text=True)
    assert "Import finished" in page and "unsafe path in archive" in page
    # a second delivery of the same job does nothing
    again = execute_import_job(database(app).session_factory, app.config, storage, job.id)
    assert again.status is ImportJobStatus.succeeded
    assert db.scalar(select(func.count(Image.id)).where(Image.project_id == project.id)) == 5


def test_the_api_answers_202_with_the_jobs_url(jobs_app, client, db, make_user, make_project):
    app = jobs_app
    lead, other, rater = make_user(None, "lead"), make_user(None, "lead"), make_user(None, "rater")
    project = make_project(lead)
    _t, raw = create_token(db, lead, lead, "t")
    _t, other_raw = create_token(db, other, other, "t")
    _t, rater_raw = create_token(db, rater, rater, "t")
    db.flush()
    resp = client.post(
        f"/api/v1/projects/{project.id}/images",
        data={"files": [(io.BytesIO(archive(3, hostile=False)), "batch.zip")]},
        headers={"Authorization": f"Bearer {raw}"},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 202, resp.json
    url = resp.json["url"]
    assert resp.headers["Location"].endswith(url) and resp.json["job"]["status"] == "queued"
    assert resp.json["job"]["files"] == [{"name": "batch.zip", "bytes": resp.json["job"]["bytes"]}]
    polled = client.get(url, headers={"Authorization": f"Bearer {raw}"})
    assert polled.status_code == 200 and polled.json["status"] == "queued"
    assert polled.headers["Cache-Control"] == "no-store"
    job_id = polled.json["id"]
    assert client.get(url, headers={"Authorization": f"Bearer {other_raw}"}).status_code == 403
    assert client.get(url, headers={"Authorization": f"Bearer {rater_raw}"}).status_code == 403
    missing = client.get("/api/v1/import-jobs/999999", headers={"Authorization": f"Bearer {raw}"})
    assert missing.status_code == 404 and missing.json["error"]["message"] == "no such import"
    storage = app.extensions["labeler_storage"]
    execute_import_job(database(app).session_factory, app.config, storage, job_id)
    body = client.get(url, headers={"Authorization": f"Bearer {raw}"}).json
    assert body["status"] == "succeeded" and body["done"] == body["total"] == 3
    assert len(body["summary"]["imported"]) == 3 and body["summary"]["line"].startswith(
        "3 imported"
    )


def test_a_small_upload_is_still_imported_in_the_request(jobs_app, client, db, make_user):
    app = jobs_app
    app.config["IMPORT_JOB_MB"] = 64
    lead = make_user(None, "lead")
    from labeler.projects.services import create_project

    project = create_project(db, lead, "small", "quality")
    _t, raw = create_token(db, lead, lead, "t")
    db.flush()
    resp = client.post(
        f"/api/v1/projects/{project.id}/images",
        data={"files": [(io.BytesIO(archive(2)), "small.zip")]},
        headers={"Authorization": f"Bearer {raw}"},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 201 and len(resp.json["imported"]) == 2
    assert db.scalar(select(func.count(ImportJob.id))) == 0


def test_upload_bytes_sums_the_spooled_files():
    a, b = io.BytesIO(b"x" * 10), io.BytesIO(b"y" * 5)
    b.seek(3)
    assert upload_bytes([("a", a), ("b", b)]) == 15 and b.tell() == 3


def test_the_broker_being_down_fails_the_job_in_words(jobs_app, db, make_user, make_project):
    app = jobs_app
    app.config["CELERY_BROKER_URL"] = "redis://127.0.0.1:1/0"  # nothing listens there
    lead = make_user(None, "lead")
    project = make_project(lead)
    storage = app.extensions["labeler_storage"]
    job = import_jobs.queue_import_job(
        db,
        lead,
        project,
        [("big.zip", io.BytesIO(archive(2)))],
        storage=storage,
        config={**app.config, "CELERY_BROKER_URL": "redis://127.0.0.1:1/0"},
        factory=database(app).session_factory,
        source_label="upload",
        checkpoint=db.flush,
    )
    assert job.status is ImportJobStatus.failed
    assert "could not be reached" in job.error and "nothing was imported" in job.error
    assert stored_keys(storage, "jobs") == []


def test_a_job_whose_worker_stopped_reads_failed_and_is_cleaned_up(
    jobs_app, db, make_user, make_project
):
    """A worker killed after its first checkpoint: the job reads failed at once (read-only), and
    reaping records what was saved and removes the stored upload and the files without rows."""
    app = jobs_app
    app.config["ML_HEARTBEAT_TIMEOUT_S"] = 5
    storage = app.extensions["labeler_storage"]
    lead = make_user(None, "lead")
    project = make_project(lead)
    job = import_jobs.queue_import_job(
        db,
        lead,
        project,
        [("big.zip", io.BytesIO(archive(3, hostile=False)))],
        storage=storage,
        config=app.config,
        factory=database(app).session_factory,
        source_label="upload",
        checkpoint=db.flush,
    )
    execute_import_job(database(app).session_factory, app.config, storage, job.id)
    db.refresh(job)
    saved = db.scalars(select(Image).where(Image.import_batch_id == job.batch_id)).all()
    # rewind: as if the worker had died after that checkpoint, on another machine, 10 s ago, while
    # writing the files of an image that has no row (listed in its store journal first)
    job.status, job.finished_at, job.host, job.pid = ImportJobStatus.running, None, "gone", 1
    job.heartbeat_at = utcnow() - timedelta(seconds=10)
    job.uploads = [{"name": "big.zip", "key": "jobs/imports/abc/upload-0000.zip", "size": 3}]
    storage.put("jobs/imports/abc/upload-0000.zip", b"zip")
    orphan = "originals/ff/ff/" + "f" * 64 + ".jpg"
    storage.put(orphan, b"half an import")
    journal = StoreJournal(storage, "jobs/imports/abc/journal")
    with journal.writing([orphan, saved[0].original_key]):
        pass
    db.flush()
    shown = job_json(job, app.config)
    assert shown["status"] == "failed" and "stopped reporting" in shown["error"]
    assert job.status is ImportJobStatus.running  # reading changed nothing
    # the reaper uses the store journal (here: as on a blob store)
    reaped = reap_dead_jobs(db, _NotLocal(storage), app.config, project_id=project.id)
    assert reaped == 1 and job.status is ImportJobStatus.failed
    assert "3 images were saved, up to and including" in job.error
    assert not storage.exists(orphan) and storage.exists(saved[0].original_key)
    assert stored_keys(storage, "jobs") == []


class _NotLocal:
    """A local store seen as a blob store (no local journal): the store-journal path."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_live_job_is_not_dead(jobs_app, db, make_user, make_project):
    app = jobs_app
    job = ImportJob(
        project_id=make_project().id,
        source="upload",
        uploads=[],
        status=ImportJobStatus.running,
        heartbeat_at=utcnow(),
        host=socket.gethostname() + "-elsewhere",
        pid=1,
    )
    db.add(job)
    db.flush()
    assert dead_job_error(job, app.config) is None
    job.heartbeat_at = utcnow() - timedelta(seconds=120)
    assert "stopped reporting" in dead_job_error(job, app.config)


def test_replaying_a_store_journal_spares_every_committed_file(app, db, make_project):
    from labeler.demo import MemorySource
    from labeler.images.services import import_images

    storage = app.extensions["labeler_storage"]
    summary = import_images(
        db,
        None,
        make_project(),
        [MemorySource("kept.jpg", jpeg(5))],
        storage=storage,
        source_label="t",
        checkpoint=db.flush,
    )
    kept = db.get(Image, summary.imported[0]["id"])
    orphan = "display/ee/ee/" + "e" * 64 + ".jpg"
    storage.put(orphan, b"x")
    journal = StoreJournal(storage, "jobs/imports/j1/journal")
    with journal.writing([kept.original_key, kept.display_key, orphan]):
        pass
    entries = stored_keys(storage, "jobs/imports/j1/journal")
    assert len(entries) == 1
    assert json.loads(b"".join(storage.stream(entries[0]))) == sorted(
        [kept.original_key, kept.display_key, orphan]
    )
    assert replay_store_journal(db, storage, "jobs/imports/j1/journal") == 1
    assert not storage.exists(orphan)
    assert storage.exists(kept.original_key) and storage.exists(kept.display_key)
    assert stored_keys(storage, "jobs") == []


def test_images_recover_records_dead_jobs(jobs_app, db, runner, make_project):
    app = jobs_app
    storage = app.extensions["labeler_storage"]
    storage.put("jobs/imports/dead/upload-0000.zip", b"zip")
    job = ImportJob(
        project_id=make_project().id,
        source="upload",
        uploads=[{"name": "big.zip", "key": "jobs/imports/dead/upload-0000.zip", "size": 3}],
        status=ImportJobStatus.running,
        heartbeat_at=utcnow() - timedelta(seconds=600),
        host="elsewhere",
        pid=1,
    )
    db.add(job)
    db.flush()
    res = runner.invoke(args=["images", "recover"])
    assert res.exit_code == 0, res.output
    assert "import jobs whose worker stopped, now recorded as failed: 1" in res.output
    db.refresh(job)
    assert job.status is ImportJobStatus.failed and "Nothing was imported." in job.error
    assert stored_keys(storage, "jobs") == []
