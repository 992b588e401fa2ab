"""Shared fixtures: one database per session, one rolled-back transaction per test, small factories."""

from __future__ import annotations

import os
import uuid

import pytest
from helpers import fresh_database, login, make_config, queue_tally_mismatches
from sqlalchemy.exc import DBAPIError

from labeler import create_app
from labeler.db import make_engine

pytest_plugins = ["sso_support.fixtures", "browser_support.fixtures", "azurite_support.fixtures"]

PG_URL = os.environ.get("LABELER_TEST_DATABASE_URL")


def pytest_report_header(config):
    return f"labeler database: {'PostgreSQL ' + PG_URL if PG_URL else 'SQLite'}"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    """A fresh database migrated to head with Alembic (so every run exercises the migrations)."""
    with fresh_database(tmp_path_factory.mktemp("db"), PG_URL) as url:
        yield url


@pytest.fixture(scope="session")
def engine(database_url):
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture()
def connection(engine):
    conn = engine.connect()
    outer = conn.begin()
    yield conn
    try:
        # every test that wrote queue items also checks the triggers that keep their tallies
        mismatches = queue_tally_mismatches(conn)
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != "25P02":
            raise
        mismatches = []  # the test left its transaction failed (PostgreSQL): nothing to read
    outer.rollback()
    conn.close()
    assert not mismatches, "queue tallies disagree with the queue items: " + "; ".join(mismatches)


@pytest.fixture()
def app(tmp_path, database_url, connection):
    """The app, its sessions bound to the test's connection (each one a savepoint inside the test's transaction).

    No app context stays pushed: every request gets its own, as in production (a shared context would
    leak flask.g, e.g. the signed-in user, from one request to the next).
    """
    application = create_app(make_config(tmp_path, database_url))
    application.extensions["labeler_db"].bind(connection)
    yield application
    application.extensions["labeler_db"].engine.dispose()


@pytest.fixture()
def db(app):
    """A session for the test body; requests use their own sessions on the same connection."""
    session = app.extensions["labeler_db"].session_factory()
    yield session
    session.close()


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def runner(app):
    return app.test_cli_runner()


@pytest.fixture()
def make_user(db):
    from labeler.auth.models import Role
    from labeler.auth.services import add_user

    def _make(email: str | None = None, *roles: str, name: str = "") -> object:
        email = email or f"user-{uuid.uuid4().hex[:8]}@example.org"
        user = add_user(
            db, None, email, name or email.split("@")[0], {Role(r) for r in (roles or ("rater",))}
        )
        db.flush()
        return user

    return _make


@pytest.fixture()
def make_project(db):
    from labeler.projects.services import create_project

    def _make(lead=None, name: str | None = None, protocol: str = "quality"):
        return create_project(db, lead, name or f"project-{uuid.uuid4().hex[:8]}", protocol)

    return _make


@pytest.fixture()
def login_as(client):
    def _login(user):
        login(client, user)
        return client

    return _login


@pytest.fixture()
def client_for(app):
    """A separate signed-in test client per user (raters side by side); ``.csrf`` holds its token."""

    def _client(user):
        c = app.test_client()
        login(c, user)
        return c

    return _client
