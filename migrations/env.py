"""Alembic environment: the URL comes from the caller (labeler db upgrade) or LABELER_DATABASE_URL."""

from __future__ import annotations

import os

from alembic import context

from labeler.db import make_engine
from labeler.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("LABELER_DATABASE_URL")
    if not url:
        raise RuntimeError(
            "no database URL: run through `labeler db upgrade` or set LABELER_DATABASE_URL"
        )
    return url


def run_offline() -> None:
    context.configure(
        url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    # SQLite's batch mode rebuilds a table (copy, DROP, rename); with foreign keys on, dropping a
    # table that others reference (labels, by label_revisions) fails once rows exist. The pragma
    # only takes effect outside a transaction, so it is set on the driver's connection first, and
    # the foreign keys are checked once the migrations ran (tests/core/test_migrations_with_data.py).
    sqlite = connection.dialect.name == "sqlite" and not connection.in_transaction()
    if sqlite:
        connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")
    try:
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(
                        f"migration left rows with broken foreign keys: {broken[:5]}"
                    )
    finally:
        if sqlite:
            connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")


if context.is_offline_mode():
    run_offline()
else:
    run_online()
