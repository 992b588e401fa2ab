"""Database: declarative base with a constraint naming convention, one session per request."""

from __future__ import annotations

import fcntl
import logging
import os
import select
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
from flask import Flask, Response, current_app, g, has_request_context, request
from sqlalchemy import JSON, DateTime, MetaData, create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.orm import (
    DeclarativeBase,
    ORMExecuteState,
    Session,
    configure_mappers,
    make_transient_to_detached,
    sessionmaker,
)
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.instrumentation import manager_of_class
from sqlalchemy.orm.util import identity_key

from .errors import LabelerError

log = logging.getLogger(__name__)
T = TypeVar("T")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
READS_ONLY = "labeler_reads_only"  # a view's mark and its session's info key (reads_only below)
SQLITE_BUSY_TIMEOUT_S = 30
# a pooled PostgreSQL connection idle for longer than this is pinged (a round trip) before use
PING_AFTER_IDLE_S = 10.0
_WRITE_GATE = (
    "labeler_sqlite_write_gate"  # connection info: this connection holds its process's gate
)
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Timezone-aware now, stored as UTC."""
    return datetime.now(UTC)


# -- mapped objects built from a Core row (the hot path reads in Core: an ORM query's compile and
# load steps cost more than the read) -------------------------------------------------------------


def built(cls: type[T], values: dict[str, Any]) -> T:
    """A transient instance of the mapped ``cls`` holding ``values``, built as the ORM's loader builds
    one (no __init__, no attribute events): a third of the constructor's cost for the same object."""
    configure_mappers()  # the relationships exist (a no-op once configured: about 3 us)
    obj = manager_of_class(cls).new_instance()
    obj.__dict__.update(values)
    return obj


def loaded(cls: type[T], values: dict[str, Any]) -> T:
    """built(), detached with the identity its primary key gives: what session.add makes persistent,
    as if a query of this session had loaded it."""
    obj = built(cls, values)
    make_transient_to_detached(obj)
    return obj


def attach_row(session: Session, cls: type[T], values: dict[str, Any]) -> T:
    """The session's instance of ``cls`` with the primary key ``values["id"]``, holding every column
    in ``values`` as just read: one the session already holds gets them as its committed values (an
    unflushed change to one of them is dropped, as a query with populate_existing drops it), else a
    new one is added to the session as persistent."""
    existing = session.identity_map.get(identity_key(cls, (values["id"],)))
    if existing is not None:
        for key, value in values.items():
            set_committed_value(existing, key, value)
        return existing
    obj = loaded(cls, values)
    session.add(obj)
    return obj


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: JSON, list[Any]: JSON}  # noqa: RUF012 (read by SQLAlchemy)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets foreign keys, WAL and a busy timeout."""
    if url.startswith("sqlite"):
        kwargs.setdefault(
            "connect_args", {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}
        )
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg":
        _check_connections_at_checkout(engine)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            # let SQLAlchemy, not the driver, open transactions: pysqlite's implicit ones break SAVEPOINTs
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            if url not in {"sqlite://", "sqlite:///:memory:"}:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

        # Writers queue instead of polling: SQLite's busy handler sleeps between tries (100 ms once a
        # wait is long) and is unfair, so under load a waiting writer lost the write lock to newcomers
        # for seconds (bench/labeling.py at 16 raters: 10 s read timeouts). A transaction that begins
        # IMMEDIATE first takes its process's lock (threads), then an exclusive flock on a file next to
        # the database (processes: the kernel wakes the next waiter when it is released, and releases
        # it when a process dies), so SQLite's lock is free when it asks.
        gate = _WriteGate(engine.url.database)

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            # IMMEDIATE takes the write lock up front (waiting out the busy timeout): a deferred transaction
            # that reads and then writes fails at once if another writer committed since its read
            if not conn.get_execution_options().get("sqlite_immediate"):
                _driver_begin(conn, "BEGIN")
                return
            gate.acquire()
            try:
                _driver_begin(conn, "BEGIN IMMEDIATE")
            except BaseException:
                gate.release()
                raise
            conn.info[_WRITE_GATE] = True

        def _release_gate(conn) -> None:
            if conn.info.pop(_WRITE_GATE, False):
                gate.release()

        event.listen(engine, "commit", _release_gate)
        event.listen(engine, "rollback", _release_gate)

        @event.listens_for(engine, "checkin")
        def _release_gate_at_checkin(_dbapi_conn, record):
            # a connection given back without a commit or rollback event (invalidated) frees it too
            if record.info.pop(_WRITE_GATE, False):
                gate.release()

    return engine


