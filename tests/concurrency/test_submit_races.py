"""Submitting against itself and against rebalancing, on real separate connections (both databases).

These tests commit, so each uses a database of its own (helpers.fresh_database: a SQLite file, or a new
PostgreSQL database next to LABELER_TEST_DATABASE_URL's), dropped afterwards.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest
from concurrency_harness import image_row
from helpers import fresh_database, login, make_config
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import OperationalError

from labeler import create_app
from labeler.allocation import services
from labeler.allocation.models import ItemStatus, QueueItem
from labeler.auth.models import Role, User
from labeler.auth.services import add_user
from labeler.cases.queue import case_of
from labeler.db import Database, make_engine
from labeler.errors import NotFound
from labeler.images.models import Image
from labeler.labeling import services as labeling
from labeler.labeling.models import Label, LabelRevision
from labeler.projects.models import Project
from labeler.projects.services import create_project

PG_URL = os.environ.get("LABELER_TEST_DATABASE_URL")
ANSWER = {"decision": "lesion", "icd10": "L70.0"}


@pytest.fixture()
def world(tmp_path):
    """A fresh database with a project of 40 images allocated to two raters; yields (Database, ids)."""
    with fresh_database(tmp_path, PG_URL) as url:
        database = Database(url)
        with database.session_factory() as s:
            lead = add_user(s, None, "lead@race.test", "Lead", {Role.lead, Role.admin})
            raters = [add_user(s, None, f"r{i}@race.test", f"R{i}", {Role.rater}) for i in range(3)]
            project = create_project(s, lead, "race", "quality")
            s.add_all(image_row(project.id) for _ in range(40))
            s.flush()
            services.allocate(s, lead, project, raters[:2], golden_size=0, overlap=1, seed=7)
            s.commit()
            ids = {"lead": lead.id, "project": project.id, "raters": [r.id for r in raters]}
        yield database, ids
        database.engine.dispose()


def small_project(s, protocol: str, images: int = 4):
    """A lead, one rater holding every image of a new project of the protocol (committed)."""
    lead = add_user(s, None, f"lead@{protocol}.test", "Lead", {Role.lead})
    rater = add_user(s, None, f"r@{protocol}.test", "R", {Role.rater})
    project = create_project(s, lead, protocol, protocol)
    s.add_all(image_row(project.id) for _ in range(images))
    s.flush()
    services.allocate(s, lead, project, [rater], golden_size=0, overlap=1, seed=7)
    s.commit()
    return lead, rater, project


def first_item(s, rater_id: int) -> QueueItem:
    return s.scalar(
        select(QueueItem)
        .where(QueueItem.rater_id == rater_id)
        .order_by(QueueItem.position)
        .limit(1)
    )


def test_the_same_first_submission_twice_at_once_gets_the_one_label_twice(world, monkeypatch):
    """Both requests read "no label yet" before either writes (the window is held open): both get 200
    with the same label, and one revision is recorded."""
    database, ids = world
    rater_id = ids["raters"][0]
    with database.session_factory() as s:
        public_id = first_item(s, rater_id).public_id
    both_read = threading.Barrier(2, timeout=3)
    original = labeling.current_label

    def read_then_wait(session, rater, item, *, for_update=False):
        found = original(session, rater, item, for_update=for_update)
        if for_update:
            try:  # with the item locked, the second request waits for the lock instead: no meeting
                both_read.wait()
            except threading.BrokenBarrierError:
                pass
        return found

    monkeypatch.setattr(labeling, "current_label", read_then_wait)
    submission = uuid.uuid4().hex
    results: list[object] = []

    def submit():
        with database.write_session_factory() as s:
            try:
                rater = s.get(User, rater_id)
                item = labeling.own_item(s, rater, public_id)
                label = labeling.submit_label(
                    s,
                    rater,
                    item,
                    ANSWER,
                    base_version=0,
                    submission_id=submission,
                    time_spent_ms=900,
                )
                out = (label.id, label.version)
                s.commit()
                results.append(out)
            except Exception as exc:  # noqa: BLE001  (asserted below, in the test's thread)
                s.rollback()
                results.append(exc)

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 2 and results[0] == results[1], results
    with database.session_factory() as s:
        assert s.scalar(select(func.count(Label.id))) == 1
        assert s.scalar(select(func.count(LabelRevision.id))) == 1
        assert s.scalar(select(QueueItem.status).where(QueueItem.public_id == public_id)) is (
            ItemStatus.done
        )


def test_a_submit_for_an_item_moved_before_it_got_the_lock_answers_404_and_writes_nothing(world):
    """The rater's request read the item; a rebalance moved it (never shown) and committed; then the
    submit runs: a clear 404, no label, no 500 (it was StaleDataError, or a label on a foreign item)."""
    database, ids = world
    rater_id, _, newcomer_id = ids["raters"]
    submitter = database.write_session_factory()
    rater = submitter.get(User, rater_id)
    # the last item of the queue: the newcomer takes from the end of the most loaded queues
    item = submitter.scalar(
        select(QueueItem)
        .where(QueueItem.rater_id == rater_id)
        .order_by(QueueItem.position.desc())
        .limit(1)
    )
    image_id = item.image_id
    submitter.commit()  # PostgreSQL: read committed; SQLite: the read ends (the write lock is free)
    with database.write_session_factory() as admin:
        project = admin.get(Project, ids["project"])
        services.add_rater(
            admin, admin.get(User, ids["lead"]), project, admin.get(User, newcomer_id)
        )
        admin.commit()
        assert admin.scalar(select(QueueItem.rater_id).where(QueueItem.image_id == image_id)) == (
            newcomer_id
        )
    # the API's submit reads the item once, under the lock: its 404 says the item may have moved,
    # in the same words as for an id that never was the rater's (another rater's stays a plain 404)
    with database.write_session_factory() as s, pytest.raises(NotFound) as moved:
        _submit_as_the_api(s, rater_id, item.public_id, ANSWER, 0, "api")
    with database.write_session_factory() as s, pytest.raises(NotFound) as unknown:
        _submit_as_the_api(s, rater_id, "no-such-item", ANSWER, 0, "api")
    assert "moved to another rater" in moved.value.message
    assert "Nothing was saved" in moved.value.message
    assert moved.value.message == unknown.value.message
    try:
        with pytest.raises(NotFound, match="no longer in your queue"):
            labeling.submit_label(
                submitter, rater, item, ANSWER, base_version=0, submission_id="x", time_spent_ms=1
            )
        with pytest.raises(NotFound, match="no longer in your queue"):
            labeling.skip_item(submitter, rater, item)
    finally:
        submitter.rollback()
        submitter.close()
    with database.session_factory() as s:
        assert s.scalar(select(func.count(Label.id))) == 0


def test_a_request_after_the_servers_connections_were_terminated_succeeds(tmp_path):
    """PostgreSQL drops every connection (restart, failover, pg_terminate_backend): the pooled ones are
    stale, and the next request must get a fresh connection instead of a 500."""
    if not PG_URL:
        pytest.skip(
            "PostgreSQL only: set LABELER_TEST_DATABASE_URL (SQLite has no server connections)"
        )
    with fresh_database(tmp_path, PG_URL) as url:
        app = create_app(make_config(tmp_path, url, TESTING=False))
        database = app.extensions["labeler_db"]
        with database.session_factory() as s:
            _lead, rater, project = small_project(s, "quality")
            project_id = project.id
        client = app.test_client()
        login(client, rater)
        url_next = f"/api/v1/projects/{project_id}/queue/next"
        assert client.get(url_next).status_code == 200
        name = url.rsplit("/", 1)[1]
        killer = make_engine(PG_URL, isolation_level="AUTOCOMMIT")
        try:
            with killer.connect() as conn:
                killed = conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                ).scalar()
            assert killed >= 1  # the pool held the connection of the request above
            # pg_terminate_backend only signals: wait until the backends have exited (as after a
            # restart or failover), so that the app's pooled connections are closed at the server's end
            deadline = time.monotonic() + 10
            with killer.connect() as conn:
                while conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                ).scalar():
                    assert time.monotonic() < deadline, "terminated backends did not exit in 10 s"
                    time.sleep(0.02)
            for _ in range(3):  # every stale pooled connection, not only the first
                resp = client.get(url_next)
                assert resp.status_code == 200, resp.get_data(as_text=True)
        finally:
            killer.dispose()
            database.engine.dispose()


def _submit_as_the_api(s, rater_id, public_id, answer, base_version, submission_id):
    """PUT .../label's path: allocation.queue.item_for_submit, then submit_label with its reads."""
    from labeler.allocation.queue import item_for_submit

    rater = s.get(User, rater_id)
    item, project, label_id = item_for_submit(s, rater, public_id)
    return labeling.submit_label(
        s,
        rater,
        item,
        answer,
        base_version=base_version,
        submission_id=submission_id,
        time_spent_ms=5,
        project=project,
        labeled=label_id is not None,
    )


