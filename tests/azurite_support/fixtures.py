"""Azurite started on a free loopback port for the session, the way tests/oidc_provider is.

Installed from tests/azurite_support/package.json by the Makefile's npm-test target. Flags:
--disableTelemetry (otherwise Azurite 3.35 reports to Application Insights on the internet),
--skipApiVersionCheck (azure-storage-blob 12.31 speaks a newer API version than Azurite 3.35
knows), --location in a temp folder. Stopped with SIGTERM by its pid at the end of the session.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
AZURITE_BIN = HERE / "node_modules" / ".bin" / "azurite-blob"
# Azurite's public, well-known development account (its README); nothing secret
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_tcp(port: int, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"azurite exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"azurite did not listen on {port} within {timeout} s")


class Azurite:
    def __init__(self, port: int) -> None:
        self.port = port
        self.connection_string = (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
        )

    def config(self, container: str | None = None) -> dict:
        """App settings for a fresh container of this Azurite (retries kept short for tests)."""
        container = container or f"t{uuid.uuid4().hex[:20]}"
        return {
            "STORAGE_URL": f"azure://{container}",
            "AZURE_STORAGE_CONNECTION_STRING": self.connection_string,
            "AZURE_STORAGE_RETRIES": 1,
        }


def start_azurite(work: Path, *extra: str) -> tuple[subprocess.Popen, int]:
    """Start Azurite's blob service in ``work`` on a free loopback port; (process, port)."""
    if not AZURITE_BIN.exists():
        pytest.fail(
            "Azurite is not installed: run `make npm-test` (npm ci --prefix tests/azurite_support)"
        )
    port = _free_port()
    log = work / "azurite.log"
    (work / "data").mkdir(parents=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(AZURITE_BIN),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(port),
                "--location",
                str(work / "data"),
                "--silent",
                "--skipApiVersionCheck",
                "--disableTelemetry",
                *extra,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        _wait_tcp(port, proc, log)
    except BaseException:
        stop_azurite(proc)
        raise
    return proc, port


def stop_azurite(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory):
    proc, port = start_azurite(tmp_path_factory.mktemp("azurite"))
    try:
        yield Azurite(port)
    finally:
        stop_azurite(proc)
