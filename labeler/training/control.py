"""Cancel a training run, or run a failed or cancelled one again (pages, API and CLI call these)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import events
from ..audit.services import record_event
from ..auth.models import User
from ..db import utcnow
from ..errors import Conflict
from .models import RunStatus, TrainingRun
from .processes import mark_dead_runs
from .worker import start_worker

IN_FLIGHT = (RunStatus.queued, RunStatus.running)


def cancel_run(session: Session, actor: User | None, run: TrainingRun) -> TrainingRun:
    """Stop a queued or running run. Its worker notices at its next progress step (or heartbeat),
    stops training and leaves the row as cancelled; a queued run is never started."""
    mark_dead_runs(session, [run])
    if run.status not in IN_FLIGHT:
        raise Conflict(
            f"training run {run.id} is {run.status.value}: only a queued or running run can be "
            "cancelled",
            code="run_not_in_progress",
        )
    run.status, run.finished_at = RunStatus.cancelled, utcnow()
    events.training_run_finished(session, run)
    run.error = f"cancelled by {actor.name if actor else 'an administrator'}"
    record_event(
        session, actor, "training.cancel", "training_run", run.id, project_id=run.project_id
    )
    session.flush()
    return run


def retry_run(
    session: Session,
    config: Mapping[str, Any],
    actor: User | None,
    run: TrainingRun,
    *,
    checkpoint: Callable[[], None],
) -> TrainingRun:
    """Queue a failed or cancelled run again, as the same run (same id, settings and task id): a
    message delivered twice still trains once, and the feature cache keeps what was already computed."""
    mark_dead_runs(session, [run])
    if run.status not in (RunStatus.failed, RunStatus.cancelled):
        raise Conflict(
            f"training run {run.id} is {run.status.value}: only a failed or cancelled run can be "
            "run again",
            code="run_not_failed",
        )
    busy = session.scalar(
        select(TrainingRun.id).where(
            TrainingRun.project_id == run.project_id,
            TrainingRun.id != run.id,
            TrainingRun.status.in_(IN_FLIGHT),
        )
    )
    if busy is not None:
        mark_dead_runs(session, [session.get(TrainingRun, busy)])
        if session.get(TrainingRun, busy).status in IN_FLIGHT:
            raise Conflict(
                f"training run {busy} of this project is still in progress",
                code="run_in_progress",
                run_id=busy,
            )
    previous = run.error
    run.status, run.error, run.model_id, run.metrics = RunStatus.queued, None, None, None
    run.started_at = run.finished_at = run.heartbeat_at = None
    run.pid, run.host, run.stage, run.done, run.total = None, None, None, 0, 0
    record_event(
        session,
        actor,
        "training.retry",
        "training_run",
        run.id,
        project_id=run.project_id,
        previous_error=previous,
    )
    session.flush()
    checkpoint()
    start_worker(session, config, run)
    return run
