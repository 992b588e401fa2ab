"""SQL statements per label cycle (next -> image -> submit) over the bearer-token API, as bench/labeling.py runs it.

Counted with a before_cursor_execute listener on the test's connection; the tests' own savepoint
bookkeeping (each request's session is a savepoint inside the test's transaction) is not counted.
The budget (issue 14): at most 2 statements for next (here 1, and the first showing's stamp), 1 for
the image's authorization and 4 for submit, with the label's revision and the queue item's status
written; the bearer token is checked inside the first of them (AUTH below). Stated exceptions are
listed with each budget.
"""

# ruff: noqa: F811  (fixtures imported from labeling_fixtures are used as arguments)
from __future__ import annotations

import uuid

import pytest
from helpers import recorded_statements
from labeling_fixtures import make_item, rater_queue  # noqa: F401  (fixtures)

# The bearer token: on the hot path's views, checked inside their first read (auth.token_grants)
# once this process has checked it in full less than a minute ago, so no query of its own. The full
# check (the token joined with its user and roles, one query; its last-use stamp once a minute) runs on
# every other view, and on these when the token is new to the process (the fixture's first request).
AUTH = 0
# the next item with its queue's size, read only while the caller is one of the project's raters: one
# query (a second only when nothing is pending: the skipped items, then whether the caller is a rater)
NEXT = 1
# the first showing of an item adds its stamp: one UPDATE that also checks the item is still the rater's
# (and, on PostgreSQL, the project's shared queue lock before it: see allocation.queue)
FIRST_SHOW = 1
IMAGE = 1  # the item joined with its image's display key, authorized by the rater's membership
# submit (issue 14's budget: 4, the revision and any audit row included): the item with its project and
# the rater's current label, read in one statement, then the writes. SQLite: that read (a write
# request's transaction began IMMEDIATE, so it already holds the database's one write lock; the fixture
# marks the tests' connection the same way), the label, its revision and the item's status: 4.
# PostgreSQL: the project's queue lock (found from the item's id), the read with the item locked FOR
# UPDATE, and one statement writing the label, its revision and the item's status (data-modifying CTEs): 3.
SUBMIT = 4
# a changed label locks the label itself (FOR UPDATE, against a concurrent scale migration), writes it,
# its revision and its audit event (label.change); the item's status is already done (no write)
SUBMIT_CHANGE = 5  # + the queue lock on PostgreSQL


@pytest.fixture()
def counter(connection):
    """Statements sent on the test's connection (savepoint bookkeeping left out)."""
    with recorded_statements(connection) as seen:
        yield seen


@pytest.fixture()
def cycle(app, connection, rater_queue):
    if connection.dialect.name == "sqlite":
        # as a production write request's connection: its transaction began IMMEDIATE (labeler/db.py)
        connection.execution_options(sqlite_immediate=True)
    client, headers = app.test_client(), {"Authorization": f"Bearer {rater_queue.raw}"}
    # the token's first use stamps last_used_at (once a minute): not part of the measured cycles
    assert client.get("/api/v1/icd10?q=acne", headers=headers).status_code == 200
    return client, headers, rater_queue.project, rater_queue.items


def _count(counter, client, method, url, **kw):
    counter.clear()
    resp = client.open(url, method=method, **kw)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp, list(counter)


def _pg(statements):
    """The queue lock and the re-read under it, PostgreSQL only (0 on SQLite)."""
    return sum("pg_advisory_xact_lock" in s for s in statements)


def test_statements_per_label_cycle(cycle, counter):
    client, headers, project, items = cycle
    for n in range(2):  # the second cycle: the first showing of an item is stamped on each
        resp, next_sql = _count(
            counter, client, "GET", f"/api/v1/projects/{project.id}/queue/next", headers=headers
        )
        item = resp.json["item"]
        assert item["id"] == items[n].public_id
        assert len(next_sql) <= AUTH + NEXT + FIRST_SHOW + _pg(next_sql), next_sql

        resp, image_sql = _count(counter, client, "GET", item["image_url"], headers=headers)
        assert resp.data.startswith(b"\xff\xd8")
        assert len(image_sql) <= AUTH + IMAGE, image_sql
        assert "api_tokens" in image_sql[0], image_sql  # the token, checked in that statement

        body = {"decision": "healthy_skin", "base_version": 0, "submission_id": uuid.uuid4().hex}
        url = f"/api/v1/items/{item['id']}/label"
        resp, submit_sql = _count(counter, client, "PUT", url, json=body, headers=headers)
        assert resp.json["version"] == 1
        assert len(submit_sql) <= AUTH + SUBMIT, submit_sql