@pytest.mark.parametrize("same_submission", [False, True])
def test_two_edits_of_one_label_at_once(world, same_submission):
    """Edit A holds the item; edit B (from version 1 too) waits, then reads the label A committed:
    a different submission gets a 409 with the saved answer, the same one sent twice gets it back,
    never a 500 (the label B read before waiting is re-read under the lock)."""
    from labeler.errors import Conflict

    database, ids = world
    rater_id = ids["raters"][0]
    with database.write_session_factory() as s:
        public_id = first_item(s, rater_id).public_id
        _submit_as_the_api(s, rater_id, public_id, {"decision": "no_skin"}, 0, "v1")
        s.commit()
    a = database.write_session_factory()
    assert _submit_as_the_api(a, rater_id, public_id, ANSWER, 1, "edit-a").version == 2
    results: list = []

    def edit_b():
        with database.write_session_factory() as b:
            try:
                sid = "edit-a" if same_submission else "edit-b"
                label = _submit_as_the_api(b, rater_id, public_id, ANSWER, 1, sid)
                b.commit()
                results.append(("saved", label.version))
            except Exception as exc:  # noqa: BLE001  (the thread hands any failure to the test)
                b.rollback()
                results.append(exc)

    thread = threading.Thread(target=edit_b)
    thread.start()
    time.sleep(0.5)  # B waits for A's item lock (PostgreSQL) or the write lock (SQLite)
    a.commit()
    a.close()
    thread.join(30)
    if same_submission:
        assert results == [("saved", 2)]
    else:
        assert len(results) == 1 and isinstance(results[0], Conflict), results
        assert results[0].extra["current"]["version"] == 2
    with database.session_factory() as s:
        assert s.scalar(select(func.count(LabelRevision.id))) == 2