def _driver_begin(conn: Any, statement: str) -> None:
    """SQLite: BEGIN sent on the driver's connection, not through exec_driver_sql (SQLAlchemy's events,
    execution context and result cost about 4% of a label cycle's CPU for a statement with no result).
    A refusal (the database locked past the busy timeout) is raised as SQLAlchemy's error, as from any
    other statement: callers catch sqlalchemy.exc.OperationalError."""
    dbapi_error = conn.dialect.loaded_dbapi.Error
    try:
        conn.connection.driver_connection.execute(statement)
    except dbapi_error as exc:
        raise DBAPIError.instance(statement, None, exc, dbapi_error) from exc


def _check_connections_at_checkout(engine: Engine) -> None:
    """A pooled connection the server has dropped (restart, failover, pg_terminate_backend, idle
    timeout) is replaced at checkout instead of failing the request with a 500, without a round trip
    on every request (``pool_pre_ping`` sent one per checkout, three per label cycle):

    - the server closes its end when it drops a connection, so an idle pooled connection whose socket
      has something to read (end of file, a termination notice) is gone: a non-blocking poll, no I/O;
    - one idle for longer than PING_AFTER_IDLE_S (where a silent network drop could hide) is pinged.

    Raising DisconnectionError makes the pool discard the connection and take another (or a new one).
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _alive(dbapi_conn, record, _proxy):
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None:  # a new connection
            return
        try:
            poller = select.poll()  # not select.select: it refuses descriptors above 1023
            poller.register(dbapi_conn.pgconn.socket, select.POLLIN)
            readable = bool(poller.poll(0))
        except (OSError, ValueError, engine.dialect.loaded_dbapi.Error):  # closed or broken
            readable = True
        if readable or dbapi_conn.broken or dbapi_conn.closed:
            log.info("a pooled database connection was closed by the server: replaced")
            raise DisconnectionError("the server closed this pooled connection")
        if time.monotonic() - idle_since > PING_AFTER_IDLE_S:
            try:
                engine.dialect.do_ping(dbapi_conn)
            except engine.dialect.loaded_dbapi.Error as exc:
                raise DisconnectionError(
                    f"a pooled connection did not answer a ping: {exc}"
                ) from exc


class _WriteGate:
    """One IMMEDIATE transaction at a time on a SQLite file: a thread lock within the process, an
    exclusive flock on ``<database>-writelock`` across processes (none for an in-memory database)."""

    def __init__(self, database: str | None) -> None:
        self._threads = threading.Lock()
        self._path = f"{database}-writelock" if database and database != ":memory:" else None
        self._fd: int | None = None
        self._pid = 0

    def _file(self) -> int | None:
        if self._path is None:
            return None
        if self._fd is None or self._pid != os.getpid():  # a forked child opens its own
            self._fd, self._pid = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600), os.getpid()
        return self._fd

    def acquire(self) -> None:
        if not self._threads.acquire(timeout=SQLITE_BUSY_TIMEOUT_S):
            raise OperationalError("BEGIN IMMEDIATE", None, TimeoutError("database is locked"))
        try:
            fd = self._file()
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)  # waits in the kernel, GIL released
        except BaseException:
            self._threads.release()
            raise

    def release(self) -> None:
        try:
            if self._fd is not None and self._pid == os.getpid():
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()


class Database:
    """Holds the engine and the session factory of one app."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self.session_factory = sessionmaker(bind=self.engine, expire_on_commit=False)
        # sessions of requests that write (PUT, POST...); on SQLite their transactions begin IMMEDIATE
        self.write_session_factory = self.session_factory
        # sessions of views marked @reads_only; on PostgreSQL they run without a transaction
        self.read_session_factory = self.session_factory
        if self.engine.dialect.name == "sqlite":
            self.write_session_factory = sessionmaker(
                bind=self.engine.execution_options(sqlite_immediate=True), expire_on_commit=False
            )
        elif self.engine.dialect.name == "postgresql":
            self.read_session_factory = sessionmaker(
                bind=self.engine.execution_options(isolation_level="AUTOCOMMIT"),
                expire_on_commit=False,
                info={READS_ONLY: True},
            )

    def read_connection(self) -> AbstractContextManager[Connection]:
        """A connection for reads outside any request session (api/hot_image.py), on the bind of
        @reads_only sessions (PostgreSQL: no transaction); the tests' own connection once bound."""
        bind = self.read_session_factory.kw["bind"]
        return nullcontext(bind) if isinstance(bind, Connection) else bind.connect()

    def bind(self, bind: Any) -> None:
        """Point new sessions at a connection (tests: one transaction per test)."""
        self.session_factory = self.write_session_factory = self.read_session_factory = (
            sessionmaker(
                bind=bind, expire_on_commit=False, join_transaction_mode="create_savepoint"
            )
        )


def init_app(app: Flask) -> None:
    app.extensions["labeler_db"] = Database(app.config["DATABASE_URL"])
    app.after_request(_commit_request)
    app.teardown_appcontext(_close_session)


