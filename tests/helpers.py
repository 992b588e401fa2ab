"""Plain helpers shared by the tests (importable as `helpers`; conftest modules are not meant for imports)."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import event, text

from labeler.db import make_engine
from labeler.images.models import Image
from labeler.images.storage import content_key
from labeler.migrate import upgrade


@contextlib.contextmanager
def fresh_database(folder: Path, pg_url: str | None = None) -> Iterator[str]:
    """A new database migrated to head with Alembic; yields its URL and drops it afterwards.

    SQLite: a file in `folder`. PostgreSQL: a database created next to `pg_url`'s (which only serves
    as the admin connection), so concurrent runs never see each other's rows.
    """
    if not pg_url:
        url = f"sqlite:///{folder / f'test-{uuid.uuid4().hex[:8]}.db'}"
        upgrade(url)
        yield url
        return
    with empty_pg_database(pg_url, f"labeler_test_{os.getpid()}") as url:
        upgrade(url)
        yield url


@contextlib.contextmanager
def empty_pg_database(pg_url: str, prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database next to `pg_url`'s (only the admin connection); yields its
    URL and drops it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = make_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield pg_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def make_config(tmp_path: Path, database_url: str, **extra) -> dict:
    cfg = {
        "LABELER_ENV": "test",
        "TESTING": True,
        "SECRET_KEY": "test-secret-" + uuid.uuid4().hex,
        "DATABASE_URL": database_url,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "STORAGE_PATH": str(tmp_path / "files"),
        "AUTH_MODE": "dev",
        # follow-up jobs (deep-zoom tiles) run in the test's own process, not in worker processes
        "JOBS_LOCAL": "inline",
    }
    cfg.update(extra)
    return cfg


CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def csrf_from(client) -> str:
    html = client.get("/auth/login").get_data(as_text=True)
    match = CSRF_META.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def login(client, user) -> str:
    """Sign in through the development sign-in form (with its CSRF token); returns a fresh CSRF token."""
    if getattr(client, "csrf", None):  # switching users: sign the previous one out first
        client.post("/auth/logout", data={"csrf_token": client.csrf})
    token = csrf_from(client)
    resp = client.post("/auth/dev-login", data={"email": user.email, "csrf_token": token})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    page = client.get("/").get_data(as_text=True)
    client.csrf = CSRF_META.search(page).group(1)
    return client.csrf


# Blinding checks (docs/domain.md section 2): what a rater receives, compared between golden and fold.
PUBLIC_ID_RE = re.compile(r"[A-Za-z0-9_-]{24}")
VOLATILE_HEADERS = {"content-length"}  # differs with each picture, golden or not


def shape(value):
    """A value's type structure: what a client could tell apart without knowing the data."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [shape(v) for v in value[:1]]
    if isinstance(value, str):
        return (
            "str",
            "url" if value.startswith("/") else "id" if PUBLIC_ID_RE.fullmatch(value) else "text",
        )
    return type(value).__name__


def header_view(headers) -> str:
    """Headers as a client compares them; the session cookie's value changes with every request."""
    out = []
    for k, v in headers.items():
        k = k.lower()
        if k in VOLATILE_HEADERS:
            continue
        if k == "set-cookie":
            name, _, rest = v.partition("=")
            attrs = [a.strip() for a in rest.split(";")[1:]]
            v = (
                name
                + "=<value>; "
                + "; ".join(re.sub(r"(?i)^expires=.*", "Expires=<date>", a) for a in attrs)
            )
        out.append((k, v))
    return repr(sorted(out))


def image_row(project_id: int, *, size: int = 8, filename: str | None = None, **fields) -> Image:
    """An unsaved Image row with a random checksum and the app's own store keys (no file stored);
    `fields` sets further columns (case_id, body_site, meta...)."""
    sha = secrets.token_hex(32)
    return Image(
        project_id=project_id,
        sha256=sha,
        filename=filename or f"{sha[:8]}.jpg",
        width=size,
        height=size,
        format="JPEG",
        byte_size=1,
        display_key=content_key("display", sha, "jpg"),
        thumb_key=content_key("thumbs", sha, "jpg"),
        original_key=content_key("originals", sha, "jpg"),
        **fields,
    )


_SAVEPOINTS = re.compile(
    r"^\s*(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT)\b", re.IGNORECASE
)


@contextlib.contextmanager
def recorded_statements(connection) -> Iterator[list[str]]:
    """The SQL statements sent on the test's connection inside the block, in order (the tests' own
    savepoint bookkeeping, each request's session being a savepoint, left out)."""
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        if not _SAVEPOINTS.match(statement):
            seen.append(statement)

    event.listen(connection, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(connection, "before_cursor_execute", record)


def queue_tally_mismatches(connection) -> list[str]:
    """Where queue_tallies (kept by triggers) disagrees with counting queue_items: one line per
    (project, rater) whose tally is not its count of items and of done items (none: they agree)."""
    counted = {
        (p, r): (total, done)
        for p, r, total, done in connection.execute(
            text(
                "SELECT project_id, rater_id, count(*), "
                "sum(CASE WHEN status = 'done' THEN 1 ELSE 0 END) "
                "FROM queue_items GROUP BY project_id, rater_id"
            )
        )
    }
    tallied = {
        (p, r): (total, done)
        for p, r, total, done in connection.execute(
            text("SELECT project_id, rater_id, total, done FROM queue_tallies")
        )
        if (total, done) != (0, 0)
    }
    return [
        f"project {key[0]} rater {key[1]}: counted {counted.get(key)}, tallied {tallied.get(key)}"
        for key in sorted(counted.keys() | tallied.keys())
        if counted.get(key) != tallied.get(key)
    ]


def route_answer(app, monkeypatch, client, url, headers=None):
    """The Flask route's own answer (status, sorted headers, body), the display-image layer below
    Flask (labeler/api/hot_image.py) set aside for one request."""
    from labeler.api.hot_image import HotImage

    layer = app.wsgi_app
    assert isinstance(layer, HotImage)
    monkeypatch.setattr(app, "wsgi_app", layer.wsgi_app)
    try:
        resp = client.get(url, headers=headers)
        return resp.status_code, sorted(resp.headers.items()), resp.get_data()
    finally:
        monkeypatch.setattr(app, "wsgi_app", layer)


class Clock:
    """A clock that stands still until a test moves it (``now``): auth.login's session clock."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
