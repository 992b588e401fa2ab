"""The Celery worker: ``celery -A labeler.jobs.worker worker -Q labeler --concurrency 1``.

Tasks: training runs, the import prescreen and suggestion jobs (labeler/assist/compute.py).

It reads the same LABELER_* settings as the web app (database, store, ML folder) and
LABELER_CELERY_BROKER_URL; the task body is labeler.training.worker.execute_run, the one a local
worker process runs when no broker is configured. Training uses CUDA when this worker has it
(torch.cuda.is_available()), the CPU otherwise (labeler/ml chooses the device).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery
from flask import Flask

from .. import create_app
from ..assist.compute import run_job
from ..db import database
from ..errors import LabelerError
from ..images.import_jobs import execute_import_job
from ..images.tiles import build_pyramids_job
from ..projects.models import Project
from ..training.prescreen import screen_images
from ..training.worker import execute_run
from ..webhooks.dispatch import WEBHOOK_TASK, run_task
from . import queue as job_queue
from .queue import PRESCREEN_TASK, QUEUE, SUGGESTIONS_TASK, TRAIN_TASK, configure

log = logging.getLogger(__name__)

app = Celery("labeler", broker=os.environ.get("LABELER_CELERY_BROKER_URL"))
configure(app)
_flask = None


def flask_app() -> Flask:
    """The labeler app of this worker process, built once from the environment."""
    global _flask
    if _flask is None:
        _flask = create_app()
    return _flask


@app.task(name=TRAIN_TASK, queue=QUEUE)
def train_run(run_id: int) -> dict[str, Any]:
    """Run one queued training run; a run already claimed, finished or cancelled is left alone."""
    application = flask_app()
    with application.app_context():
        try:
            run = execute_run(
                database(application).session_factory,
                application.config,
                application.extensions["labeler_storage"],
                int(run_id),
            )
        except LabelerError as exc:  # not queued (a second delivery, cancelled) or gone
            log.info("training run %s: nothing to do: %s", run_id, exc.message)
            return {"run_id": run_id, "skipped": exc.message}
    log.info("training run %s %s", run.id, run.status.value)
    return {"run_id": run.id, "status": run.status.value}


@app.task(name=PRESCREEN_TASK, queue=QUEUE)
def prescreen(project_id: int, image_ids: list[int]) -> dict[str, Any]:
    """Prescreen a project's newly imported images and store each result on its image (the same
    body as an import without a broker: labeler.training.prescreen.screen_images)."""
    application = flask_app()
    with application.app_context(), database(application).session_factory() as session:
        project = session.get(Project, int(project_id))
        if project is None:
            return {"status": "skipped", "reason": f"project {project_id} no longer exists"}
        result = screen_images(
            session,
            application.config,
            project,
            [int(i) for i in image_ids],
            application.extensions["labeler_storage"],
        )
        session.commit()
    log.info("prescreen of project %s: %s", project_id, result.get("status"))
    return result


@app.task(name=WEBHOOK_TASK, queue=QUEUE)
def webhook_deliver(delivery_id: int) -> dict[str, Any]:
    """One attempt of a webhook delivery; a failed one queues the next with its back-off
    (labeler.webhooks.dispatch.run_task; the local dispatcher thread sends the same attempts)."""
    application = flask_app()
    with application.app_context():
        return run_task(application, int(delivery_id))


@app.task(name=job_queue.IMPORT_TASK, queue=QUEUE)
def import_job(job_id: int) -> dict[str, Any]:
    """Import a queued large upload (labeler.images.import_jobs.execute_import_job, the body a local
    worker process runs too). Delivered again after its worker was killed, it waits for the job's
    heartbeat to go stale, then records the job failed and removes its orphan files."""
    application = flask_app()
    with application.app_context():
        wait = float(application.config.get("ML_HEARTBEAT_TIMEOUT_S") or 60) + 5
        job = execute_import_job(
            database(application).write_session_factory,  # SQLite: the write lock up front
            application.config,
            application.extensions["labeler_storage"],
            int(job_id),
            wait_s=wait,
        )
    log.info("import job %s %s", job.id, job.status.value)
    return {"job_id": job.id, "status": job.status.value}


@app.task(name=job_queue.TILES_TASK, queue=QUEUE)
def tiles(project_id: int, image_ids: list[int]) -> dict[str, Any]:
    """Build the deep-zoom tiles of a project's newly imported images (the images' ids)."""
    application = flask_app()
    with application.app_context():
        result = build_pyramids_job(
            database(application).session_factory,
            application.config,
            application.extensions["labeler_storage"],
            [int(i) for i in image_ids],
        )
    log.info("tiles of project %s: %s", project_id, result)
    return result


@app.task(name=SUGGESTIONS_TASK, queue=QUEUE)
def suggestions(job_id: int) -> dict[str, Any]:
    """Compute a queued suggestion job (the body a local worker process runs: assist.compute.run_job)."""
    application = flask_app()
    with application.app_context():
        job = run_job(
            database(application).session_factory,
            application.config,
            application.extensions["labeler_storage"],
            int(job_id),
        )
    log.info("suggestion job %s %s", job.id, job.status.value)
    return {"job_id": job.id, "status": job.status.value}
