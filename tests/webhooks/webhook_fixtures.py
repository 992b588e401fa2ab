"""Webhook test fixtures (imported by the test modules; a conftest.py here would shadow the root one):
a real HTTP receiver on loopback that answers a scripted list of statuses, and a project set up for
webhooks with loopback explicitly allowed."""

from __future__ import annotations

import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Receiver:
    """An HTTP server thread on 127.0.0.1: answers POSTs with `statuses` in turn (then 200)."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.requests: list[dict] = []
        self.redirect_to: str | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.requests.append(
                    {
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body,
                    }
                )
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                if 300 <= status < 400 and receiver.redirect_to:
                    self.send_header("Location", receiver.redirect_to)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture()
def loopback_allowed(app):
    """Loopback allowed explicitly (it is refused by default), quick retries."""
    app.config.update(
        WEBHOOK_ALLOWED_NETWORKS=("127.0.0.0/8", "::1/128"),
        WEBHOOK_RETRY_BASE_S=0.01,
        WEBHOOK_TIMEOUT_S=5,
        WEBHOOK_MAX_ATTEMPTS=4,
    )
    return app


@pytest.fixture()
def quality_images(db):
    """make(project, n) -> n image rows of the project (no files: nothing here reads pixels)."""
    from labeler.images.models import Image

    def _make(project, n: int):
        rows = []
        for _ in range(n):
            digest = uuid.uuid4().hex * 2
            rows.append(
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
        db.add_all(rows)
        db.flush()
        return rows

    return _make


@pytest.fixture()
def endpoint_factory(app, db, loopback_allowed):
    """make(project, url, events) -> (endpoint, secret), registered through the service."""
    from labeler.webhooks.services import create_endpoint

    def _make(project, url, events=("label.submitted",), actor=None):
        return create_endpoint(db, actor, project, url, list(events), config=app.config)

    return _make


def drain(app, rounds: int = 20) -> int:
    """Send due deliveries, waiting out each back-off, until none is pending; the attempts sent."""
    import time

    from labeler.webhooks.delivery import deliver_due, next_due_in

    factory = app.extensions["labeler_db"].session_factory
    sent = 0
    for _ in range(rounds):
        wait = next_due_in(factory)
        if wait is None:
            return sent
        time.sleep(wait)
        sent += deliver_due(factory, app.config)
    raise AssertionError(f"deliveries still pending after {rounds} rounds")
