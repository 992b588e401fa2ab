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
        # PostgreSQL: (statement, autocommit, transaction status, driver connection) as each was sent,
        # and ("COMMIT", ...) for each commit
        statements: list[tuple[str, bool, str, int]] = []

        def record(conn, _cursor, statement, _params, _context, _executemany):
            driver = conn.connection.driver_connection
            if conn.dialect.name == "postgresql":
                statements.append(
                    (statement, driver.autocommit, driver.info.transaction_status.name, id(driver))
                )

        def record_commit(conn):
            if conn.dialect.name == "postgresql":
                statements.append(("COMMIT", False, "", id(conn.connection.driver_connection)))

        engine = app.extensions["labeler_db"].engine
        event.listen(engine, "before_cursor_execute", record)
        event.listen(engine, "commit", record_commit)
        app.config["TEST_CLI"] = cli  # another token, for a first use
        yield app, {"Authorization": f"Bearer {token}"}, project_id, statements
        event.remove(engine, "before_cursor_execute", record)
        event.remove(engine, "commit", record_commit)
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
        # the queue lock, then the stamp, in one transaction: the stamp is sent while the
        # transaction the lock began is open, and nothing commits between them
        sent = [s[0] for s in statements]
        lock = next(i for i, s in enumerate(sent) if "pg_advisory_xact_lock" in s)
        stamp = next(i for i, s in enumerate(sent) if s.startswith("UPDATE queue_items"))
        assert lock < stamp and "COMMIT" not in sent[lock:stamp], sent
        assert not statements[lock][1] and not statements[stamp][1], statements
        assert statements[stamp][2] == "INTRANS", statements
        assert "COMMIT" in sent[stamp:], sent


@POSTGRESQL_ONLY
def test_an_image_request_runs_without_a_transaction(world):
    """An item already served: the token lookup (and its last-use stamp, a token's first use in a
    minute) and the authorized read run in autocommit, with no BEGIN and no ROLLBACK around them; the
    answer is the same image, and another rater's id is still a 404. A write request that gets one of
    those pooled connections back runs in a transaction again."""
    app, headers, project_id, statements = world
    client = app.test_client()
    item = client.get(f"/api/v1/projects/{project_id}/queue/next", headers=headers).json["item"]
    fresh = app.config["TEST_CLI"]("users", "token", "r@reads.test", "--name", "t2")
    for auth in ({"Authorization": f"Bearer {fresh.strip().splitlines()[-1]}"}, headers):
        statements.clear()
        resp = client.get(item["image_url"], headers=auth)
        assert resp.status_code == 200 and resp.get_data().startswith(b"\xff\xd8")
        assert resp.headers["Cache-Control"] == "private, no-store"
        # (the token stamp's commit is an event with no statement: psycopg sends nothing when idle)
        sent = [s for s in statements if s[0] != "COMMIT"]
        assert sent and all(s[1] and s[2] == "IDLE" for s in sent), statements
        stamps = [s for s in statements if s[0].startswith("UPDATE api_tokens")]
        assert len(stamps) == (1 if auth is not headers else 0), statements
    used = {s[3] for s in statements}
    assert (
        client.get("/api/v1/items/not-an-item-of-yours/image", headers=headers).status_code == 404
    )
    statements.clear()
    body = {"decision": "healthy_skin", "base_version": 0}
    assert (
        client.put(f"/api/v1/items/{item['id']}/label", json=body, headers=headers).status_code
        == 200
    )
    assert {s[3] for s in statements} & used, "the write request did not reuse a pooled connection"
    assert statements and not any(s[1] for s in statements), statements


@POSTGRESQL_ONLY
def test_the_first_showing_by_the_image_waits_for_a_rebalance(world):
    """While a rebalance holds the project's queue lock, an image request that must record its
    item's first showing waits for it (the lock is held for the stamp's whole transaction, not
    released by its own statement), then records it."""
    import threading

    from sqlalchemy import text

    from labeler.allocation.models import QueueItem
    from labeler.allocation.queue import QUEUE_LOCK_SPACE

    app, headers, project_id, _statements = world
    db = app.extensions["labeler_db"]
    with app.app_context(), db.session_factory() as session:
        public_id = session.scalar(
            select(QueueItem.public_id).where(QueueItem.project_id == project_id).limit(1)
        )
    answers: list[int] = []
    with db.engine.connect() as rebalance:
        rebalance.execute(
            text("SELECT pg_advisory_xact_lock(:space, :project)"),
            {"space": QUEUE_LOCK_SPACE, "project": project_id},
        )

        def ask() -> None:
            resp = app.test_client().get(f"/api/v1/items/{public_id}/image", headers=headers)
            resp.get_data()
            resp.close()
            answers.append(resp.status_code)

        worker = threading.Thread(target=ask)
        worker.start()
        worker.join(1.5)
        assert worker.is_alive() and not answers  # waiting for the lock
        assert _shown_at(app, public_id) is None
        rebalance.commit()  # releases the lock
    worker.join(10)
    assert answers == [200]
    assert _shown_at(app, public_id) is not None


@POSTGRESQL_ONLY
def test_writes_and_locks_without_a_transaction_are_refused(world):
    """A @reads_only view's session refuses an ORM flush, a write statement and the queue lock (each
    would be committed or released by its own statement) until begin_writing() has opened a
    transaction; then they run in it."""
    from sqlalchemy import update

    from labeler.allocation.queue import lock_project_queues
    from labeler.auth.models import User
    from labeler.db import begin_writing

    app, _headers, project_id, _statements = world
    factory = app.extensions["labeler_db"].read_session_factory
    with app.app_context():
        with factory() as session:
            user = session.scalar(select(User).where(User.email == "r@reads.test"))
            user.name = "Refused"
            with pytest.raises(RuntimeError, match="reads_only"):
                session.flush()
            session.rollback()
            with pytest.raises(RuntimeError, match="reads_only"):
                session.execute(update(User).where(User.id == user.id).values(name="Refused"))
            with pytest.raises(RuntimeError, match="reads_only"):
                lock_project_queues(session, project_id)  # would be released at once
        with factory() as session:
            user = session.scalar(select(User).where(User.email == "r@reads.test"))
            begin_writing(session)
            assert "name" in user.__dict__  # nothing loaded was expired by the switch
            user.name = "Renamed"
            lock_project_queues(session, project_id)
            session.commit()
        with app.extensions["labeler_db"].session_factory() as other:
            assert other.scalar(select(User.name).where(User.email == "r@reads.test")) == "Renamed"
