"""A live labeler server for browser tests: the real app on its own database, served from a thread.

The database is a file-based SQLite in a temporary folder, or, when LABELER_TEST_DATABASE_URL is set, a
fresh database next to that PostgreSQL database (dropped afterwards): never the per-test rolled-back connection
of the unit tests, because the server's threads need their own committed transactions.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from helpers import fresh_database, make_config
from sqlalchemy.orm import Session
from werkzeug.serving import BaseWSGIServer, make_server

from labeler import create_app
from labeler.db import database


def live_database(tmp_path: Path, pg_url: str | None = None):
    """A migrated, empty database of its own (see helpers.fresh_database); yields its URL."""
    return fresh_database(tmp_path, pg_url)


class LiveServer:
    """The app served by werkzeug on 127.0.0.1 and a free port, in a daemon thread.

    The port is bound at construction, so `url` is known before the app exists: pass the app here or
    to start() (the SSO tests register `url` + "/auth/redirect" at their provider first).
    """

    def __init__(self, app: Flask | None = None) -> None:
        self.app = app
        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="live-server", daemon=True
        )

    def _wsgi(self, environ, start_response):
        return self.app(environ, start_response)

    def start(self, app: Flask | None = None) -> LiveServer:
        self.app = app or self.app
        if self.app is None:
            raise RuntimeError("LiveServer.start() needs an app")
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.thread.is_alive():  # shutdown() would wait forever for a loop that never ran
            self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
        if self.app is not None:
            database(self.app).engine.dispose()

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session on the server's database, committed on success (for seeding and for checks)."""
        with self.app.app_context():
            s = database(self.app).session_factory()
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise
            finally:
                s.close()


def live_config(tmp_path: Path, database_url: str, **extra: Any) -> dict[str, Any]:
    return make_config(tmp_path, database_url, TESTING=False, **extra)


@contextlib.contextmanager
def serve(
    tmp_path: Path,
    pg_url: str | None = None,
    *,
    url_config: Callable[[str], Mapping[str, Any]] | None = None,
    **config: Any,
) -> Iterator[LiveServer]:
    """Build the app on a fresh database and serve it until the block ends.

    url_config(base_url) returns settings that need the server's own URL (an SSO redirect URI); it is
    called once the port is bound and before the app is built.
    """
    with live_database(tmp_path, pg_url) as url:
        server = LiveServer()
        try:
            if url_config is not None:
                config = {**config, **url_config(server.url)}
            app = create_app(live_config(tmp_path, url, **config))
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
            server.start(app)
            yield server
        finally:
            server.stop()