def test_statement_budget_holds_for_a_changed_label(cycle, counter):
    """A second version writes the audit event (label.change) instead of the item's status."""
    client, headers, _project, items = cycle
    url = f"/api/v1/items/{items[0].public_id}/label"
    first = {"decision": "no_skin", "base_version": 0, "submission_id": uuid.uuid4().hex}
    assert client.put(url, json=first, headers=headers).status_code == 200
    body = {"decision": "healthy_skin", "base_version": 1, "submission_id": uuid.uuid4().hex}
    resp, sql = _count(counter, client, "PUT", url, json=body, headers=headers)
    assert resp.json["version"] == 2
    assert any("INSERT INTO audit" in s for s in sql), sql
    assert len(sql) <= AUTH + SUBMIT_CHANGE + _pg(sql), sql


def test_a_whole_local_image_goes_to_the_servers_file_wrapper(cycle):
    """The display image is handed to wsgi.file_wrapper (gunicorn: sendfile) after the authorization
    check, with the blinding headers; a range still streams its bytes; an id not in the rater's queue gets a 404."""
    client, headers, project, _items = cycle
    item = client.get(f"/api/v1/projects/{project.id}/queue/next", headers=headers).json["item"]
    wrapped = []

    def file_wrapper(filelike, block_size=8192):
        wrapped.append(filelike)
        return iter(lambda: filelike.read(block_size), b"")

    env = {"wsgi.file_wrapper": file_wrapper}
    resp = client.get(item["image_url"], headers=headers, environ_base=env)
    assert resp.status_code == 200
    assert resp.data == b"\xff\xd8 not really a jpeg \xff\xd9"
    # a real file for sendfile (fileno), closed once read to its end
    assert len(wrapped) == 1 and callable(wrapped[0].fileno) and wrapped[0].read() == b""
    assert resp.headers["Cache-Control"] == "private, no-store"
    assert "ETag" not in resp.headers and "Last-Modified" not in resp.headers
    assert "Content-Disposition" not in resp.headers
    assert resp.content_length == len(resp.data)
    # a range: the streamed pieces, not the wrapper
    ranged = client.get(
        item["image_url"], headers={**headers, "Range": "bytes=0-1"}, environ_base=env
    )
    assert ranged.status_code == 206 and ranged.data == b"\xff\xd8" and len(wrapped) == 1
    # the authorization check comes first: a stranger's request opens nothing
    other = client.get(
        item["image_url"].replace(item["id"], "x" * len(item["id"])),
        headers=headers,
        environ_base=env,
    )
    assert other.status_code == 404 and len(wrapped) == 1


def test_submit_can_answer_with_the_next_item(cycle, counter, db):
    """PUT .../label?next=1 answers with the next item (served and stamped as GET .../queue/next would),
    one round trip fewer per label; at the end of the queue next is null; a bad flag is refused (422) and saves nothing."""
    from sqlalchemy import select

    from labeler.allocation.models import QueueItem

    client, headers, project, items = cycle
    item = client.get(f"/api/v1/projects/{project.id}/queue/next", headers=headers).json["item"]
    body = {"decision": "healthy_skin", "base_version": 0, "submission_id": uuid.uuid4().hex}
    bad = client.put(f"/api/v1/items/{item['id']}/label?next=2", json=body, headers=headers)
    assert bad.status_code == 422 and "next" in bad.get_data(as_text=True)
    assert (
        db.scalar(select(QueueItem.status).where(QueueItem.public_id == item["id"])).value
        == "pending"
    )
    for n, expected in enumerate([items[1], items[2], None]):
        url = f"/api/v1/items/{item['id']}/label?next=1"
        body = {"decision": "no_skin", "base_version": 0, "submission_id": uuid.uuid4().hex}
        resp, sql = _count(counter, client, "PUT", url, json=body, headers=headers)
        assert resp.json["version"] == 1 and resp.json["item"] == item["id"]
        nxt = resp.json["next"]
        if expected is None:
            assert nxt is None
            break
        assert nxt["id"] == expected.public_id and nxt["image_url"].endswith(f"/{nxt['id']}/image")
        assert nxt["total"] == len(items) and nxt["position"] == expected.position
        assert nxt["done"] == n + 1  # the progress the labeling page shows, current after this save
        shown = db.scalar(select(QueueItem.shown_at).where(QueueItem.id == expected.id))
        assert shown is not None  # stamped: no rebalance moves it now
        # the submit's statements, then the next item's (one query) and its stamp. PostgreSQL: the
        # submit's queue lock (within SUBMIT) is the same project's, still held by this transaction:
        # the stamp does not ask for it again
        assert _pg(sql) <= 1, (n, sql)
        assert len(sql) <= AUTH + SUBMIT + NEXT + FIRST_SHOW, (n, sql)
        item = nxt


