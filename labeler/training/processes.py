"""Worker processes of this host: the children this process started, and runs whose worker died."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from sqlalchemy.orm import Session

from ..db import utcnow
from .models import RunStatus, TrainingRun

CHILDREN: list[subprocess.Popen] = []  # workers this process started (spawn_worker)


def reap_children() -> None:
    """Collect workers this process started that have exited (no zombies in a long-lived server)."""
    CHILDREN[:] = [p for p in CHILDREN if p.poll() is None]


def process_alive(pid: int) -> bool:
    """True while a process with this pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in {"Z", "X"}


def mark_dead_runs(session: Session, runs: list[TrainingRun]) -> None:
    """Runs in flight whose worker (on this host) is gone are failed: say so instead of spinning forever."""
    reap_children()
    here = socket.gethostname()
    for run in runs:
        if (
            run.status not in (RunStatus.queued, RunStatus.running)
            or not run.pid
            or run.host != here
        ):
            continue
        if not process_alive(run.pid):
            run.status = RunStatus.failed
            run.finished_at = utcnow()
            run.error = (
                f"the worker process (pid {run.pid}) ended without finishing the run; "
                "see the worker log and start a new run"
            )
    session.flush()
