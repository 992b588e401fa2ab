"""The training worker: ``python -m labeler.training.worker RUN_ID`` runs one queued training run.

The pages, the API and ``labeler ml train`` queue a run and either send it to Celery (when
LABELER_CELERY_BROKER_URL is set; labeler/jobs) or start this module as a detached process
(``spawn_worker``); ``labeler ml train --wait`` calls ``execute_run`` in the foreground. Every path
runs ``execute_run``, which beats a heartbeat into the run's row (a run whose worker died reads
failed) and stops at the next progress step once the run is cancelled.
The worker claims the run (queued -> running, only once), writes the training manifest with the
export service, trains (torch is imported here, never in the web process), evaluates the model
on the golden set next to the raters' own figures and records the result. Progress goes to the
run's row in short transactions of their own, so pages polling it see it move.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from .. import create_app, events, ml
from ..auth.models import User
from ..db import database, utcnow
from ..errors import LabelerError
from ..jobs.queue import broker_url, send_training
from ..jobs.spawn import spawn
from ..projects.models import Project
from ..projects.settings import read_settings
from ..reports.export import training_manifest
from .active import refresh_after_run
from .model_store import for_manifest, is_shared, publish_model, publish_run_log
from .models import RunStatus, TrainingRun
from .services import cache_dir, models_dir, rater_figures, run_dir, start_run

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 0.5


def spawn_worker(config: Mapping[str, Any], run_id: int) -> int:
    """Start the worker for a run as a detached process (labeler.jobs.spawn); returns its pid.
    Output goes to the run's log."""
    return spawn(
        "labeler.training.worker", [run_id], config, run_dir(config, run_id) / "worker.log"
    )


def start_worker(session: Session, config: Mapping[str, Any], run: TrainingRun) -> None:
    """After the run is committed: send it to the Celery queue when a broker is configured, else
    start a local worker process for it (if the app does that) and record the pid."""
    if broker_url(config):
        try:
            send_training(config, run.id)
        except Exception:  # broker down or celery missing: the lead reads it on the run
            log.exception("training run %s could not be queued", run.id)
            run.status, run.finished_at = RunStatus.failed, utcnow()
            run.error = (
                "The training workers could not be reached (the job queue did not answer), so the "
                "run did not start. An administrator can check the queue and its workers; then "
                "run it again."
            )
            session.flush()
        return
    if not config.get("ML_SPAWN_WORKER", True):
        return
    try:
        pid = spawn_worker(config, run.id)
    except OSError as exc:
        run.status, run.finished_at = RunStatus.failed, utcnow()
        run.error = f"could not start the training worker: {exc}"
    else:
        if run.status is RunStatus.queued:  # the worker may already have claimed it
            run.pid, run.host = pid, socket.gethostname()
    session.flush()


NOT_ENABLED = (
    "Model training is not enabled on this server. An administrator can enable it: the "
    'installation notes (README, "Model training") say how.'
)


def training_unavailable() -> str | None:
    """What to tell a lead when this server cannot train models (None: it can)."""
    missing = ml.missing_package()
    if missing is None:
        return None
    log.info("model training is off: the ML package %r is not installed", missing)
    return NOT_ENABLED


def launch_run(
    session: Session,
    config: Mapping[str, Any],
    actor: User | None,
    project: Project,
    *,
    kind: Any = None,
    seed: Any = None,
    epochs: Any = None,
    fine_tune_blocks: Any = None,
    checkpoint: Callable[[], None],
) -> TrainingRun:
    """Queue a training run and start its worker: the one starter for the page, the API and the CLI.

    `checkpoint` is the caller's commit: the worker is another process and reads the run from the
    database, so the queued run is committed before the worker starts. The pid is flushed after.
    """
    unavailable = training_unavailable()
    if unavailable:
        raise ml.MLUnavailable(unavailable)
    run = start_run(
        session,
        actor,
        project,
        kind=kind,
        seed=seed,
        epochs=epochs,
        fine_tune_blocks=fine_tune_blocks,
    )
    checkpoint()
    start_worker(session, config, run)
    return run


class RunCancelled(Exception):
    """The run's row left `running` (a lead cancelled it, or it was marked failed) while it trained."""


