"""Revocable sessions and API requests that answer for their Authorization header alone.

A session cookie is only as good as the user's session generation it carries: signing out,
deactivation, reactivation and a role change each end every copy of the cookies issued before.
"""

from __future__ import annotations

import pytest
from helpers import CSRF_META, Clock, login
from sqlalchemy import select

from labeler.auth import login as login_module
from labeler.auth.models import Role
from labeler.auth.services import create_token
from labeler.projects.models import Project

HOME = "/"


def copy_cookie(app, client):
    """A second browser holding a copy of `client`'s session cookie (as an attacker who copied it)."""
    name = app.config["SESSION_COOKIE_NAME"]
    cookie = client.get_cookie(name)
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie(name, cookie.value)
    return thief


def signed_in(client) -> bool:
    resp = client.get(HOME)
    if resp.status_code == 200:
        return True
    assert resp.status_code == 302 and "/auth/login" in resp.headers["Location"], resp.status
    return False


def bearer(db, user, **kw) -> dict[str, str]:
    _token, raw = create_token(db, user, user, "script", **kw)
    db.flush()
    return {"Authorization": f"Bearer {raw}"}


# --- revocation ------------------------------------------------------------------------------------


def test_cookie_copied_before_sign_out_is_refused_after(app, make_user, login_as):
    client = login_as(make_user("alice@example.test", "rater"))
    thief = copy_cookie(app, client)
    assert signed_in(thief)

    client.post("/auth/logout", data={"csrf_token": client.csrf})

    assert not signed_in(client)
    assert not signed_in(thief)
    assert thief.get("/api/v1/projects").status_code == 401


def test_deactivate_and_reactivate_does_not_revive_old_cookies(app, db, make_user, login_as):
    admin = make_user("boss@example.test", "admin")
    rater = make_user("rater@example.test", "rater")
    rater_client = login_as(rater)
    kept = copy_cookie(app, rater_client)  # not used while the account is deactivated
    admin_client = app.test_client()
    login(admin_client, admin)

    for active in ("0", "1"):
        resp = admin_client.post(
            f"/admin/users/{rater.id}/active",
            data={"csrf_token": admin_client.csrf, "active": active},
        )
        assert resp.status_code == 302

    assert not signed_in(kept)
    assert not signed_in(rater_client)
    fresh = app.test_client()
    login(fresh, rater)  # signing in again works
    assert signed_in(fresh)


def test_role_change_ends_old_sessions(app, db, make_user, login_as):
    admin = make_user("boss@example.test", "admin")
    rater = make_user("rater@example.test", "rater")
    rater_client = login_as(rater)
    admin_client = app.test_client()
    login(admin_client, admin)
    assert signed_in(rater_client)

    resp = admin_client.post(
        f"/admin/users/{rater.id}/roles",
        data={"csrf_token": admin_client.csrf, "role": ["rater", "lead"]},
    )

    assert resp.status_code == 302
    assert not signed_in(rater_client)
    assert signed_in(admin_client)


def test_saving_the_same_roles_ends_no_session(app, make_user, login_as):
    admin = make_user("boss@example.test", "admin")
    rater = make_user("rater@example.test", "rater")
    rater_client = login_as(rater)
    admin_client = app.test_client()
    login(admin_client, admin)

    admin_client.post(
        f"/admin/users/{rater.id}/roles", data={"csrf_token": admin_client.csrf, "role": "rater"}
    )

    assert signed_in(rater_client)


def test_admin_changing_their_own_roles_stays_signed_in_but_old_copies_do_not(
    app, db, make_user, login_as
):
    admin = make_user("boss@example.test", "admin")
    client = login_as(admin)
    copy = copy_cookie(app, client)

    resp = client.post(
        f"/admin/users/{admin.id}/roles",
        data={"csrf_token": client.csrf, "role": ["admin", "lead"]},
    )

    assert resp.status_code == 302
    assert signed_in(client)
    assert not signed_in(copy)
    db.expire_all()
    assert Role.lead in db.get(type(admin), admin.id).roles


