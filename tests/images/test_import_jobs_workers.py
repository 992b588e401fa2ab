"""Import jobs on real workers: a local worker process (no broker) and a Celery worker with a real
Redis (both started here), each killed with SIGKILL in the middle of an import. The job must read
failed with a message within the heartbeat timeout and, once a worker has recorded it, leave no file
without a row: no stored upload, no journal, no image file that no image row refers to."""
# ruff: noqa: F811  (fixtures imported from the fixture modules are used as arguments)

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import fresh_database, login, make_config
from PIL import Image as PILImage
from sqlalchemy import select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "training"))
from celery_fixtures import celery_workers, redis_url  # noqa: F401

from labeler import create_app
from labeler.auth.models import Role
from labeler.auth.services import add_user
from labeler.images.models import Image, ImportJob
from labeler.jobs import spawn
from labeler.projects.services import create_project

pytestmark = pytest.mark.slow
PG_URL = os.environ.get("LABELER_TEST_DATABASE_URL")
# the workers here run on this machine: a killed one is known dead from its pid at once; the
# timeout (for workers on other machines) only has to outlast a busy machine's slowest checkpoint
HEARTBEAT_TIMEOUT_S = 30
PHOTOS = 240


def _zip(n: int) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for i in range(n):
            out = io.BytesIO()
            pixels = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
            PILImage.fromarray(pixels).save(out, "JPEG", quality=80)
            zf.writestr(f"p{i:03d}.jpg", out.getvalue())
    return buf.getvalue()


@pytest.fixture(scope="module")
def big_zip() -> bytes:
    return _zip(PHOTOS)


@pytest.fixture()
def worker_app(tmp_path):
    """An app on a database of its own (committed rows, for the worker processes to read)."""
    (tmp_path / "db").mkdir()
    with fresh_database(tmp_path / "db", PG_URL) as url:
        app = create_app(
            make_config(
                tmp_path,
                url,
                IMPORT_JOB_MB=1,
                JOBS_LOCAL="process",
                TILES_AT_IMPORT=False,
                ML_HEARTBEAT_TIMEOUT_S=HEARTBEAT_TIMEOUT_S,
            )
        )
        yield app
        for proc in list(spawn.CHILDREN):  # local workers the test's app started
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        spawn.reap_children()
        app.extensions["labeler_db"].engine.dispose()


def _lead_and_project(app):
    factory = app.extensions["labeler_db"].session_factory
    with factory() as s:
        lead = add_user(s, None, "lead@jobs.test", "Lead", {Role.lead})
        s.flush()
        project = create_project(s, lead, "big imports", "quality")
        s.commit()
        return lead, project.id