class _Heartbeat(threading.Thread):
    """Stamps the run's heartbeat_at every `every` seconds while it runs; notices a cancel."""

    def __init__(self, factory: sessionmaker, run_id: int, every: float) -> None:
        super().__init__(name=f"heartbeat-run-{run_id}", daemon=True)
        self.factory, self.run_id, self.every = factory, run_id, every
        self.stopped, self.cancelled = threading.Event(), threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            try:
                if not _update(self.factory, self.run_id, heartbeat_at=utcnow()):
                    self.cancelled.set()
                    return
            except Exception:  # a database hiccup: the next beat tries again
                log.exception("training run %s: heartbeat not written", self.run_id)


class _Progress:
    """progress(stage, done, total) -> the run's row, at most every PROGRESS_EVERY_S (and on a new stage)."""

    def __init__(
        self,
        factory: sessionmaker,
        run_id: int,
        echo: Callable[[str, int, int], None] | None,
        heartbeat: _Heartbeat | None = None,
    ) -> None:
        self.factory, self.run_id, self.echo, self.heartbeat = factory, run_id, echo, heartbeat
        self.last, self.stage = 0.0, None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.heartbeat is not None and self.heartbeat.cancelled.is_set():
            raise RunCancelled()
        if self.echo:
            self.echo(stage, done, total)
        now = time.monotonic()
        if stage == self.stage and now - self.last < PROGRESS_EVERY_S and done < total:
            return
        self.last, self.stage = now, stage
        if not _update(self.factory, self.run_id, stage=stage, done=done, total=total):
            raise RunCancelled()


def _update(factory: sessionmaker, run_id: int, **values: Any) -> int:
    """Write to the run's row while this process runs it; 0 when it no longer does (cancelled, marked
    failed, or cancelled and claimed again by another worker)."""
    with factory() as s:
        count = s.execute(
            update(TrainingRun)
            .where(
                TrainingRun.id == run_id,
                TrainingRun.status == RunStatus.running,
                TrainingRun.pid == os.getpid(),
                TrainingRun.host == socket.gethostname(),
            )
            .values(**values)
        ).rowcount
        if count and "finished_at" in values:  # the run ended: its event commits with the outcome
            events.training_run_finished(s, s.get(TrainingRun, run_id))
        s.commit()
    return count


def execute_run(
    factory: sessionmaker,
    config: Mapping[str, Any],
    storage: Any,
    run_id: int,
    *,
    echo: Callable[[str, int, int], None] | None = None,
) -> TrainingRun:
    """Claim a queued run, train, evaluate, and record success or a clear failure; returns the final row."""
    with factory() as s:
        claimed = s.execute(
            update(TrainingRun)
            .where(TrainingRun.id == run_id, TrainingRun.status == RunStatus.queued)
            .values(
                status=RunStatus.running,
                started_at=utcnow(),
                pid=os.getpid(),
                host=socket.gethostname(),
                heartbeat_at=utcnow(),
                stage="manifest",
                done=0,
                total=0,
            )
        ).rowcount
        s.commit()
    if not claimed:
        with factory() as s:
            run = s.get(TrainingRun, run_id)
        if run is None:
            raise LabelerError(f"no training run with id {run_id}", status=404, code="not_found")
        raise LabelerError(
            f"training run {run_id} is {run.status.value}, not queued", status=409, code="conflict"
        )
    heartbeat = _Heartbeat(factory, run_id, float(config.get("ML_HEARTBEAT_S") or 10))
    heartbeat.start()
    try:
        values = _train(factory, config, storage, run_id, echo, heartbeat)
        values.update(status=RunStatus.succeeded)
    except RunCancelled:
        log.info("training run %s stopped: it is no longer running (cancelled)", run_id)
        values = {}
    except (
        ml.MLUnavailable
    ) as exc:  # a package is missing or broken: the lead reads the plain words
        log.error("training run %s failed: %s", run_id, exc.message)
        values = {"status": RunStatus.failed, "error": NOT_ENABLED}
    except LabelerError as exc:
        log.warning("training run %s failed: %s", run_id, exc.message)
        values = {"status": RunStatus.failed, "error": exc.message}
    except Exception as exc:  # the row must say the run failed, whatever went wrong
        log.exception("training run %s failed", run_id)
        values = {
            "status": RunStatus.failed,
            "error": f"unexpected error: {type(exc).__name__}: {exc}",
        }
    finally:
        heartbeat.stopped.set()
    if values and not _update(factory, run_id, finished_at=utcnow(), **values):
        log.info("training run %s was cancelled or marked failed meanwhile: kept as it is", run_id)
    try:
        publish_run_log(storage, config, run_id)
    except Exception:  # the log is a convenience: its upload never turns a run's outcome around
        log.exception("training run %s: the worker log was not copied to the store", run_id)
    with factory() as s:
        return s.get(TrainingRun, run_id)


