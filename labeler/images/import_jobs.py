"""Large uploads imported by a background worker (a Celery task, or a local worker process).

An upload larger than ``IMPORT_JOB_MB`` is not imported in the request: its files are stored in the
blob store (never on the answering app server's disk: any app server may answer the next request,
and the worker may be on another machine), an ``ImportJob`` row is committed, and the job is sent to
Celery (``labeler.import_job``) or, with no broker, to a local worker process
(``python -m labeler.jobs.local import JOB_ID``). The request answers at once (the page shows the
job and polls it; the API answers 202 with the job's URL).

The worker claims the job once (queued -> running), imports with the same service as a small upload
(hostile files rejected per file as before) and checkpoints at least every ``CHECKPOINT_EVERY_S``:
each checkpoint commits the images so far and stamps the job's heartbeat and progress. Crash safety:
on a local folder the import journal works as for any import; on a blob store the job keeps its
journal in the store (``StoreJournal``). A job whose heartbeat is older than the timeout reads
failed at once (``dead_job_error``, read-only); whoever records it (the job's next delivery, the
next upload to the project, ``labeler images recover``) deletes the files that no committed row
refers to and the stored upload (``reap_dead_jobs``).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from ..audit.services import record_event
from ..auth.models import User
from ..db import utcnow
from ..errors import LabelerError, NotFound
from ..jobs.queue import broker_url, local_mode, send_import
from ..jobs.spawn import process_alive, spawn
from ..projects.models import Project
from .journal import StoreJournal, recover_interrupted_imports, replay_store_journal
from .models import Image, ImportBatch, ImportJob, ImportJobStatus
from .processing import MiB
from .services import (
    ImportInterrupted,
    ImportSummary,
    import_images,
    import_uploads,
    run_import_hooks,
)
from .sources import clean_name, iter_uploads, upload_file_count
from .storage import LocalStorage, Storage

log = logging.getLogger(__name__)

JOB_PREFIX = "jobs/imports"
DEFAULT_JOB_MB = 64
CHECKPOINT_EVERY_S = 2.0  # a job's checkpoints are its heartbeat
IN_FLIGHT = (ImportJobStatus.queued, ImportJobStatus.running)


class JobLost(Exception):
    """The job's row left `running` under this worker (it was found dead and reaped meanwhile)."""


def job_threshold_bytes(config: Mapping[str, Any]) -> int:
    """Uploads larger than this (LABELER_IMPORT_JOB_MB) are imported by a worker."""
    return int(float(config.get("IMPORT_JOB_MB") or DEFAULT_JOB_MB) * MiB)


def upload_bytes(files: list[tuple[str, BinaryIO]]) -> int:
    """The uploaded files' total size (werkzeug has spooled them; nothing is read)."""
    total = 0
    for _name, stream in files:
        if not stream.seekable():
            return -1
        here = stream.tell()
        total += stream.seek(0, os.SEEK_END)
        stream.seek(here)
    return total


def wants_job(config: Mapping[str, Any], files: list[tuple[str, BinaryIO]]) -> bool:
    """True when the upload is large enough to be imported by a worker (or cannot be sized)."""
    size = upload_bytes(files)
    return size < 0 or size > job_threshold_bytes(config)


def receive_upload(
    session: Session,
    actor: User,
    project: Project,
    files: list[tuple[str, BinaryIO]],
    *,
    storage: Storage,
    config: Mapping[str, Any],
    factory: sessionmaker,
    source_label: str,
    checkpoint: Callable[[], None],
) -> ImportJob | ImportSummary:
    """An upload from the page or the API: a large one (``wants_job``) is stored and queued for a
    worker (the ImportJob comes back), a small one is imported now (its ImportSummary)."""
    if wants_job(config, files):
        return queue_import_job(
            session,
            actor,
            project,
            files,
            storage=storage,
            config=config,
            factory=factory,
            source_label=source_label,
            checkpoint=checkpoint,
        )
    return import_uploads(
        session,
        actor,
        project,
        files,
        storage=storage,
        config=config,
        source_label=source_label,
        checkpoint=checkpoint,
    )