def test_a_scale_migration_waits_for_a_submission_in_flight(tmp_path):
    """A rater's grade read against the 1-5 scale is written before a lead's migration to 0-4 reads
    the labels (the migration takes the queue lock exclusively), so the migration maps it too."""
    from labeler.projects.services import update_settings

    with fresh_database(tmp_path, PG_URL) as url:
        database = Database(url)
        try:
            with database.session_factory() as s:
                lead, rater, project = small_project(s, "severity")
                lead_id, rater_id, project_id = lead.id, rater.id, project.id
                public_id = first_item(s, rater_id).public_id
            a = database.write_session_factory()
            _submit_as_the_api(a, rater_id, public_id, {"decision": "graded", "grade": 5}, 0, "a")
            done: list = []

            def migrate():
                with database.write_session_factory() as b:
                    zero_to_four = [
                        {"value": v, "name": n}
                        for v, n in enumerate(["Clear", "Almost", "Mild", "Moderate", "Severe"])
                    ]
                    done.append(
                        update_settings(
                            b,
                            b.get(User, lead_id),
                            b.get(Project, project_id),
                            {"scale": zero_to_four},
                            confirm_migration=True,
                            grade_mapping={"1": 0, "2": 1, "3": 2, "4": 3, "5": 4},
                        )
                    )
                    b.commit()

            thread = threading.Thread(target=migrate)
            thread.start()
            time.sleep(0.5)  # the migration waits for the submission's transaction
            assert done == []
            a.commit()
            a.close()
            thread.join(30)
            assert done and done[0]["labels_migrated"] == 1
            with database.session_factory() as s:
                label = s.scalar(select(Label))
                assert (label.grade, label.version) == (4.0, 2)
        finally:
            database.engine.dispose()


