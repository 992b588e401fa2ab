"""Migrations: an empty database upgrades to head with no difference from the models, and back to base."""

import os
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from labeler.db import make_engine
from labeler.migrate import downgrade, upgrade
from labeler.models import Base


def _roundtrip(url: str) -> None:
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, Base.metadata)
            assert diff == [], f"models and migrations differ: {diff}"
            assert set(inspect(conn).get_table_names()) >= set(Base.metadata.tables)
        downgrade(url, "base")
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()


def test_sqlite_upgrade_check_downgrade(tmp_path):
    _roundtrip(f"sqlite:///{tmp_path / 'm.db'}")


def test_postgresql_upgrade_check_downgrade():
    url = os.environ.get("LABELER_TEST_DATABASE_URL")
    if not url:
        pytest.skip(
            "PostgreSQL run only (LABELER_TEST_DATABASE_URL); .ci/run runs the suite on both"
        )
    name = f"labeler_mig_{uuid.uuid4().hex[:8]}"
    admin = make_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        _roundtrip(url.rsplit("/", 1)[0] + "/" + name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
