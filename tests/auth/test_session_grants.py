"""A signed-in browser session on the hot path's views (queue next, display image, label save): once
this process has read the session's user in full, the next minute's requests check the user inside the
view's first read (labeler/auth/token_grants.py, SessionGrant), never by a memory of it: a session
ended elsewhere, a deactivated account or a taken role is refused by the very next request, and
nothing is answered under a session user not checked in that request."""

# ruff: noqa: F811  (fixtures imported from labeling_fixtures are used as arguments)
from __future__ import annotations

import sys
import uuid
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "labeling"))
from helpers import recorded_statements
from labeling_fixtures import make_item, rater_queue  # noqa: F401  (fixtures)

from labeler.db import utcnow


def full_loads(statements: list[str]) -> int:
    """The session user loader's own query: the user joined with its roles."""
    return sum("FROM users LEFT OUTER JOIN user_roles" in s for s in statements)


def checked_reads(statements: list[str]) -> int:
    """Statements carrying the session's check (SESSION_STILL_VALID): no token in them."""
    return sum("users.session_generation = " in s and "api_tokens" not in s for s in statements)


@pytest.fixture()
def browser(app, connection, login_as, rater_queue):
    """The rater signed in (the sign-in's page read the user in full), the statements recorded."""
    client = login_as(rater_queue.rater)
    with recorded_statements(connection) as seen:
        yield SimpleNamespace(
            client=client,
            seen=seen,
            next_url=f"/api/v1/projects/{rater_queue.project.id}/queue/next",
            **vars(rater_queue),
        )


def _save(browser, item_id, *, next_item=True, **kw):
    url = f"/api/v1/items/{item_id}/label" + ("?next=1" if next_item else "")
    body = {"decision": "no_skin", "base_version": 0, "submission_id": uuid.uuid4().hex}
    kw.setdefault("json", body)
    return browser.client.put(url, headers={"X-CSRFToken": browser.client.csrf}, **kw)


def _labels_of(db, item) -> int:
    from labeler.labeling.models import Label

    db.expire_all()
    return db.scalar(
        select(func.count(Label.id)).where(
            Label.rater_id == item.rater_id, Label.image_id == item.image_id
        )
    )


def test_the_hot_views_check_the_session_in_their_first_read(browser, app, monkeypatch):
    client, seen = browser.client, browser.seen
    item = client.get(browser.next_url).json["item"]
    assert full_loads(seen) == 0 and checked_reads(seen[:1]) == 1, seen
    seen.clear()
    saved = _save(browser, item["id"])
    assert saved.status_code == 200 and saved.json["version"] == 1
    assert saved.json["next"]["id"] == browser.items[1].public_id
    assert full_loads(seen) == 0, seen
    # the save's first read carries the check (PostgreSQL: the queue lock comes first)
    firsts = [s for s in seen if "pg_advisory" not in s]
    assert checked_reads(firsts[:1]) == 1 and "queue_items" in firsts[0], seen
    # the display image, when the route answers it (here: the layer below Flask is bypassed)
    monkeypatch.setattr(app, "wsgi_app", app.wsgi_app.wsgi_app)
    seen.clear()
    image = client.get(saved.json["next"]["image_url"])
    assert image.status_code == 200 and image.data.startswith(b"\xff\xd8")
    image.close()
    assert full_loads(seen) == 0 and checked_reads(seen[:1]) == 1, seen
    # a view that is not marked reads the user in full, on every request
    seen.clear()
    assert client.get(f"/api/v1/items/{item['id']}/label").status_code == 200
    assert full_loads(seen) == 1 and checked_reads(seen) == 0, seen


@pytest.mark.parametrize("change", ["signed out elsewhere", "deactivated", "rater role taken"])
def test_a_changed_user_is_refused_by_the_next_request_and_the_session_ended(browser, db, change):
    from labeler.auth.models import Role
    from labeler.auth.services import end_sessions, set_active, set_roles

    client = browser.client
    item = client.get(browser.next_url).json["item"]
    if change == "signed out elsewhere":
        end_sessions(db, browser.rater)
    elif change == "deactivated":
        set_active(db, None, browser.rater, False)
    else:
        set_roles(db, None, browser.rater, {Role.lead})
    db.flush()
    browser.seen.clear()
    refused = _save(browser, item["id"])
    assert refused.status_code == 401, refused.get_data(as_text=True)
    assert refused.json["error"]["code"] == "unauthorized"
    # the checked read found nothing, the check alone refused, then the full read: signed out
    assert checked_reads(browser.seen) == 2 and full_loads(browser.seen) == 1, browser.seen
    assert browser.seen.index(next(s for s in browser.seen if "user_roles.id AS role_id" in s)) > 0
    assert "session=;" in refused.headers.get("Set-Cookie", ""), refused.headers
    assert _labels_of(db, browser.items[0]) == 0
    assert client.get(browser.next_url).status_code == 401  # the session is gone


def test_nothing_is_answered_before_the_session_user_was_checked(browser, db):
    """A session ended elsewhere whose request would fail before any checked statement (a malformed
    body, another rater's item) gets 401, not the 400 or 404 an unchecked answer would have given."""
    from labeler.auth.services import end_sessions

    client = browser.client
    item = client.get(browser.next_url).json["item"]
    stranger = "x" * len(item["id"])
    bad = _save(browser, item["id"], json=None, data="{not json")
    assert bad.status_code == 400  # a signed-in rater's malformed body
    assert _save(browser, stranger).status_code == 404
    end_sessions(db, browser.rater)
    db.flush()
    bad = _save(browser, item["id"], json=None, data="{not json")
    assert bad.status_code == 401 and bad.json["error"]["code"] == "unauthorized"
    assert client.get(browser.next_url).status_code == 401