@pytest.mark.parametrize("failure", ["exception", "http_error"])
def test_a_submit_that_fails_after_its_writes_leaves_no_lock_held_and_nothing_saved(
    tmp_path, monkeypatch, failure
):
    """A PUT .../label?next=1 whose view fails after the queue lock and the label's flush (an
    unexpected error: a 500, rolled back by its handler; a werkzeug HTTP error: a 400, rolled back only
    when the request's session is closed) writes nothing and leaves nothing held: no open PostgreSQL
    transaction, no advisory lock, SQLite's write gate free. The next submit then saves as usual."""
    from werkzeug.exceptions import BadRequest

    from labeler.api import labeling as api_labeling
    from labeler.auth.services import create_token

    with fresh_database(tmp_path, PG_URL) as url:
        app = create_app(make_config(tmp_path, url, TESTING=False))
        database = app.extensions["labeler_db"]
        watcher = make_engine(url, isolation_level="AUTOCOMMIT") if PG_URL else None
        try:
            with database.session_factory() as s:
                lead, rater, _project = small_project(s, "quality")
                public_id = first_item(s, rater.id).public_id
                _, token = create_token(s, lead, rater, "race")
                s.commit()
            real_submit = api_labeling.submit_label

            def failing_submit(db, *args, **kwargs):
                real_submit(db, *args, **kwargs)
                db.flush()
                if failure == "exception":
                    raise RuntimeError("the view failed after writing")
                raise BadRequest("the view refused after writing")

            monkeypatch.setattr(api_labeling, "submit_label", failing_submit)
            client = app.test_client()
            headers = {"Authorization": f"Bearer {token}"}
            body = {**ANSWER, "base_version": 0, "submission_id": "s1"}
            resp = client.put(f"/api/v1/items/{public_id}/label?next=1", json=body, headers=headers)
            assert resp.status_code == (500 if failure == "exception" else 400)
            with database.session_factory() as s:
                assert s.scalar(select(func.count(Label.id))) == 0
            if watcher is not None:
                with watcher.connect() as conn:
                    leftovers = conn.execute(
                        text(
                            "SELECT (SELECT count(*) FROM pg_locks l JOIN pg_database d "
                            "ON d.oid = l.database WHERE l.locktype = 'advisory' "
                            "AND d.datname = current_database()), "
                            "(SELECT count(*) FROM pg_stat_activity WHERE datname = "
                            "current_database() AND state LIKE 'idle in transaction%')"
                        )
                    ).one()
                assert tuple(leftovers) == (0, 0)
            else:  # the write gate is free: a writer on another thread gets through at once
                wrote: list[int] = []

                def write():
                    with database.write_session_factory() as s:
                        s.execute(
                            text("UPDATE users SET name = name WHERE id = :id"), {"id": lead.id}
                        )
                        s.commit()
                        wrote.append(1)

                thread = threading.Thread(target=write)
                thread.start()
                thread.join(5)
                assert wrote == [1], "SQLite's write gate was left held by the failed request"
            monkeypatch.setattr(api_labeling, "submit_label", real_submit)
            body["submission_id"] = "s2"
            resp = client.put(f"/api/v1/items/{public_id}/label?next=1", json=body, headers=headers)
            assert resp.status_code == 200, resp.get_data(as_text=True)
            with database.session_factory() as s:
                assert s.scalar(select(func.count(Label.id))) == 1
        finally:
            if watcher is not None:
                watcher.dispose()
            database.engine.dispose()


def test_a_begin_immediate_sqlite_refuses_raises_sqlalchemys_error_and_frees_the_gate(tmp_path):
    """Another program holds SQLite's write lock past the busy timeout: the request's BEGIN IMMEDIATE
    fails with SQLAlchemy's OperationalError (as any other statement's), and the write gate is free."""
    import sqlite3

    from sqlalchemy.exc import OperationalError
    from sqlalchemy.orm import Session

    if PG_URL:
        pytest.skip("SQLite only: its BEGIN IMMEDIATE and write gate")
    path = tmp_path / "begin.db"
    engine = make_engine(f"sqlite:///{path}", connect_args={"timeout": 0.1})
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
        immediate = engine.execution_options(sqlite_immediate=True)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        refused: list[BaseException] = []
        with Session(immediate) as s:
            try:
                s.execute(text("SELECT 1"))
            except Exception as exc:  # noqa: BLE001 (its type is what is checked)
                refused.append(exc)
        other.execute("ROLLBACK")
        other.close()
        wrote: list[int] = []

        def write():
            with Session(immediate) as s:
                s.execute(text("INSERT INTO t VALUES (1)"))
                s.commit()
                wrote.append(1)

        thread = threading.Thread(target=write)
        thread.start()
        thread.join(5)
        assert wrote == [1], "the write gate was left held by the refused BEGIN"
        assert len(refused) == 1 and "locked" in str(refused[0])
        assert isinstance(refused[0], OperationalError), type(refused[0])
    finally:
        engine.dispose()


