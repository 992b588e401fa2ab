"""Worker processes of this host: the children this process started, and runs whose worker died."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

from flask import current_app, has_app_context
from sqlalchemy.orm import Session

from .. import events
from ..db import utcnow
from ..jobs.spawn import process_alive, reap_children
from .models import RunStatus, TrainingRun

HEARTBEAT_TIMEOUT_S = (
    60  # default of ML_HEARTBEAT_TIMEOUT_S; the worker beats every ML_HEARTBEAT_S (10)
)


def heartbeat_timeout_s() -> float:
    """How long a running run may go without a heartbeat before it reads failed (ML_HEARTBEAT_TIMEOUT_S)."""
    if has_app_context():
        return float(current_app.config.get("ML_HEARTBEAT_TIMEOUT_S") or HEARTBEAT_TIMEOUT_S)
    return HEARTBEAT_TIMEOUT_S


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def dead_worker_error(run: TrainingRun) -> str | None:
    """Why a run in flight will never finish, else None: its worker on this host is gone, or its worker
    (on any host, e.g. a Celery worker) stopped beating. Reads only: pages and the API show such a run
    as failed at once; mark_dead_runs records it."""
    if run.status is RunStatus.running and run.heartbeat_at is not None:
        silent = (utcnow() - _aware(run.heartbeat_at)).total_seconds()
        if silent > heartbeat_timeout_s():
            return (
                f"the worker stopped reporting ({int(silent)} s without a heartbeat; it was on "
                f"{run.host or 'an unknown host'}): it was probably stopped or its machine failed. "
                "Run it again"
            )
    if (
        run.status not in (RunStatus.queued, RunStatus.running)
        or not run.pid
        or run.host != socket.gethostname()
        or process_alive(run.pid)
    ):
        return None
    return (
        f"the worker process (pid {run.pid}) ended without finishing the run; "
        "see the worker log and start a new run"
    )


def mark_dead_runs(session: Session, runs: list[TrainingRun]) -> None:
    """Record runs whose worker died as failed (starting a run does this; so does `labeler ml reap`)."""
    reap_children()
    for run in runs:
        error = dead_worker_error(run)
        if error:
            run.status, run.finished_at, run.error = RunStatus.failed, utcnow(), error
            events.training_run_finished(session, run)
    session.flush()