def test_sign_out_ends_the_users_other_sessions_too(app, make_user):
    """One generation per user: signing out anywhere signs that user out everywhere."""
    user = make_user("alice@example.test", "rater")
    laptop, phone = app.test_client(), app.test_client()
    login(laptop, user)
    login(phone, user)

    laptop.post("/auth/logout", data={"csrf_token": laptop.csrf})

    assert not signed_in(phone)


def test_cli_deactivation_ends_sessions(app, runner, make_user, login_as):
    client = login_as(make_user("alice@example.test", "rater"))
    res = runner.invoke(args=["users", "deactivate", "alice@example.test"])
    assert res.exit_code == 0, res.output
    assert not signed_in(client)


# --- an Authorization header is the only credential of its request ----------------------------------


@pytest.mark.parametrize(
    "header", ["Bearer x", "Bearer lbl_not-a-token", "Bearer ", "Basic YWxpY2U6cHc=", "lbl_x"]
)
def test_bad_authorization_header_never_runs_as_the_cookies_user(db, make_user, login_as, header):
    lead = make_user("lead@example.test", "lead")
    client = login_as(lead)

    page = client.get(HOME, headers={"Authorization": header})
    listing = client.get("/api/v1/projects", headers={"Authorization": header})
    # a write without the CSRF token: the header must not stand in for it
    create = client.post(
        "/api/v1/projects",
        json={"name": "made with a bogus header", "protocol": "quality"},
        headers={"Authorization": header},
    )

    assert page.status_code == listing.status_code == create.status_code == 401
    assert listing.json["error"]["message"]
    assert "Bearer" in listing.headers["WWW-Authenticate"]
    assert db.scalar(select(Project).where(Project.name == "made with a bogus header")) is None
    assert signed_in(client)  # the cookie itself is untouched


def test_valid_bearer_runs_as_the_tokens_user_not_the_cookies(db, make_user, login_as):
    lead = make_user("lead@example.test", "lead")
    other = make_user("other@example.test", "lead")
    client = login_as(lead)
    headers = bearer(db, other)

    resp = client.post(
        "/api/v1/projects", json={"name": "by token", "protocol": "quality"}, headers=headers
    )

    assert resp.status_code == 201, resp.json  # no CSRF token needed
    listing = client.get("/api/v1/projects", headers=headers).json["projects"]
    assert [p["name"] for p in listing] == ["by token"]
    own = client.get("/api/v1/projects").json["projects"]  # the cookie alone: the lead's view
    assert "by token" not in [p["name"] for p in own]


def test_authorization_header_neither_skips_nor_renews_the_idle_timeout(
    app, db, make_user, login_as, monkeypatch
):
    clock = Clock(1_900_000_000.0)
    monkeypatch.setattr(login_module, "clock", clock)
    lead = make_user("lead@example.test", "lead")
    client = login_as(lead)
    idle = app.config["SESSION_IDLE_MINUTES"] * 60
    headers = bearer(db, make_user("other@example.test", "rater"))

    clock.now += idle - 5
    assert client.get("/api/v1/projects", headers=headers).status_code == 200  # as the token user
    clock.now += 10  # idle for longer than allowed: the token request renewed nothing
    assert client.get("/api/v1/projects", headers={"Authorization": "Bearer x"}).status_code == 401
    assert not signed_in(client)


def test_bearer_only_requests_still_work_without_a_cookie(client, db, make_user):
    headers = bearer(db, make_user("lead@example.test", "lead"))
    assert client.get("/api/v1/projects", headers=headers).status_code == 200
    resp = client.get("/api/v1/projects", headers={"Authorization": "Bearer lbl_unknown"})
    assert resp.status_code == 401 and resp.json["error"]["message"] == "Unknown API token."


