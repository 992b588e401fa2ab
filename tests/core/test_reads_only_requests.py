"""Views marked @reads_only (the display image, its tiles) on a real engine, not the tests' shared
connection: on PostgreSQL their requests run without a transaction (no BEGIN, no ROLLBACK), and a write
one needs after all (an item's first showing) runs in a transaction of its own, under the queue lock."""

from __future__ import annotations

import io
import os

import pytest
from helpers import fresh_database, make_config
from PIL import Image as PILImage
from sqlalchemy import event, select

from labeler import create_app

PG_URL = os.environ.get("LABELER_TEST_DATABASE_URL")
POSTGRESQL_ONLY = pytest.mark.skipif(
    not PG_URL, reason="PostgreSQL only: SQLite sessions always begin a transaction"
)


@pytest.fixture()
def world(tmp_path):
    """An app on its own engine: a project of 3 images, one rater on all of them, the rater's token."""
    with fresh_database(tmp_path, PG_URL) as url:
        app = create_app(make_config(tmp_path, url, JOBS_LOCAL="off"))
        runner = app.test_cli_runner()

        def cli(*args: str) -> str:
            result = runner.invoke(args=list(args))
            assert result.exit_code == 0, (args, result.output, result.exception)
            return result.stdout

        src = tmp_path / "src"
        src.mkdir()
        for i in range(3):
            buf = io.BytesIO()
            PILImage.new("RGB", (40, 30), (40 * i, 90, 160)).save(buf, "JPEG")
            (src / f"img{i}.jpg").write_bytes(buf.getvalue())
        project_id = int(
            cli("projects", "create", "reads-only", "--protocol", "quality").split()[-1]
        )
        cli("images", "import", str(project_id), str(src))
        cli("users", "add", "r@reads.test", "--name", "R", "--role", "rater")
        token = cli("users", "token", "r@reads.test", "--name", "t").strip().splitlines()[-1]
        cli("allocate", str(project_id), "--raters", "r@reads.test", "--golden-size", "0")
        statements: list[tuple[str, bool, str]] = []  # (statement, autocommit, transaction status)

        def record(conn, _cursor, statement, _params, _context, _executemany):
            driver = conn.connection.driver_connection
            if conn.dialect.name == "postgresql":
                statements.append(
                    (statement, driver.autocommit, driver.info.transaction_status.name)
                )

        engine = app.extensions["labeler_db"].engine
        event.listen(engine, "before_cursor_execute", record)
        yield app, {"Authorization": f"Bearer {token}"}, project_id, statements
        event.remove(engine, "before_cursor_execute", record)
        engine.dispose()


def _shown_at(app, public_id):
    from labeler.allocation.models import QueueItem

    with app.app_context():
        factory = app.extensions["labeler_db"].session_factory
        with factory() as session:  # a session of its own: what was committed
            return session.scalar(
                select(QueueItem.shown_at).where(QueueItem.public_id == public_id)
            )


def test_the_image_of_a_never_shown_item_is_stamped_in_a_transaction(world):
    """Asked for before its item was served (no GET .../next), the image route records the first
    showing and commits it: on PostgreSQL the queue lock and the stamp run in one transaction."""
    from labeler.allocation.models import QueueItem

    app, headers, project_id, statements = world
    with app.app_context(), app.extensions["labeler_db"].session_factory() as session:
        public_id = session.scalar(
            select(QueueItem.public_id).where(QueueItem.project_id == project_id).limit(1)
        )
    assert _shown_at(app, public_id) is None
    statements.clear()
    resp = app.test_client().get(f"/api/v1/items/{public_id}/image", headers=headers)
    assert resp.status_code == 200 and resp.get_data().startswith(b"\xff\xd8")
    assert _shown_at(app, public_id) is not None
    if PG_URL:
        writes = [
            s for s in statements if "pg_advisory" in s[0] or s[0].startswith("UPDATE queue_items")
        ]
        assert len(writes) == 2, statements  # the queue lock, then the stamp
        assert all(not autocommit for _s, autocommit, _status in writes), statements


@POSTGRESQL_ONLY
def test_an_image_request_runs_without_a_transaction(world):
    """An item already served: the token lookup and the authorized read run in autocommit (no BEGIN
    and no ROLLBACK around them); the answer is the same image, and another rater's id is still a 404."""
    app, headers, project_id, statements = world
    client = app.test_client()
    item = client.get(f"/api/v1/projects/{project_id}/queue/next", headers=headers).json["item"]
    for _ in range(2):  # the second one after the token's last-use stamp was written
        statements.clear()
        resp = client.get(item["image_url"], headers=headers)
        assert resp.status_code == 200 and resp.get_data().startswith(b"\xff\xd8")
        assert resp.headers["Cache-Control"] == "private, no-store"
        assert statements and all(autocommit for _s, autocommit, _status in statements), statements
        assert all(status == "IDLE" for _s, _a, status in statements), statements
    refused = client.get("/api/v1/items/not-an-item-of-yours/image", headers=headers)
    assert refused.status_code == 404
    # and a request that writes still begins a transaction
    statements.clear()
    body = {"decision": "healthy_skin", "base_version": 0}
    assert (
        client.put(f"/api/v1/items/{item['id']}/label", json=body, headers=headers).status_code
        == 200
    )
    assert statements and not any(autocommit for _s, autocommit, _status in statements), statements


@POSTGRESQL_ONLY
def test_a_flush_without_a_transaction_is_refused(world):
    """A @reads_only view's session refuses an ORM flush (each statement would commit on its own)
    until begin_writing() has opened a transaction; then the flush is committed as one."""
    from labeler.auth.models import User
    from labeler.db import begin_writing

    app, _headers, _project_id, _statements = world
    factory = app.extensions["labeler_db"].read_session_factory
    with app.app_context():
        with factory() as session:
            user = session.scalar(select(User).where(User.email == "r@reads.test"))
            user.name = "Refused"
            with pytest.raises(RuntimeError, match="reads_only"):
                session.flush()
            session.rollback()
        with factory() as session:
            user = session.scalar(select(User).where(User.email == "r@reads.test"))
            begin_writing(session)
            assert "name" in user.__dict__  # nothing loaded was expired by the switch
            user.name = "Renamed"
            session.commit()
        with app.extensions["labeler_db"].session_factory() as other:
            assert other.scalar(select(User.name).where(User.email == "r@reads.test")) == "Renamed"