def _train(
    factory: sessionmaker,
    config: Mapping[str, Any],
    storage: Any,
    run_id: int,
    echo: Callable[[str, int, int], None] | None,
    heartbeat: _Heartbeat | None = None,
) -> dict[str, Any]:
    folder = run_dir(config, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "manifest.jsonl"
    with factory() as s:
        run = s.get(TrainingRun, run_id)
        project = s.get(Project, run.project_id)
        kind, seed, epochs = run.kind.value, run.seed, run.epochs
        fine_tune = _fine_tune_options(config, kind, run.fine_tune_blocks)
        project_id = project.id
        with manifest.open("w", encoding="utf-8") as fh:
            for chunk in training_manifest(s, project, for_manifest(storage)):
                fh.write(chunk)
        raters = rater_figures(s, project)
        min_images = read_settings(project.settings).min_eval_images
        s.commit()
    progress = _Progress(factory, run_id, echo, heartbeat)
    train = ml.train_quality if kind == "quality" else ml.train_severity
    info = train(
        manifest,
        models_dir(config),
        cache_dir(config),
        seed=seed,
        epochs=epochs,
        progress=progress,
        **fine_tune,
    )
    if not _update(factory, run_id, model_id=info.id, stage="evaluate", done=0, total=1):
        raise RunCancelled()
    progress("evaluate", 0, 1)
    metrics: dict[str, Any] = {
        "size_bytes": info.size_bytes,
        "validation": info.metrics.get("validation"),
        "evaluation": None,
        "evaluation_note": None,
    }
    try:
        metrics["evaluation"] = ml.evaluate(info.path, manifest, raters, min_images=min_images)
    except ml.NotEnoughData as exc:
        metrics["evaluation_note"] = (
            f"not evaluated: {exc.message} (label the golden set to get the verdict)"
        )
    withheld = (metrics["evaluation"] or {}).get("verdict_withheld")
    if withheld:
        metrics["evaluation_note"] = (
            f"no verdict, {withheld} (label more golden images, or change the minimum in the "
            "project's settings)"
        )
    elif metrics["evaluation"] is not None and raters is None:
        metrics["evaluation_note"] = (
            "no verdict: the raters' own golden-set figures need two raters per image"
        )
    if is_shared(storage):  # any app server or worker finds the model (and its evaluation) there
        publish_model(storage, Path(info.path))
    # active learning: fold items in the new model's uncertainty order (when the project asks)
    metrics["active_learning"] = refresh_after_run(factory, config, project_id, info.id, storage)
    progress("evaluate", 1, 1)
    return {"metrics": metrics}


def _fine_tune_options(config: Mapping[str, Any], kind: str, blocks: int) -> dict[str, Any]:
    """The run's fine_tune_blocks (start_run checked it): fine-tune the backbone's last N blocks
    (ml/finetune.py). N > 0 is never ignored: without a GPU (and without ML_FINE_TUNE_ON_CPU, which
    `labeler ml train --fine-tune-on-cpu --wait` and the tests set) the trainer refuses it in words,
    and the run fails saying so."""
    blocks = int(blocks or 0)
    if not blocks:
        return {}
    if kind != "quality":
        raise ml.MLError(
            "Fine-tuning backbone blocks is built for the quality model only; train the "
            f"{kind} model with 0 fine-tuned blocks."
        )
    return {"fine_tune_blocks": blocks, "fine_tune_on_cpu": bool(config.get("ML_FINE_TUNE_ON_CPU"))}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the worker process."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m labeler.training.worker RUN_ID", file=sys.stderr)
        return 2
    app = create_app()
    with app.app_context():
        try:
            run = execute_run(
                database(app).session_factory,
                app.config,
                app.extensions["labeler_storage"],
                int(args[0]),
            )
        except LabelerError as exc:
            log.error("%s", exc.message)
            return 1
    log.info(
        "training run %s %s%s", run.id, run.status.value, f": {run.error}" if run.error else ""
    )
    return 0 if run.status is RunStatus.succeeded else 1


if __name__ == "__main__":
    sys.exit(main())