def test_a_stranger_item_under_a_stale_session_is_refused_not_missing(browser, db):
    from labeler.auth.services import set_active

    item = browser.client.get(browser.next_url).json["item"]
    set_active(db, None, browser.rater, False)
    db.flush()
    assert _save(browser, "x" * len(item["id"])).status_code == 401


def test_a_removed_rater_gets_a_plain_404_without_a_rerun(browser, db):
    """A checked read that finds no row runs the session's check alone: the user still passes, so
    the 404 is the answer (no second attempt, no full read); nothing is written."""
    from labeler.projects.models import MemberRole
    from labeler.projects.services import remove_member

    item = browser.client.get(browser.next_url).json["item"]
    remove_member(db, None, browser.project, browser.rater, MemberRole.rater)
    db.flush()
    browser.seen.clear()
    resp = _save(browser, item["id"])
    assert resp.status_code == 404
    assert full_loads(browser.seen) == 0 and checked_reads(browser.seen) == 2, browser.seen
    assert _labels_of(db, browser.items[0]) == 0


def test_the_user_is_read_in_full_again_after_a_minute(browser, monkeypatch):
    from labeler.auth import login, services

    client, seen = browser.client, browser.seen
    later = utcnow() + timedelta(minutes=1, seconds=1)
    for module in (login, services):
        monkeypatch.setattr(module, "utcnow", lambda: later)
    assert client.get(browser.next_url).status_code == 200
    assert full_loads(seen) == 1, seen  # too old: read in full, and remembered again
    seen.clear()
    assert client.get(browser.next_url).status_code == 200
    assert full_loads(seen) == 0, seen


def test_a_session_of_another_generation_is_read_in_full(browser, db, login_as):
    """Signed in again after signing out everywhere: the new session's generation differs from
    what the process remembered, so it is read in full once, then trusted."""
    from labeler.auth.services import end_sessions

    client, seen = browser.client, browser.seen
    end_sessions(db, browser.rater)
    db.flush()
    client.csrf = None  # the old session is gone: no sign-out to send
    login_as(browser.rater)  # its page read the new generation in full
    seen.clear()
    assert client.get(browser.next_url).status_code == 200
    assert full_loads(seen) == 0 and checked_reads(seen[:1]) == 1, seen


def test_a_lead_is_read_in_full_every_time(app, connection, db, make_user, login_as):
    """Only a rater's session is taken on trust (the check requires the role): a lead's user is
    read in full by each request, never by a checked read that must fail first."""
    from labeler.auth.login import GRANTS
    from labeler.auth.token_grants import session_key

    lead = make_user(None, "lead")
    client = login_as(lead)
    with recorded_statements(connection) as seen:
        for _ in range(2):
            seen.clear()
            assert client.get("/api/v1/projects/999999/queue/next").status_code == 404
            assert full_loads(seen) == 1 and checked_reads(seen) == 0, seen
    assert app.extensions[GRANTS].get(session_key(lead.id)) is None


def test_a_token_and_a_session_of_one_user_are_remembered_apart(browser, app, db):
    """The same rater with a script (bearer token) and a browser: each is checked by its own
    statement form, and revoking the token leaves the browser signed in."""
    from labeler.auth.services import revoke_token

    headers = {"Authorization": f"Bearer {browser.raw}"}
    client = browser.client
    assert app.test_client().get(browser.next_url, headers=headers).status_code == 200
    revoke_token(db, browser.rater, browser.token.id)
    db.flush()
    assert app.test_client().get(browser.next_url, headers=headers).status_code == 401
    browser.seen.clear()
    assert client.get(browser.next_url).status_code == 200
    assert full_loads(browser.seen) == 0 and checked_reads(browser.seen[:1]) == 1


@pytest.mark.parametrize("view", ["queue next", "display image"])
def test_the_other_hot_views_refuse_a_session_ended_elsewhere_at_once(
    browser, app, db, monkeypatch, view
):
    from labeler.auth.services import end_sessions

    client = browser.client
    item = client.get(browser.next_url).json["item"]
    url = browser.next_url if view == "queue next" else item["image_url"]
    monkeypatch.setattr(app, "wsgi_app", app.wsgi_app.wsgi_app)  # the route, not the image layer
    end_sessions(db, browser.rater)
    db.flush()
    browser.seen.clear()
    refused = client.get(url)
    assert refused.status_code == 401, refused.get_data(as_text=True)
    assert checked_reads(browser.seen) == 2 and full_loads(browser.seen) == 1, browser.seen
    assert "session=;" in refused.headers.get("Set-Cookie", "")


def test_a_rater_role_row_gone_without_a_new_generation_is_refused_by_the_permission(browser, db):
    """The check requires the rater role itself, not only the generation: a role row deleted
    behind the services' back fails the checked read, the full read keeps the session (the
    generation still matches) and the permission check refuses the save (403); nothing is written."""
    from sqlalchemy import delete

    from labeler.auth.models import Role, UserRole

    item = browser.client.get(browser.next_url).json["item"]
    db.execute(
        delete(UserRole).where(UserRole.user_id == browser.rater.id, UserRole.role == Role.rater)
    )
    db.flush()
    browser.seen.clear()
    refused = _save(browser, item["id"])
    assert refused.status_code == 403, refused.get_data(as_text=True)
    assert checked_reads(browser.seen) == 2 and full_loads(browser.seen) == 1, browser.seen
    assert _labels_of(db, browser.items[0]) == 0