def queue_import_job(
    session: Session,
    actor: User,
    project: Project,
    files: list[tuple[str, BinaryIO]],
    *,
    storage: Storage,
    config: Mapping[str, Any],
    factory: sessionmaker,
    source_label: str,
    checkpoint: Callable[[], None],
) -> ImportJob:
    """Store the uploaded files in the blob store, commit a queued job and hand it to a worker.

    `checkpoint` is the caller's commit (the worker reads the job from the database); `factory`
    opens the worker's sessions when the job runs in this process (LABELER_JOBS_LOCAL=inline)."""
    reap_dead_jobs(session, storage, config, project_id=project.id)
    folder = f"{JOB_PREFIX}/{uuid.uuid4().hex}"
    uploads: list[dict[str, Any]] = []
    try:
        for n, (raw_name, stream) in enumerate(files):
            name = clean_name(raw_name)
            ext = ".zip" if name.lower().endswith(".zip") else ".bin"
            key = f"{folder}/upload-{n:04d}{ext}"
            stream.seek(0)
            storage.put_stream(key, stream)
            uploads.append({"name": name, "key": key, "size": storage.size(key)})
    except BaseException:
        _delete_uploads(storage, uploads)
        raise
    finally:
        for _name, stream in files:  # the request's spooled copies: the store has them now
            stream.close()
    job = ImportJob(
        project_id=project.id,
        created_by_id=actor.id if actor else None,
        source=source_label[:500],
        uploads=uploads,
        total_bytes=sum(u["size"] for u in uploads),
        status=ImportJobStatus.queued,
    )
    session.add(job)
    session.flush()
    record_event(
        session,
        actor,
        "images.import_job",
        "import_job",
        job.id,
        project_id=project.id,
        files=len(uploads),
        bytes=job.total_bytes,
    )
    try:
        checkpoint()
    except BaseException:
        _delete_uploads(storage, uploads)
        raise
    start_job(session, config, storage, factory, job)
    return job


def start_job(
    session: Session, config: Mapping[str, Any], storage: Storage, factory: sessionmaker, job
) -> None:
    """After the job is committed: send it to Celery (a broker is set), else to a local worker
    process, or run it here (JOBS_LOCAL=inline); 'off' leaves it queued."""
    if broker_url(config):
        try:
            send_import(config, job.id)
        except Exception:  # broker down: the lead reads it on the job, and the upload is dropped
            log.exception("import job %s could not be queued", job.id)
            _fail(
                session,
                storage,
                job,
                "The import workers could not be reached (the job queue did not answer), so the "
                "import did not start and nothing was imported. Try again later; an administrator "
                "can check the queue and its workers.",
            )
        return
    mode = local_mode(config)
    if mode == "process":
        log_path = Path(config.get("INSTANCE_PATH") or ".") / "jobs" / f"import-{job.id}.log"
        try:
            spawn("labeler.jobs.local", ["import", str(job.id)], config, log_path)
        except OSError as exc:
            _fail(session, storage, job, f"The import worker could not be started ({exc}).")
    elif mode == "inline":
        execute_import_job(factory, config, storage, job.id)
        session.refresh(job)


def _fail(session: Session, storage: Storage, job: ImportJob, message: str) -> None:
    job.status, job.error, job.finished_at = ImportJobStatus.failed, message, utcnow()
    session.flush()
    _delete_uploads(storage, job.uploads or [])


def _delete_uploads(storage: Storage, uploads: list[dict[str, Any]]) -> None:
    for upload in uploads:
        try:
            storage.delete(upload["key"])
        except OSError:
            log.exception("stored upload %s not deleted", upload.get("key"))
        if not isinstance(storage, LocalStorage) and hasattr(storage, "scratch"):
            Path(storage.scratch, upload["key"]).unlink(missing_ok=True)  # the worker's copy


def _journal_prefix(job: ImportJob) -> str:
    folder = (job.uploads or [{}])[0].get("key", f"{JOB_PREFIX}/job-{job.id}/x").rsplit("/", 1)[0]
    return f"{folder}/journal"


# -- the worker ---------------------------------------------------------------------------------


def execute_import_job(
    factory: sessionmaker,
    config: Mapping[str, Any],
    storage: Storage,
    job_id: int,
    *,
    wait_s: float = 0.0,
) -> ImportJob:
    """Claim a queued job and import it; returns the final row.

    A job that is not queued is left alone, except a running one whose worker is gone: that one is
    recorded failed and its files cleaned up. ``wait_s``: how long to wait for a running job's
    heartbeat to go stale (a Celery redelivery after its worker was killed) before giving up."""
    with factory() as s:
        claimed = s.execute(
            update(ImportJob)
            .where(ImportJob.id == job_id, ImportJob.status == ImportJobStatus.queued)
            .values(
                status=ImportJobStatus.running,
                started_at=utcnow(),
                heartbeat_at=utcnow(),
                pid=os.getpid(),
                host=socket.gethostname(),
            )
        ).rowcount
        s.commit()
    if not claimed:
        return _not_claimed(factory, config, storage, job_id, wait_s)
    try:
        _run(factory, config, storage, job_id)
    except JobLost:
        log.warning("import job %s was recorded failed while it ran: stopped", job_id)
    with factory() as s:
        return s.get(ImportJob, job_id)