def database(app: Flask | None = None) -> Database:
    return (app or current_app).extensions["labeler_db"]


def reads_only(view: Callable) -> Callable:
    """Mark a view that only reads (the display image, its tiles): on PostgreSQL its request's
    session runs without a transaction (autocommit), which spares the BEGIN and ROLLBACK round trips
    of every such request. Each statement still sees the database as of its own start, as every
    statement does in PostgreSQL's READ COMMITTED transactions. A write such a view needs after all
    (an item's first showing) opens a transaction first: begin_writing(). Put it under the route and
    permission decorators (they copy the mark)."""
    setattr(view, READS_ONLY, True)
    return view


def get_session() -> Session:
    """The request's session: services flush; the request commits once, when the view has answered."""
    if "db_session" not in g:
        db = database()
        factory = db.session_factory
        if has_request_context():
            if request.method not in SAFE_METHODS:
                factory = db.write_session_factory
            elif getattr(current_app.view_functions.get(request.endpoint), READS_ONLY, False):
                factory = db.read_session_factory
        g.db_session = factory()
    return g.db_session


def require_transaction(session: Session, what: str) -> None:
    """Refuse, loudly, what needs a transaction in a @reads_only session that has none yet: each
    statement there commits on its own, so a write would not be undone with the request, and a
    transaction-scoped lock (the queue lock) would be released by the statement that took it.
    (The bearer token's last-use stamp is the one write sent there on purpose: a single statement.)"""
    if session.info.get(READS_ONLY):
        raise RuntimeError(f"{what} in a @reads_only view before begin_writing()")


def begin_writing(session: Session) -> None:
    """Make sure the session is in a transaction that may write, before a write in a reading request.

    SQLite: a reading request's transaction began deferred, and cannot take the write lock once another
    writer has committed since its first read. PostgreSQL: a @reads_only view's session has no
    transaction at all. Either way it has only read: it ends and a writing transaction begins (SQLite:
    BEGIN IMMEDIATE), and the caller reads again what it needs. Writing requests already have one;
    tests bind sessions to one shared connection: nothing to do there.
    """
    bind = session.get_bind()
    if not isinstance(bind, Engine):
        return
    if bind.dialect.name == "sqlite":
        if session.connection().get_execution_options().get("sqlite_immediate"):
            return
        session.rollback()
        session.connection(execution_options={"sqlite_immediate": True})
    elif session.info.get(READS_ONLY):
        if session.new or session.dirty or session.deleted:
            raise RuntimeError(
                "begin_writing() after a change in a @reads_only session: call it first"
            )
        # nothing was written (writes are refused, below): commit() ends the session's transaction
        # without a statement and, unlike rollback(), without expiring what it loaded (the user)
        session.commit()
        session.info[READS_ONLY] = False
        session.connection(
            execution_options={"isolation_level": bind.dialect.default_isolation_level}
        )


def rollback_request() -> None:
    """Discard the request's unflushed and flushed writes (error handlers, before rendering)."""
    session = g.get("db_session")
    if session is not None:
        session.rollback()


class CommandSession:
    """One session per CLI command: commit on success, roll back and report a clear error otherwise."""

    def __enter__(self) -> Session:
        self.session = database().session_factory()
        return self.session

    def __exit__(self, exc_type, exc, _tb):
        if exc_type is None:
            self.session.commit()
        else:
            self.session.rollback()
        self.session.close()
        if isinstance(exc, LabelerError):
            raise click.ClickException(exc.message) from exc
        return False


@event.listens_for(Session, "before_flush")
def _refuse_flush_without_transaction(
    session: Session, _flush_context: Any, _instances: Any
) -> None:
    require_transaction(session, "a flush")


@event.listens_for(Session, "after_flush")
def _note_write(session: Session, _flush_context: Any) -> None:
    session.info["wrote"] = True


@event.listens_for(Session, "do_orm_execute")
def _note_statement_write(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:  # session.execute(update(...))
        require_transaction(state.session, "a write")
        state.session.info["wrote"] = True


def _commit_request(response: Response) -> Response:
    """The one commit of a request, once the view has answered below 400: a write request's, or a
    read's that recorded something (an item's first showing, a first sign-in). Views never commit; anything else
    (an error, a refusal) is rolled back at teardown."""
    session = g.get("db_session")
    if (
        session is not None
        and response.status_code < 400
        and (
            request.method not in SAFE_METHODS
            or session.info.pop("wrote", False)
            or session.new
            or session.dirty
            or session.deleted
        )
    ):
        session.commit()
    return response


def end_request_session() -> None:
    """Discard the request's session (a rollback of anything uncommitted); get_session() starts a new one."""
    _close_session(None)


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        # close() ends the transaction (a rollback on the connection, anything uncommitted is dropped)
        # and expunges everything, without rollback()'s expiring of every loaded object first
        session.close()