def test_the_queue_lock_is_asked_for_again_whenever_the_transaction_may_not_hold_it():
    """allocation.queue remembers the queue lock its transaction holds (de0f3f0): after a commit, a
    rollback, a rolled-back savepoint, or for exclusive over shared, the lock is taken again; the one
    request it skips is one the transaction's own lock covers (PostgreSQL's pg_locks says so)."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from labeler.allocation.queue import QUEUE_LOCK_SPACE, lock_project_queues

    if not PG_URL:
        pytest.skip("PostgreSQL only: SQLite has no queue lock")
    engine = make_engine(PG_URL)
    asked: list[str] = []
    event.listen(
        engine,
        "before_cursor_execute",
        lambda _c, _cur, statement, *_a: (
            asked.append(statement) if "pg_advisory_xact_lock" in statement else None
        ),
    )
    project = 987_654_321
    try:
        with engine.connect() as watcher, Session(engine) as s:

            def lock(exclusive: bool = False) -> int:
                """Take the lock; how many lock statements that sent, once checked as held."""
                pid = s.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar()
                before = len(asked)
                lock_project_queues(s, project, exclusive=exclusive)
                modes = set(
                    watcher.execute(
                        text(
                            "SELECT mode FROM pg_locks WHERE locktype = 'advisory' AND granted "
                            "AND classid = :space AND objid = :project AND pid = :pid"
                        ),
                        {"space": QUEUE_LOCK_SPACE, "project": project, "pid": pid},
                    ).scalars()
                )
                assert "ExclusiveLock" in modes if exclusive else modes, modes
                return len(asked) - before

            assert lock() == 1
            assert lock() == 0  # held by this transaction
            savepoint = s.begin_nested()
            assert lock() == 1  # a savepoint takes it on its own
            savepoint.rollback()
            # the transaction's own is still held: asking again (the memo names the savepoint) costs
            # a statement, never correctness
            assert lock() in (0, 1)
            s.commit()
            assert lock() == 1  # a new transaction
            s.rollback()
            savepoint = s.begin_nested()
            assert lock() == 1
            savepoint.rollback()  # released with the savepoint
            assert lock() == 1
            assert lock(exclusive=True) == 1  # exclusive is not covered by shared
            assert lock() == 0  # shared is covered by exclusive
            s.close()
            assert lock() == 1
    finally:
        engine.dispose()


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL only: SQLite has no row locks")
def test_a_case_write_locks_all_its_photos_before_it_changes_one(tmp_path):
    """Each status change also updates the rater's queue tally (one row). A case submit or skip that
    locked its photos one at a time would hold the tally after its first photo while waiting for a
    later one, which a single-photo skip of that later photo by the same rater (holding it, waiting
    for the tally) could hold: a deadlock. case_of(fresh=True) locks every photo of the case first."""
    with fresh_database(tmp_path, PG_URL) as url:
        database = Database(url)
        try:
            with database.session_factory() as s:
                _lead, rater, project = small_project(s, "quality", images=3)
                s.execute(update(Image).where(Image.project_id == project.id).values(case_id="c1"))
                s.commit()
                rater_id = rater.id
                ids = list(
                    s.scalars(
                        select(QueueItem.id)
                        .where(QueueItem.rater_id == rater_id)
                        .order_by(QueueItem.position)
                    )
                )
            with database.session_factory() as s, database.engine.connect() as other:
                rows = case_of(s, s.get(User, rater_id), s.get(QueueItem, ids[0]), fresh=True)
                assert [item.id for item, _image in rows] == ids
                for item_id in ids:  # every photo is held by the case's transaction
                    with pytest.raises(OperationalError, match="could not obtain lock"):
                        other.execute(
                            text("SELECT id FROM queue_items WHERE id = :id FOR UPDATE NOWAIT"),
                            {"id": item_id},
                        )
                    other.rollback()
                s.rollback()
        finally:
            database.engine.dispose()