def _not_claimed(factory, config, storage, job_id: int, wait_s: float) -> ImportJob:
    deadline = time.monotonic() + wait_s
    while True:
        with factory() as s:
            job = s.get(ImportJob, job_id)
            if job is None:
                raise NotFound(f"no import job with id {job_id}")
            if job.status is not ImportJobStatus.running:
                return job
            if dead_job_error(job, config):
                reap_dead_jobs(s, storage, config, jobs=[job])
                s.commit()
                return job
        if time.monotonic() >= deadline:
            return job
        time.sleep(min(1.0, max(deadline - time.monotonic(), 0.05)))


def _run(factory: sessionmaker, config: Mapping[str, Any], storage: Storage, job_id: int) -> None:
    me = (os.getpid(), socket.gethostname())
    counted = {"done": 0}
    with factory() as s, ExitStack() as stack:
        job = s.get(ImportJob, job_id)
        project = s.get(Project, job.project_id)
        actor = s.get(User, job.created_by_id) if job.created_by_id else None
        files = []
        for upload in job.uploads:
            fh = stack.enter_context(storage.local_file(upload["key"]).open("rb"))
            files.append((upload["name"], fh))
        job.total = sum(upload_file_count(name, fh) for name, fh in files)
        batch = ImportBatch(
            project_id=project.id,
            created_by_id=actor.id if actor else None,
            source=job.source,
        )
        s.add(batch)
        s.flush()
        job.batch_id = batch.id
        s.commit()

        def checkpoint() -> None:  # the import's commit; it stamps the heartbeat and progress
            stamped = s.execute(
                update(ImportJob)
                .where(
                    ImportJob.id == job_id,
                    ImportJob.status == ImportJobStatus.running,
                    ImportJob.pid == me[0],
                    ImportJob.host == me[1],
                )
                .values(heartbeat_at=utcnow(), done=counted["done"])
            ).rowcount
            if not stamped:
                raise JobLost()
            s.commit()

        def tick(_name: str) -> None:
            counted["done"] += 1

        journal = (
            None
            if isinstance(storage, LocalStorage)
            else StoreJournal(storage, _journal_prefix(job))
        )
        try:
            summary = import_images(
                s,
                actor,
                project,
                iter_uploads(files),
                storage=storage,
                source_label=job.source,
                checkpoint=checkpoint,
                progress=tick,
                batch=batch,
                journal=journal,
                checkpoint_every_s=CHECKPOINT_EVERY_S,
            )
            run_import_hooks(s, config, project, summary, storage)
        except JobLost:
            s.rollback()
            _clean_after_failure(factory, storage, job_id)
            raise
        except Exception as exc:
            s.rollback()
            log.exception("import job %s failed", job_id)
            _record_failure(factory, storage, job_id, me, _failure_message(exc))
            return
        finished = s.execute(
            update(ImportJob)
            .where(
                ImportJob.id == job_id,
                ImportJob.status == ImportJobStatus.running,
                ImportJob.pid == me[0],
                ImportJob.host == me[1],
            )
            .values(
                status=ImportJobStatus.succeeded,
                finished_at=utcnow(),
                heartbeat_at=utcnow(),
                done=max(counted["done"], job.total),
                summary={**summary.as_dict(), "line": summary.line()},
            )
        ).rowcount
        s.commit()  # the hooks' follow-up jobs (tiles, prescreen) are sent after this commit
    _delete_uploads(storage, job.uploads)
    if not finished:
        log.warning("import job %s was recorded failed while it finished", job_id)


def _failure_message(exc: Exception) -> str:
    if isinstance(exc, ImportInterrupted):
        return exc.message
    if isinstance(exc, LabelerError):
        return f"The import stopped: {exc.message}. Nothing was imported."
    if isinstance(exc, OSError):
        return (
            "The import stopped because the server could not read the upload or store the images. "
            "Nothing was imported; upload the files again."
        )
    return "The import stopped because of an error on our side. Nothing was imported."


def _record_failure(factory, storage: Storage, job_id: int, me, message: str) -> None:
    with factory() as s:
        s.execute(
            update(ImportJob)
            .where(
                ImportJob.id == job_id,
                ImportJob.status == ImportJobStatus.running,
                ImportJob.pid == me[0],
                ImportJob.host == me[1],
            )
            .values(status=ImportJobStatus.failed, error=message, finished_at=utcnow())
        )
        s.commit()
    _clean_after_failure(factory, storage, job_id)


def _clean_after_failure(factory, storage: Storage, job_id: int) -> None:
    with factory() as s:
        job = s.get(ImportJob, job_id)
        _remove_orphans(s, storage, job)
        s.commit()
    _delete_uploads(storage, job.uploads or [])


