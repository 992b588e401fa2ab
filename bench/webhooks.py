"""Benchmark: what webhooks cost a label submit, and how soon a committed event reaches its receiver.

    .venv/bin/python bench/webhooks.py --events 200 [--celery]

On a SQLite database of its own (committed rows, WAL), with a project of N images allocated to one
rater and an HTTP receiver thread on loopback (answering 200):

  (a) label submit through the bearer API (Flask test client, in process), alternating between a
      project whose webhook listens to label.submitted and one whose webhook does not: median time
      per submit of each, and their difference (the event, its delivery and the progress count),
      with sending off so that only the submit's own work is timed;
  (b) commit to receipt: events committed one at a time, each waiting for its delivery; median and
      p95 of the time from the commit's return to the receiver reading the request, with the local
      dispatcher thread (no broker), and with --celery, through a redis-server and a Celery worker
      (solo pool) started here and stopped at the end.

Figures, not asserts: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from labeler import create_app
from labeler.allocation.models import QueueItem
from labeler.allocation.services import allocate
from labeler.auth.models import Role
from labeler.auth.services import add_user, create_token
from labeler.events import emit
from labeler.images.models import Image
from labeler.migrate import upgrade
from labeler.projects.services import create_project
from labeler.webhooks.delivery import deliver_due
from labeler.webhooks.services import create_endpoint


class Receiver:
    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.got = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver.got:
                    receiver.arrivals[self.headers["webhook-id"]] = time.perf_counter()
                    receiver.got.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait(self, msg_id: str, timeout: float = 30) -> float:
        with self.got:
            self.got.wait_for(lambda: msg_id in self.arrivals, timeout)
        return self.arrivals[msg_id]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build(folder: Path, extra: dict):
    url = f"sqlite:///{folder / 'bench.db'}"
    if not (folder / "bench.db").exists():
        upgrade(url)
    config = {
        "LABELER_ENV": "test",
        "SECRET_KEY": "bench-" + uuid.uuid4().hex,
        "DATABASE_URL": url,
        "INSTANCE_PATH": str(folder / "instance"),
        "STORAGE_PATH": str(folder / "files"),
        "AUTH_MODE": "dev",
        "WEBHOOK_ALLOWED_NETWORKS": ("127.0.0.0/8",),
        **extra,
    }
    return create_app(config)


def setup(app, receiver: Receiver, n: int):
    """Two projects of n images for one rater: one listening to label.submitted, one not."""
    factory = app.extensions["labeler_db"].session_factory
    with factory() as s:
        lead = add_user(s, None, f"lead-{uuid.uuid4().hex[:6]}@bench.test", "Lead", {Role.lead})
        rater = add_user(s, None, f"rater-{uuid.uuid4().hex[:6]}@bench.test", "R", {Role.rater})
        s.flush()
        projects = []
        for events in (["label.submitted"], ["training_run.finished"]):
            project = create_project(s, lead, f"bench-{uuid.uuid4().hex[:6]}", "quality")
            s.flush()
            for _ in range(n):
                digest = uuid.uuid4().hex * 2
                s.add(
                    Image(
                        project_id=project.id,
                        sha256=digest,
                        filename=f"{digest[:8]}.jpg",
                        width=8,
                        height=8,
                        format="JPEG",
                        byte_size=1,
                        display_key=f"d/{digest}.jpg",
                        thumb_key=f"t/{digest}.jpg",
                        original_key=f"o/{digest}.jpg",
                    )
                )
            s.flush()
            create_endpoint(s, lead, project, receiver.url, events, config=app.config)
            allocate(s, lead, project, [rater], golden_size=0, overlap=1, seed=1)
            projects.append(project.id)
        _token, raw = create_token(s, rater, rater, "bench")
        s.commit()
        items = {
            pid: [
                i.public_id
                for i in s.query(QueueItem).filter_by(project_id=pid).order_by(QueueItem.position)
            ]
            for pid in projects
        }
    return projects, items, raw


def submit_costs(app, projects, items, token, n: int) -> None:
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    times: dict[int, list[float]] = {pid: [] for pid in projects}
    for k in range(n):
        order = projects if k % 2 == 0 else projects[::-1]
        for pid in order:
            body = {"decision": "no_skin", "base_version": 0, "submission_id": uuid.uuid4().hex}
            start = time.perf_counter()
            resp = client.put(f"/api/v1/items/{items[pid][k]}/label", json=body, headers=headers)
            times[pid].append(time.perf_counter() - start)
            assert resp.status_code == 200, resp.get_data(as_text=True)
    listening, silent = (statistics.median(times[p]) * 1000 for p in projects)
    print(
        f"(a) label submit, median of {n}: listening {listening:.2f} ms, not listening "
        f"{silent:.2f} ms, difference {listening - silent:+.2f} ms"
    )


def commit_to_receipt(app, receiver: Receiver, project_id: int, n: int, label: str) -> None:
    # a write request's session (BEGIN IMMEDIATE on SQLite), as the services' callers use
    factory = app.extensions["labeler_db"].write_session_factory
    delays = []
    for _ in range(n):
        with factory() as s:
            event = emit(s, "label.submitted", project_id, {"version": 1})
            msg_id = event.msg_id
            s.commit()
            committed = time.perf_counter()
        delays.append((receiver.wait(msg_id) - committed) * 1000)
    delays.sort()
    p95 = delays[min(len(delays) - 1, int(0.95 * len(delays)))]
    print(
        f"(b) commit to receipt, {label}, {n} events: median {statistics.median(delays):.1f} ms, "
        f"p95 {p95:.1f} ms"
    )


def start_celery(folder: Path, app):
    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        raise SystemExit("--celery needs Debian's redis-server (make redis)")
    port = free_port()
    redis = subprocess.Popen(
        [
            redis_bin,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.3)
    url = f"redis://127.0.0.1:{port}/0"
    env = {
        **os.environ,
        "LABELER_CELERY_BROKER_URL": url,
        "LABELER_DATABASE_URL": app.config["DATABASE_URL"],
        "LABELER_INSTANCE_PATH": app.config["INSTANCE_PATH"],
        "LABELER_STORAGE_PATH": app.config["STORAGE_PATH"],
        "LABELER_ENV": "test",
        "LABELER_AUTH": "dev",
        "LABELER_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
    }
    log = folder / "worker.log"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "labeler.jobs.worker",
            "worker",
            "--pool=solo",
            "-Q",
            "labeler",
            "-n",
            "bench@local",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=WARNING",
            f"--logfile={log}",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(3)
    return url, redis, worker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--celery", action="store_true")
    args = parser.parse_args()
    receiver = Receiver()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # (a) without sending (LABELER_WEBHOOK_DELIVERY=off): the submit's own cost, not the
        # dispatcher thread's competition for this process and the database; then sent, untimed
        quiet = build(folder, {"WEBHOOK_DELIVERY": "off"})
        projects, items, token = setup(quiet, receiver, args.events)
        submit_costs(quiet, projects, items, token, args.events)
        deliver_due(quiet.extensions["labeler_db"].session_factory, quiet.config, limit=10**6)
        app = build(folder, {})
        commit_to_receipt(app, receiver, projects[0], args.events, "local thread")
        if args.celery:
            url, redis, worker = start_celery(folder, app)
            try:
                celery_app = build(folder, {"CELERY_BROKER_URL": url})
                commit_to_receipt(celery_app, receiver, projects[0], args.events, "Celery + Redis")
            finally:
                worker.send_signal(signal.SIGQUIT)
                worker.wait(15)
                redis.terminate()
                redis.wait(10)
    receiver.server.shutdown()


if __name__ == "__main__":
    main()
