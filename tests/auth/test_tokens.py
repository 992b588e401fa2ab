"""Personal API tokens: shown once in the creating response (never in the cookie), expiry, last use."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from labeler.auth.models import ApiToken
from labeler.auth.services import (
    DEFAULT_TOKEN_DAYS,
    MAX_TOKEN_DAYS,
    create_token,
    user_for_token,
)
from labeler.db import utcnow
from labeler.errors import ValidationError

TOKEN_RE = re.compile(r'<code id="new-token" class="token">(lbl_[^<]+)</code>')


def tokens_of(db, user) -> list[ApiToken]:
    db.expire_all()
    return list(db.scalars(select(ApiToken).where(ApiToken.user_id == user.id)))


def days_valid(token: ApiToken) -> float:
    return (token.expires_at_utc - utcnow()).total_seconds() / 86400


def create(client, **form):
    return client.post("/account/tokens", data={"csrf_token": client.csrf, "name": "s", **form})


def test_new_token_is_shown_in_the_response_and_never_stored_in_the_cookie(
    app, client, db, make_user, login_as
):
    user = make_user("alice@example.test", "lead")
    login_as(user)

    resp = create(client, name="export script")

    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    raw = TOKEN_RE.search(resp.get_data(as_text=True)).group(1)
    assert user_for_token(db, raw).id == user.id
    with client.session_transaction() as sess:
        assert raw not in repr(dict(sess))
    assert raw not in resp.headers.get("Set-Cookie", "")
    again = client.get("/account/tokens")  # shown once: the listing has only the prefix
    assert raw not in again.get_data(as_text=True) and again.headers["Cache-Control"] == "no-store"
    assert raw[:12] in again.get_data(as_text=True)


@pytest.mark.parametrize(
    ("choice", "days"), [(None, DEFAULT_TOKEN_DAYS), ("30", 30), ("90", 90), ("365", 365)]
)
def test_token_expiry_chosen_at_creation(client, db, make_user, login_as, choice, days):
    user = make_user("alice@example.test", "rater")
    login_as(user)

    resp = create(client, **({"expires_in_days": choice} if choice else {}))

    assert resp.status_code == 200
    (token,) = tokens_of(db, user)
    assert days - 0.01 < days_valid(token) <= days
    assert token.expires_at.strftime("%Y-%m-%d %H:%M") in resp.get_data(as_text=True)


def test_token_without_expiry(client, db, make_user, login_as):
    user = make_user("alice@example.test", "rater")
    login_as(user)
    assert create(client, expires_in_days="none").status_code == 200
    (token,) = tokens_of(db, user)
    assert token.expires_at is None


@pytest.mark.parametrize("choice", ["7", "0", "-1", "forever", "", "1e3"])
def test_unoffered_expiry_is_refused(client, db, make_user, login_as, choice):
    user = make_user("alice@example.test", "rater")
    login_as(user)
    resp = create(client, expires_in_days=choice)
    assert resp.status_code == 422
    assert "30, 90 or 365 days" in resp.get_data(as_text=True)
    assert tokens_of(db, user) == []


def test_expired_token_gets_a_clear_401(client, db, make_user):
    user = make_user("alice@example.test", "lead")
    token, raw = create_token(db, user, user, "old script", expires_in_days=30)
    headers = {"Authorization": f"Bearer {raw}"}
    assert client.get("/api/v1/projects", headers=headers).status_code == 200

    token.expires_at = utcnow() - timedelta(minutes=1)
    db.flush()

    resp = client.get("/api/v1/projects", headers=headers)
    assert resp.status_code == 401
    assert resp.json["error"]["code"] == "token_expired"
    assert "expired on" in resp.json["error"]["message"]
    assert user_for_token(db, raw) is None


def test_revoked_token_says_so(client, db, make_user):
    user = make_user("alice@example.test", "lead")
    token, raw = create_token(db, user, user, "x")
    token.revoked_at = utcnow()
    db.flush()
    resp = client.get("/api/v1/projects", headers={"Authorization": f"Bearer {raw}"})
    assert resp.status_code == 401 and resp.json["error"]["code"] == "token_revoked"


def test_tokens_page_shows_expiry_last_use_and_state(client, db, make_user, login_as):
    user = make_user("alice@example.test", "lead")
    used, raw = create_token(db, user, user, "used", expires_in_days=30)
    expired, _ = create_token(db, user, user, "expired", expires_in_days=30)
    expired.expires_at = utcnow() - timedelta(days=1)
    forever, _ = create_token(db, user, user, "forever", expires_in_days=None)
    db.flush()
    client.get("/api/v1/projects", headers={"Authorization": f"Bearer {raw}"})
    login_as(user)
    db.expire_all()

    html = client.get("/account/tokens").get_data(as_text=True)

    def row(token: ApiToken) -> str:
        match = re.search(
            rf'<tr data-token="{re.escape(token.prefix)}">(.*?)</tr>', html, re.DOTALL
        )
        assert match, html
        return match.group(1)

    used = db.get(ApiToken, used.id)
    assert used.last_used_at is not None
    assert used.last_used_at.strftime("%Y-%m-%d %H:%M") in row(used)
    assert used.expires_at.strftime("%Y-%m-%d %H:%M") in row(used)
    assert '<td class="state">active</td>' in row(used)
    assert '<td class="state">expired</td>' in row(expired)
    assert '<td class="expires">never</td>' in row(forever)
    assert '<td class="last-used">never</td>' in row(forever)


@pytest.mark.parametrize("days", [0, -5, MAX_TOKEN_DAYS + 1, True, "30"])
def test_service_refuses_bad_lifetimes(db, make_user, days):
    user = make_user("alice@example.test", "rater")
    with pytest.raises(ValidationError, match="between 1 and"):
        create_token(db, user, user, "x", expires_in_days=days)


@pytest.mark.parametrize(
    ("args", "days"), [([], 90), (["--days", "30"], 30), (["--days", "none"], None)]
)
def test_cli_token_days(runner, db, make_user, args, days):
    user = make_user("alice@example.test", "rater")
    res = runner.invoke(args=["users", "token", "alice@example.test", *args])
    assert res.exit_code == 0, res.output
    raw = res.stdout.strip()
    assert raw.startswith("lbl_") and "\n" not in raw
    (token,) = tokens_of(db, user)
    if days is None:
        assert token.expires_at is None and "expires: never" in res.stderr
    else:
        assert days - 0.01 < days_valid(token) <= days


@pytest.mark.parametrize(("value", "message"), [("soon", "number of days"), ("0", "between 1 and")])
def test_cli_token_days_errors(runner, db, make_user, value, message):
    user = make_user("alice@example.test", "rater")
    res = runner.invoke(args=["users", "token", "alice@example.test", "--days", value])
    assert res.exit_code != 0 and message in res.output
    assert tokens_of(db, user) == []


@pytest.mark.parametrize("loader", ["token", "session"])
def test_the_tokens_user_is_built_as_a_query_would_load_it(app, db, connection, make_user, loader):
    """authenticate_token (a bearer token's user) and user_with_roles (a session cookie's) build the
    user from one query's rows, not with a second query for the roles: in a new session, the object
    is persistent and clean, holds every column as stored and its roles, asks for nothing more when
    read, and a change to it is written as a change (its history starts clean)."""
    from sqlalchemy import event, inspect

    from labeler.auth.models import Role, User
    from labeler.auth.services import authenticate_token, user_with_roles

    stored = make_user("carol@example.test", "rater", "lead", name="Carol")
    _token, raw = create_token(db, stored, stored, "script")
    db.commit()  # a savepoint inside the test's transaction: the other session sees it
    row = connection.execute(select(User.__table__).where(User.id == stored.id)).mappings().one()
    columns = {a.key: row[a.columns[0].name] for a in inspect(User).column_attrs}  # as stored

    session = app.extensions["labeler_db"].session_factory()
    try:
        sent: list[str] = []
        event.listen(connection, "before_cursor_execute", lambda *a: sent.append(a[2]))
        if loader == "token":
            user = authenticate_token(session, raw, stamp=False)
        else:
            user = user_with_roles(session, stored.id)
        reads = [s for s in sent if not s.startswith("SAVEPOINT")]  # the session's own
        assert len(reads) == 1, reads  # the user and the roles in one statement
        sent.clear()
        state = inspect(user)
        assert state.persistent and not state.modified and user in session
        assert session.get(User, stored.id) is user  # in the identity map
        assert {key: getattr(user, key) for key in columns} == columns
        assert user.roles == frozenset({Role.rater, Role.lead})
        assert all(r.user is user for r in user.role_rows)
        assert sent == []  # every column and the roles came with the token's row
        assert not session.dirty
        user.name = "Carol B."
        session.flush()
        assert any(s.startswith("UPDATE users") for s in sent)
        assert list(inspect(user).attrs.name.history.unchanged) == ["Carol B."]
    finally:
        session.rollback()
        session.close()


def test_a_session_user_without_roles_or_gone(app, db):
    from labeler.auth.services import add_user, user_with_roles

    stored = add_user(db, None, "dora@example.test", "Dora", set())
    db.commit()
    session = app.extensions["labeler_db"].session_factory()
    try:
        user = user_with_roles(session, stored.id)
        assert user.email == "dora@example.test" and user.roles == frozenset()
        assert user_with_roles(session, stored.id + 1000) is None
    finally:
        session.rollback()
        session.close()


def test_a_session_user_held_and_expired_is_read_again(app, db, make_user):
    """user_with_roles answers a user its session already holds as session.get does: an expired one
    is read again, so one deleted in between is None (not an object whose next read fails)."""
    from labeler.auth.models import User
    from labeler.auth.services import user_with_roles

    stored = make_user("erin@example.test")
    db.commit()
    session = app.extensions["labeler_db"].session_factory()
    try:
        held = user_with_roles(session, stored.id)
        assert held.active
        db.delete(db.get(User, stored.id))
        db.commit()
        session.expire(held)
        assert user_with_roles(session, stored.id) is None
    finally:
        session.rollback()
        session.close()
