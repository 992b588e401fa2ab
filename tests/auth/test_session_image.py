"""The labeling page's display images, asked for with the browser's session cookie, answered below
Flask (labeler/api/hot_image.py, auth/login.py trusted_session): only for a session the route would
take as it is, with the user's state checked in the one statement the layer sends; everything else
goes to the route, which renews, ends or refuses the session as it always did."""

# ruff: noqa: F811  (fixtures imported from labeling_fixtures are used as arguments)
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from flask_login.utils import _create_identifier

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "labeling"))
from helpers import Clock, login, recorded_statements, route_answer
from labeling_fixtures import dispatched, make_item, rater_queue  # noqa: F401  (fixtures)

from labeler.auth import login as login_module
from labeler.auth.login import session_identifier

T0 = 1_900_000_000.0


@pytest.fixture()
def page(app, connection, login_as, rater_queue, monkeypatch):
    """The rater signed in with a cookie (the session's clock held still), their first item served."""
    clock = Clock(T0)
    monkeypatch.setattr(login_module, "clock", clock)
    client = login_as(rater_queue.rater)
    item = client.get(f"/api/v1/projects/{rater_queue.project.id}/queue/next").json["item"]
    with recorded_statements(connection) as seen:
        yield type("Page", (), {"client": client, "clock": clock, "item": item, "seen": seen})


def _status(client, url, **kwargs):
    resp = client.get(url, **kwargs)
    resp.get_data()
    resp.close()
    return resp.status_code, resp.headers.get("Set-Cookie")


@pytest.mark.parametrize("accel", [False, True], ids=["file", "x-accel-redirect"])
def test_a_signed_in_raters_image_is_answered_below_flask_as_the_route_answers_it(
    app, page, dispatched, monkeypatch, accel
):
    monkeypatch.setitem(app.config, "X_ACCEL_REDIRECT", accel)
    url = page.item["image_url"]
    routed = route_answer(app, monkeypatch, page.client, url)
    assert routed[0] == 200
    dispatched.clear()
    page.seen.clear()
    resp = page.client.get(url)
    assert dispatched == [], "the image layer left the request to Flask"
    assert (resp.status_code, sorted(resp.headers.items()), resp.get_data()) == routed
    assert resp.headers["Vary"] == "Cookie" and "Set-Cookie" not in resp.headers
    # one statement: the route's read with the session user's check in it, no token's
    assert len(page.seen) == 1 and "queue_items" in page.seen[0], page.seen
    assert "session_generation" in page.seen[0] and "api_tokens" not in page.seen[0]
    assert resp.headers["Cache-Control"] == "private, no-store"
    assert not {"ETag", "Last-Modified", "Content-Disposition"} & set(resp.headers.keys())


def test_a_session_due_for_renewal_or_expired_goes_to_the_route(app, page, dispatched):
    client, url = page.client, page.item["image_url"]
    page.clock.now += login_module.SEEN_AT_RESOLUTION  # the idle stamp is due: the route renews it
    status, cookie = _status(client, url)
    assert status == 200 and cookie and dispatched == [url]
    dispatched.clear()
    assert _status(client, url) == (200, None) and dispatched == []  # renewed: below Flask again
    page.clock.now += app.config["SESSION_IDLE_MINUTES"] * 60 + 1  # idle too long: signed out
    status, cookie = _status(client, url)
    assert status == 401 and cookie and dispatched == [url]
    assert _status(client, url)[0] == 401


def test_the_absolute_timeout_goes_to_the_route(app, page, dispatched):
    client, url = page.client, page.item["image_url"]
    absolute = app.config["SESSION_ABSOLUTE_HOURS"] * 3600
    step = login_module.SEEN_AT_RESOLUTION
    while (
        page.clock.now + step <= T0 + absolute
    ):  # active all along: only the absolute limit is hit
        page.clock.now += step
        assert _status(client, url)[0] == 200
    page.clock.now = T0 + absolute + 1
    dispatched.clear()
    assert _status(client, url)[0] == 401 and dispatched == [url]


def test_a_session_ended_elsewhere_a_deactivated_user_or_a_removed_rater_is_refused_by_the_route(
    page, db, rater_queue, dispatched
):
    from labeler.auth.services import end_sessions, set_active
    from labeler.projects.models import MemberRole
    from labeler.projects.services import remove_member

    client, url = page.client, page.item["image_url"]
    set_active(db, None, rater_queue.rater, False)
    db.flush()
    assert _status(client, url)[0] == 401 and dispatched == [url]
    set_active(db, None, rater_queue.rater, True)  # reactivation ends every session, this one too
    db.flush()
    assert _status(client, url)[0] == 401
    client = _sign_in_again(client, rater_queue.rater)
    dispatched.clear()
    assert _status(client, url)[0] == 200 and dispatched == []
    end_sessions(db, rater_queue.rater)  # signed out in another browser
    db.flush()
    assert _status(client, url)[0] == 401 and dispatched == [url]
    client = _sign_in_again(client, rater_queue.rater)
    remove_member(db, None, rater_queue.project, rater_queue.rater, MemberRole.rater)
    db.flush()
    dispatched.clear()
    assert _status(client, url)[0] == 404 and dispatched == [url]


