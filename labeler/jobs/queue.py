"""Sending jobs to Celery: the web process and the CLI import only this; labeler/jobs/worker.py runs them."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from celery import Celery

QUEUE = "labeler"
TRAIN_TASK = "labeler.train_run"
PRESCREEN_TASK = "labeler.prescreen"
SUGGESTIONS_TASK = "labeler.suggestions"
IMPORT_TASK = "labeler.import_job"
TILES_TASK = "labeler.tiles"
LOCAL_MODES = ("process", "inline", "off")


def broker_url(config: Mapping[str, Any]) -> str | None:
    """The Celery broker this app sends jobs to (LABELER_CELERY_BROKER_URL), or None: local workers."""
    return config.get("CELERY_BROKER_URL") or None


def local_mode(config: Mapping[str, Any]) -> str:
    """How a job runs when no broker is configured (LABELER_JOBS_LOCAL): 'process' (the default: a
    local worker process of its own, ``python -m labeler.jobs.local``), 'inline' (in the process that
    asks for it, e.g. the CLI or a worker already running a job) or 'off' (left queued)."""
    mode = str(config.get("JOBS_LOCAL") or "process")
    return mode if mode in LOCAL_MODES else "process"


def training_task_id(run_id: int) -> str:
    """One task id per run: a run sent twice is still one run (the worker claims a queued run once)."""
    return f"labeler-training-run-{run_id}"


@lru_cache(maxsize=4)
def celery_app(url: str) -> Celery:
    """The Celery app for a broker URL (one per URL and process)."""
    app = Celery("labeler", broker=url)
    configure(app)
    return app


def configure(app: Celery) -> None:
    """The settings the sender and the worker share (labeler/jobs/worker.py calls this too)."""
    app.conf.update(
        task_default_queue=QUEUE,
        # acknowledge after the task: a worker killed mid-run leaves the message to be delivered
        # again; the run itself is claimed once (execute_run), so a second delivery does nothing
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,  # results and progress live in the database, not in Celery
        worker_hijack_root_logger=False,
    )
    if str(app.conf.broker_url or "").startswith("redis"):
        # longer than the longest run, or Redis hands a running task to a second worker
        app.conf.broker_transport_options = {"visibility_timeout": 6 * 3600}


def _send(config: Mapping[str, Any], task: str, args: list[Any], task_id: str) -> str:
    """Send one task to the labeler queue under a fixed task id; returns the id."""
    url = broker_url(config)
    if url is None:
        raise RuntimeError("no Celery broker is configured (LABELER_CELERY_BROKER_URL)")
    celery_app(url).send_task(task, args=args, task_id=task_id, queue=QUEUE)
    return task_id


def _image_set_task(
    config: Mapping[str, Any], task: str, kind: str, project_id: int, image_ids: list[int]
) -> str:
    """A task over a project's image set: one task id per set (sorted ids hashed)."""
    ids = sorted(int(i) for i in image_ids)
    digest = hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:16]
    return _send(config, task, [project_id, ids], f"labeler-{kind}-{project_id}-{digest}")


def send_training(config: Mapping[str, Any], run_id: int) -> str:
    """Queue a training run on Celery; returns the task id."""
    return _send(config, TRAIN_TASK, [run_id], training_task_id(run_id))


def send_prescreen(config: Mapping[str, Any], project_id: int, image_ids: list[int]) -> str:
    """Queue the import prescreen of a project's new images; returns the task id (one per image set)."""
    return _image_set_task(config, PRESCREEN_TASK, "prescreen", project_id, image_ids)


def import_task_id(job_id: int) -> str:
    """One task id per import job (a job delivered twice is claimed once: labeler/images/import_jobs)."""
    return f"labeler-import-job-{job_id}"


def send_import(config: Mapping[str, Any], job_id: int) -> str:
    """Queue an import job on Celery; returns the task id."""
    return _send(config, IMPORT_TASK, [job_id], import_task_id(job_id))


def send_tiles(config: Mapping[str, Any], project_id: int, image_ids: list[int]) -> str:
    """Queue the deep-zoom tiles of a project's new images; returns the task id (one per image set)."""
    return _image_set_task(config, TILES_TASK, "tiles", project_id, image_ids)


def send_suggestions(config: Mapping[str, Any], job_id: int) -> str:
    """Queue a suggestion job (labeler/assist/compute.py); returns the task id (one per job)."""
    return _send(config, SUGGESTIONS_TASK, [job_id], f"labeler-suggestions-{job_id}")