def test_no_cached_identity_outlives_a_deactivation_or_a_removal(cycle, db):
    """The token, its user, the user's roles and the project membership are read on every request:
    a deactivated account, a role taken away or a rater removed from the project is refused at once."""
    from sqlalchemy import delete

    from labeler.auth.models import User, UserRole
    from labeler.projects.models import MemberRole, ProjectMember

    client, headers, project, items = cycle
    next_url = f"/api/v1/projects/{project.id}/queue/next"
    item = client.get(next_url, headers=headers).json["item"]
    rater = db.get(User, items[0].rater_id)

    rater.active = False
    db.flush()
    refused = client.get(next_url, headers=headers)
    assert refused.status_code == 401 and refused.json["error"]["code"] == "account_deactivated"
    rater.active = True
    db.flush()
    image = client.get(item["image_url"], headers=headers)
    assert image.status_code == 200 and image.data.startswith(b"\xff\xd8")
    image.close()

    roles = db.execute(delete(UserRole).where(UserRole.user_id == rater.id)).rowcount
    db.expire_all()
    assert roles and client.get(next_url, headers=headers).status_code == 403
    db.add(UserRole(user_id=rater.id, role="rater"))
    db.flush()
    assert client.get(next_url, headers=headers).status_code == 200

    db.execute(
        delete(ProjectMember).where(
            ProjectMember.project_id == project.id,
            ProjectMember.user_id == rater.id,
            ProjectMember.role == MemberRole.rater,
        )
    )
    db.flush()
    assert client.get(next_url, headers=headers).status_code == 404
    assert client.get(item["image_url"], headers=headers).status_code == 404
    body = {"decision": "no_skin", "base_version": 0, "submission_id": uuid.uuid4().hex}
    put = client.put(f"/api/v1/items/{item['id']}/label", json=body, headers=headers)
    assert put.status_code == 404


def test_a_first_label_written_meanwhile_is_found_not_duplicated(
    db, make_user, make_project, make_item
):
    """Two first submissions that both read "no label yet" (allocation.queue.item_for_submit): the
    second's insert writes nothing (ON CONFLICT DO NOTHING, no savepoint); a retry of the same
    submission gets the saved label, a different one a 409 with the saved answer; one label, one revision."""
    from sqlalchemy import func, select

    from labeler.errors import Conflict
    from labeler.labeling.models import Label, LabelRevision
    from labeler.labeling.services import submit_label

    rater = make_user(None, "rater")
    item = make_item(rater, make_project())

    def submit(decision: str, submission_id: str, **kw):
        return submit_label(
            db,
            rater,
            item,
            {"decision": decision},
            base_version=0,
            submission_id=submission_id,
            time_spent_ms=500,
            **kw,
        )

    first = submit("no_skin", "first")
    assert first.id is not None and first.version == 1
    again = submit("no_skin", "first", labeled=False)  # read before the first one committed
    assert (again.id, again.version, again.decision) == (first.id, 1, "no_skin")
    with pytest.raises(Conflict) as refused:
        submit("healthy_skin", "second", labeled=False)
    assert refused.value.extra["current"]["decision"] == "no_skin"
    assert db.scalar(select(func.count(Label.id))) == 1
    assert db.scalar(select(func.count(LabelRevision.id))) == 1
    assert db.get(Label, first.id).decision == "no_skin"
