"""Migrations: an empty database upgrades to head with no difference from the models, and back to base."""

import os

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from helpers import empty_pg_database
from sqlalchemy import inspect

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
    with empty_pg_database(url, "labeler_mig") as fresh_url:
        _roundtrip(fresh_url)