def _sign_in_again(client, user):
    client.csrf = None  # the old session is gone: no sign-out to send
    login(client, user)
    return client


@pytest.mark.parametrize(
    "headers",
    [{"User-Agent": "another browser"}, {"X-Forwarded-For": "203.0.113.9"}],
    ids=["browser", "address"],
)
def test_another_browser_or_address_goes_to_the_route_once(page, dispatched, headers):
    """flask-login's "basic" session protection marks a session seen from another User-Agent or
    address as not fresh (a new cookie): the route does that; once marked, the layer answers."""
    client, url = page.client, page.item["image_url"]
    status, cookie = _status(client, url, headers=headers)
    assert status == 200 and cookie and dispatched == [url]
    dispatched.clear()
    assert _status(client, url, headers=headers) == (200, None) and dispatched == []
    assert (
        _status(client, url) == (200, None) and dispatched == []
    )  # not fresh is not fresh anywhere


def test_a_forged_cookie_or_an_authorization_header_goes_to_the_route(app, page, dispatched):
    client, url = page.client, page.item["image_url"]
    name = app.config["SESSION_COOKIE_NAME"]
    good = client.get_cookie(name).value
    payload, _, signature = good.rpartition(".")
    client.set_cookie(name, f"{payload}.{'A' * len(signature)}")
    assert _status(client, url)[0] == 401 and dispatched == [url]
    client.set_cookie(name, good)
    dispatched.clear()
    assert _status(client, url, headers={"Authorization": "Bearer nope"})[0] == 401
    assert dispatched == [url]  # the header alone authenticates: the cookie is not consulted
    dispatched.clear()
    assert _status(client, url)[0] == 200 and dispatched == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0"},
        {"User-Agent": "Navigateur é"},
        {"X-Forwarded-For": "203.0.113.9, 10.0.0.1", "User-Agent": "a"},
        {"X-Forwarded-For": ""},
    ],
)
def test_the_session_identifier_is_flask_logins(app, headers):
    with app.test_request_context("/", headers=headers, environ_base={"REMOTE_ADDR": "192.0.2.1"}):
        from flask import request

        assert session_identifier(request.environ) == _create_identifier()


def test_a_signed_in_request_loads_its_user_and_roles_in_one_statement(page, rater_queue):
    """The cookie's user loader (auth.login._load_user) reads the user and the roles together, where
    session.get(User) sent a second statement for the roles (a view the session is not checked in:
    tests/auth/test_session_grants.py has those)."""
    page.seen.clear()
    resp = page.client.get(f"/api/v1/items/{page.item['id']}/label")
    assert resp.status_code == 200
    about_the_user = [s for s in page.seen if "FROM users" in s or "FROM user_roles" in s]
    assert len(about_the_user) == 1, about_the_user
    assert "LEFT OUTER JOIN user_roles" in about_the_user[0]


def test_another_session_protection_or_a_failing_check_goes_to_the_route(
    app, page, dispatched, monkeypatch
):
    """The layer mirrors flask-login's "basic" protection (the app's): under any other mode, and
    whenever its own check of the caller fails unexpectedly, the route answers."""
    from labeler.api import hot_image

    client, url = page.client, page.item["image_url"]
    monkeypatch.setitem(app.config, "SESSION_PROTECTION", "strong")
    assert _status(client, url)[0] == 200 and dispatched == [url]
    monkeypatch.delitem(app.config, "SESSION_PROTECTION")
    dispatched.clear()
    assert _status(client, url) == (200, None) and dispatched == []

    def broken(_app, _environ):
        raise ValueError("an unexpected cookie")

    monkeypatch.setattr(hot_image, "trusted_session", broken)
    assert _status(client, url)[0] == 200 and dispatched == [url]


def test_behind_a_trusted_proxy_the_layer_answers_as_the_route(
    app, login_as, rater_queue, dispatched, monkeypatch
):
    """Behind nginx (TRUSTED_PROXIES) ProxyFix rewrites the client's address for the app, below the
    layer (labeler/__init__.py installs the layer last): flask-login's identifier reads the raw
    X-Forwarded-For either way, so the same client is answered below Flask and another address goes
    to the route once, as without a proxy."""
    from werkzeug.middleware.proxy_fix import ProxyFix

    layer = app.wsgi_app
    monkeypatch.setattr(layer, "wsgi_app", ProxyFix(layer.wsgi_app, x_for=1, x_proto=1, x_host=1))
    monkeypatch.setitem(app.config, "TRUSTED_PROXIES", 1)
    client = app.test_client()
    client.environ_base.update(HTTP_X_FORWARDED_FOR="203.0.113.9", REMOTE_ADDR="10.0.0.2")
    login(client, rater_queue.rater)
    item = client.get(f"/api/v1/projects/{rater_queue.project.id}/queue/next").json["item"]
    url = item["image_url"]
    routed = route_answer(app, monkeypatch, client, url)
    dispatched.clear()
    resp = client.get(url)
    answer = (resp.status_code, sorted(resp.headers.items()), resp.get_data())
    resp.close()
    assert dispatched == [] and answer == routed
    moved = {"X-Forwarded-For": "198.51.100.7"}  # the same proxy, another client address
    status, cookie = _status(client, url, headers=moved)
    assert status == 200 and cookie and dispatched == [url]
