"""A redis-server and Celery workers of the test's own (imported by the Celery tests; not a conftest).

Each test run starts Debian's redis-server on a free loopback port (no saving, no shared server: make
installs it when missing) and ends only the processes it started, by pid.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labeler import ROOT
from labeler.jobs.spawn import worker_env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_tcp(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing accepts on 127.0.0.1:{port}")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("the Celery tests need Debian's redis-server: run make redis")
    folder = tmp_path_factory.mktemp("redis")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        + ["--daemonize", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_tcp(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class Worker:
    """One `celery -A labeler.jobs.worker worker` process (solo pool), its log, and its stop."""

    def __init__(self, config, name: str, folder: Path) -> None:
        env = worker_env(config)
        env["LABELER_CELERY_BROKER_URL"] = config["CELERY_BROKER_URL"]
        self.log = folder / f"worker-{name}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "labeler.jobs.worker", "worker"]
            + ["--pool=solo", "--concurrency=1", "-Q", "labeler", "-n", f"{name}@test"]
            + ["--without-gossip", "--without-mingle", "--without-heartbeat"]
            + ["--loglevel=INFO", f"--logfile={self.log}"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.log.exists() and f"{name}@test ready." in self.log.read_text():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the Celery worker did not start: {self.text()[-3000:]}")

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole worker, as a machine failure would."""
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # a cold shutdown: does not wait for a task
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture()
def celery_workers(tmp_path):
    """start(config, name) -> a Worker; every worker started is stopped after the test."""
    started: list[Worker] = []

    def start(config, name: str = "w1") -> Worker:
        worker = Worker(config, name, tmp_path)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