def test_a_header_request_neither_reads_nor_sends_the_session_cookie(
    app, db, make_user, login_as, monkeypatch
):
    """The cookie of a request with an Authorization header is not even verified (a forged one changes
    nothing), and the answer sets no cookie: the header is its only credential."""
    lead = make_user("lead@example.test", "lead")
    client = login_as(lead)
    headers = bearer(db, make_user("other@example.test", "rater"))
    signing = []
    interface = type(app.session_interface)
    original = interface.get_signing_serializer
    monkeypatch.setattr(
        interface,
        "get_signing_serializer",
        lambda self, a: signing.append(1) or original(self, a),
    )
    assert client.get("/api/v1/projects", headers=headers).status_code == 200
    assert signing == []  # the cookie was not opened
    app.session_interface._verified.clear()  # forgotten: the cookie request must verify it again
    assert (
        client.get("/api/v1/projects").status_code == 200 and signing
    )  # a cookie request opens it
    for _ in range(2):  # the second time too: nothing was stored by the first
        resp = client.get("/api/v1/projects", headers=headers)
        assert resp.status_code == 200 and "Set-Cookie" not in resp.headers
    client.set_cookie("session", "forged.value.xyz")
    resp = client.get("/api/v1/projects", headers=headers)
    assert resp.status_code == 200 and "Set-Cookie" not in resp.headers
    assert not signed_in(client)  # the forged cookie is no session for cookie requests either


def test_sign_in_page_csrf_still_guards_cookie_writes(client, make_user, login_as):
    """Without an Authorization header, a write needs the CSRF token as before."""
    login_as(make_user("lead@example.test", "lead"))
    resp = client.post("/api/v1/projects", json={"name": "x", "protocol": "quality"})
    assert resp.status_code == 400
    page = client.get(HOME).get_data(as_text=True)
    assert CSRF_META.search(page)


def test_generation_check_costs_no_extra_query(app, db, connection, make_user):
    """The loader compares the generation on the row it loads anyway: user + roles, nothing more."""
    from flask import session as flask_session
    from sqlalchemy import event

    user = make_user("alice@example.test", "rater")
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    loader = app.login_manager._user_callback
    with app.test_request_context():
        flask_session[login_module.GENERATION_KEY] = user.session_generation
        event.listen(connection, "before_cursor_execute", count)
        try:
            assert loader(str(user.id)).id == user.id
        finally:
            event.remove(connection, "before_cursor_execute", count)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert 1 <= len(selects) <= 2, selects  # the user row, then its roles (selectin)
    assert "users.session_generation" in selects[0]


def test_session_cookie_is_resent_at_most_once_a_minute_and_idle_still_expires(
    app, make_user, login_as, monkeypatch
):
    """The idle stamp is written (the cookie re-signed and re-sent) at most once a minute, not on every
    request; the idle timeout still ends a session that stays quiet for longer than allowed."""
    clock = Clock(1_900_000_000.0)
    monkeypatch.setattr(login_module, "clock", clock)
    client = login_as(make_user("lead@example.test", "lead"))
    name = app.config["SESSION_COOKIE_NAME"]

    def sends_cookie() -> bool:
        resp = client.get("/api/v1/projects")
        assert resp.status_code == 200
        return any(h.startswith(f"{name}=") for h in resp.headers.getlist("Set-Cookie"))

    sends_cookie()  # the first request after sign-in may still settle the session
    clock.now += 1
    assert not sends_cookie()
    clock.now += login_module.SEEN_AT_RESOLUTION - 2
    assert not sends_cookie()  # 59 s after the stamp: nothing to re-sign
    clock.now += 2
    assert sends_cookie()  # a minute later: the idle stamp moves, the cookie is re-sent
    idle = app.config["SESSION_IDLE_MINUTES"] * 60
    clock.now += idle - 5
    assert sends_cookie()  # activity within the idle window keeps the session
    clock.now += idle + 1
    assert not signed_in(client)