def _remove_orphans(session: Session, storage: Storage, job: ImportJob) -> int:
    """Delete what the job wrote without a committed row (its journal says which files)."""
    if isinstance(storage, LocalStorage):
        return recover_interrupted_imports(session, storage)
    return replay_store_journal(session, storage, _journal_prefix(job))


# -- reading a job, and recording dead ones -------------------------------------------------------


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def dead_job_error(job: ImportJob, config: Mapping[str, Any]) -> str | None:
    """Why a running job will never finish (its worker stopped beating, or its local process is
    gone), else None. Reads only: pages and the API show such a job as failed at once."""
    if job.status is not ImportJobStatus.running:
        return None
    timeout = float(config.get("ML_HEARTBEAT_TIMEOUT_S") or 60)
    silent = (utcnow() - _aware(job.heartbeat_at or job.started_at or utcnow())).total_seconds()
    local_dead = job.host == socket.gethostname() and job.pid and not process_alive(job.pid)
    if silent <= timeout and not local_dead:
        return None
    return (
        f"The import stopped: its worker stopped reporting ({int(silent)} s without a sign of "
        f"life; it was on {job.host or 'an unknown host'}), probably because it was stopped or its "
        "machine failed."
    )


def _saved_so_far(session: Session, job: ImportJob) -> str:
    if job.batch_id is None:
        return "Nothing was imported."
    count, last = session.execute(
        select(func.count(Image.id), func.max(Image.id)).where(
            Image.import_batch_id == job.batch_id
        )
    ).one()
    if not count:
        return "Nothing was imported."
    name = session.scalar(select(Image.filename).where(Image.id == last))
    saved = "1 image was" if count == 1 else f"{count} images were"
    return (
        f"{saved} saved, up to and including '{name}'. Upload the files again: the saved images "
        "will be skipped as already in the project."
    )


def reap_dead_jobs(
    session: Session,
    storage: Storage,
    config: Mapping[str, Any],
    *,
    jobs: list[ImportJob] | None = None,
    project_id: int | None = None,
) -> int:
    """Record running jobs whose worker is gone as failed (with what was saved), and delete their
    orphan files and stored upload. Flushes; the caller commits. Returns the number recorded."""
    if jobs is None:
        stmt = select(ImportJob).where(ImportJob.status == ImportJobStatus.running)
        if project_id is not None:
            stmt = stmt.where(ImportJob.project_id == project_id)
        jobs = list(session.scalars(stmt))
    reaped = 0
    for job in jobs:
        why = dead_job_error(job, config)
        if not why:
            continue
        job.status, job.finished_at = ImportJobStatus.failed, utcnow()
        job.error = f"{why} {_saved_so_far(session, job)}"
        session.flush()
        _remove_orphans(session, storage, job)
        _delete_uploads(storage, job.uploads or [])
        reaped += 1
    return reaped


_NUDGED: dict[int, float] = {}  # job id -> when this process last asked a worker to record it
NUDGE_EVERY_S = 10.0


def nudge_dead_job(config: Mapping[str, Any], job: ImportJob) -> bool:
    """Ask a worker to record a dead job (the job's task again: finding it dead, the worker records
    it failed and removes its orphan files), at most every NUDGE_EVERY_S per job and process. So a
    job whose whole worker was killed is cleaned up while its lead watches it, not hours later when
    the broker hands its message out again. Writes nothing here."""
    now = time.monotonic()
    if now - _NUDGED.get(job.id, -NUDGE_EVERY_S) < NUDGE_EVERY_S:
        return False
    _NUDGED[job.id] = now
    try:
        if broker_url(config):
            send_import(config, job.id)
        elif local_mode(config) == "process":
            log_path = Path(config.get("INSTANCE_PATH") or ".") / "jobs" / f"import-{job.id}.log"
            spawn("labeler.jobs.local", ["import", str(job.id)], config, log_path)
        else:
            return False
    except Exception:  # the next reader, upload or `labeler images recover` tries again
        log.exception("import job %s: no worker asked to record it", job.id)
        return False
    return True


def job_json(job: ImportJob, config: Mapping[str, Any]) -> dict[str, Any]:
    """What the page and the API show of a job. A dead worker's job reads failed at once, and a
    worker is asked to record it (nudge_dead_job); this reads only."""
    dead = dead_job_error(job, config)
    if dead:
        nudge_dead_job(config, job)
    status = ImportJobStatus.failed if dead else job.status
    return {
        "id": job.id,
        "project_id": job.project_id,
        "status": status.value,
        "files": [{"name": u["name"], "bytes": u["size"]} for u in job.uploads or []],
        "bytes": job.total_bytes,
        "done": job.done,
        "total": job.total,
        "summary": job.summary,
        "error": dead or job.error,
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }
