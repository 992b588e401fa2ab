"""Local worker processes (no broker): start a detached ``python -m <module> ARGS`` with the settings
of the app that asks for it, so the child opens the same database and store."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import ROOT

# settings a local worker must share with the process that started it (tests build apps from overrides)
ENV_KEYS = {
    "DATABASE_URL": "DATABASE_URL",
    "INSTANCE_PATH": "INSTANCE_PATH",
    "STORAGE_PATH": "STORAGE_PATH",
    "ML_DIR": "ML_DIR",
    "STORAGE_URL": "STORAGE_URL",
    "AZURE_STORAGE_CONNECTION_STRING": "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_ACCOUNT_URL": "AZURE_STORAGE_ACCOUNT_URL",
    "LABELER_ENV": "ENV",
    "AUTH_MODE": "AUTH",
    "ML_HEARTBEAT_S": "ML_HEARTBEAT_S",
    "ML_HEARTBEAT_TIMEOUT_S": "ML_HEARTBEAT_TIMEOUT_S",
    "TILES_AT_IMPORT": "TILES_AT_IMPORT",
}

CHILDREN: list[subprocess.Popen] = []  # local workers this process started


def reap_children() -> None:
    """Collect local workers this process started that have exited (no zombies in a server)."""
    CHILDREN[:] = [p for p in CHILDREN if p.poll() is None]


def worker_env(config: Mapping[str, Any]) -> dict[str, str]:
    """This process's environment with the app's own settings as LABELER_* variables."""
    env = dict(os.environ)
    for key, name in ENV_KEYS.items():
        if config.get(key) is not None:
            env[f"LABELER_{name}"] = str(config[key])
    return env


def spawn(module: str, args: Sequence[str], config: Mapping[str, Any], log_path: Path) -> int:
    """Start ``python -m module args`` detached (its own session), output appended to ``log_path``;
    returns its pid."""
    reap_children()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *map(str, args)],
            cwd=ROOT,
            env=worker_env(config),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    CHILDREN.append(proc)
    return proc.pid


def process_alive(pid: int) -> bool:
    """True while a process with this pid exists on this host and is not a zombie."""
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