def _upload(client, project_id: int, data: bytes) -> str:
    # encoded here, in memory: werkzeug's test client would spool the 49 MB body to a temporary
    # file that it never closes
    upload = FileStorage(io.BytesIO(data), filename="clinic.zip", content_type="application/zip")
    boundary, body = encode_multipart({"files": upload})
    resp = client.post(
        f"/api/v1/projects/{project_id}/images",
        data=body,
        headers={"X-CSRFToken": client.csrf},
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    assert resp.status_code == 202, resp.get_data(as_text=True)
    return resp.json["url"]


def _wait(client, url: str, until, timeout: float, what: str) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(url).json
        if until(job):
            return job
        time.sleep(0.1)
    raise AssertionError(f"{what}: the job is still {job} after {timeout} s\n{_logs(client)}")


def _logs(client) -> str:
    logs = Path(client.application.config["INSTANCE_PATH"], "jobs")
    return (
        "".join(p.read_text()[-2000:] for p in sorted(logs.glob("*.log"))) if logs.is_dir() else ""
    )


def _row(app, job_id: int) -> ImportJob:
    with app.extensions["labeler_db"].session_factory() as s:
        return s.get(ImportJob, job_id)


def _no_orphans(app) -> tuple[int, list[str]]:
    """(images, files without a row) of the store: nothing may be left but the images' own files."""
    storage = app.extensions["labeler_storage"]
    with app.extensions["labeler_db"].session_factory() as s:
        rows = s.execute(select(Image.original_key, Image.display_key, Image.thumb_key)).all()
    referenced = {k for row in rows for k in row}
    stray = [
        key
        for prefix in ("originals", "display", "thumbs", "jobs")
        for key in storage.iter_keys(prefix)
        if key not in referenced
    ]
    return len(rows), stray


def _recorded(app, client, url: str, job_id: int, timeout: float) -> ImportJob:
    """Wait until a worker has recorded the dead job (the lead's page keeps polling meanwhile)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = _row(app, job_id)
        if row.status.value == "failed":
            return row
        client.get(url)  # a reader asks for a worker to record it (at most every 10 s)
        time.sleep(0.5)
    logs = Path(app.config["INSTANCE_PATH"], "jobs")
    text = (
        "".join(p.read_text()[-2000:] for p in sorted(logs.glob("*.log"))) if logs.is_dir() else ""
    )
    raise AssertionError(
        f"import job {job_id} not recorded failed: {_row(app, job_id).status}\n{text}"
    )


def test_a_local_worker_process_killed_mid_import(worker_app, big_zip):
    app = worker_app
    lead, project_id = _lead_and_project(app)
    client = app.test_client()
    login(client, lead)
    started = time.monotonic()
    url = _upload(client, project_id, big_zip)
    job = _wait(client, url, lambda j: j["done"] >= 30, 120, "the import never got going")
    row = _row(app, job["id"])
    assert row.status.value == "running" and row.pid
    os.kill(row.pid, signal.SIGKILL)  # the worker process dies mid-import
    killed = time.monotonic()
    failed = _wait(client, url, lambda j: j["status"] == "failed", HEARTBEAT_TIMEOUT_S + 30, "kill")
    read_failed_s = time.monotonic() - killed
    assert "stopped reporting" in failed["error"]
    recorded = _recorded(app, client, url, job["id"], 120)  # a new local worker records it
    images, stray = _no_orphans(app)
    assert stray == [] and 0 < images < PHOTOS
    assert f"{images} images were saved, up to and including" in recorded.error
    print(
        f"\nlocal worker killed after {killed - started:.1f} s ({job['done']} files): job read "
        f"failed {read_failed_s:.1f} s later; {images} images kept, 0 orphan files"
    )


def test_a_celery_worker_killed_mid_import(
    worker_app, big_zip, redis_url, celery_workers, monkeypatch
):
    app = worker_app
    # the workers read these from their environment (the fixture passes the database and store)
    monkeypatch.setenv("LABELER_ML_HEARTBEAT_TIMEOUT_S", str(HEARTBEAT_TIMEOUT_S))
    monkeypatch.setenv("LABELER_TILES_AT_IMPORT", "false")
    app.config.update(CELERY_BROKER_URL=redis_url)
    lead, project_id = _lead_and_project(app)
    client = app.test_client()
    login(client, lead)
    first = celery_workers(app.config, "w1")
    url = _upload(client, project_id, big_zip)
    job = _wait(client, url, lambda j: j["done"] >= 30, 120, "the import never got going")
    first.kill()  # the whole worker, as a machine failure would: Redis keeps its message for hours
    killed = time.monotonic()
    failed = _wait(client, url, lambda j: j["status"] == "failed", HEARTBEAT_TIMEOUT_S + 30, "kill")
    read_failed_s = time.monotonic() - killed
    assert "stopped reporting" in failed["error"]
    second = celery_workers(app.config, "w2")  # reading the dead job asked for a worker: this one
    try:
        recorded = _recorded(app, client, url, job["id"], 120)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{second.text()[-3000:]}") from None
    images, stray = _no_orphans(app)
    assert stray == [] and 0 < images < PHOTOS
    assert f"{images} images were saved" in recorded.error
    # uploading the same zip again imports the rest: the saved images are skipped as duplicates
    url = _upload(client, project_id, big_zip)
    done = _wait(client, url, lambda j: j["status"] in ("succeeded", "failed"), 180, "the retry")
    assert done["status"] == "succeeded", done
    assert len(done["summary"]["duplicates"]) == images
    assert len(done["summary"]["imported"]) == PHOTOS - images
    assert _no_orphans(app) == (PHOTOS, [])
    print(
        f"\nCelery worker killed ({job['done']} files done): job read failed {read_failed_s:.1f} s "
        f"later; {images} images kept, 0 orphan files; the upload again imported the other "
        f"{PHOTOS - images}"
    )
