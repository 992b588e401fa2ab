"""A session cookie's signature is verified once per process (auth/login.py _SessionInterface): the
same value sent again is taken from what was verified, and everything the signature check enforced
still holds for it: the exact value, the keys it was signed with, the session lifetime."""

from __future__ import annotations

import time

import pytest
from itsdangerous import URLSafeTimedSerializer

HOME = "/"


@pytest.fixture()
def signed_in(app, make_user, login_as):
    client = login_as(make_user("cookie@example.test", "rater"))
    name = app.config["SESSION_COOKIE_NAME"]
    assert client.get(HOME).status_code == 200  # the value is verified (and remembered) here
    return client, name, client.get_cookie(name).value


def _browser_with(app, name: str, value: str):
    browser = app.test_client()
    browser.set_cookie(name, value)
    return browser


def _signed_in(client) -> bool:
    answer = client.get(HOME)
    assert answer.status_code in (200, 302), answer.status
    return answer.status_code == 200


def test_the_same_cookie_is_not_verified_again(app, signed_in, monkeypatch):
    _client, name, value = signed_in
    checks = []
    real = URLSafeTimedSerializer.loads
    monkeypatch.setattr(
        URLSafeTimedSerializer,
        "loads",
        lambda self, *a, **kw: checks.append(a[0]) or real(self, *a, **kw),
    )
    browser = _browser_with(app, name, value)
    assert _signed_in(browser) and _signed_in(browser)
    assert value not in checks


def test_a_changed_cookie_is_verified_and_refused(app, signed_in):
    _client, name, value = signed_in
    payload, _, signature = value.rpartition(".")
    forged = payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    assert not _signed_in(_browser_with(app, name, forged))
    assert not _signed_in(_browser_with(app, name, value[:-1]))
    assert _signed_in(_browser_with(app, name, value))  # the original still passes


def test_a_remembered_cookie_is_refused_once_the_key_changes(app, signed_in, monkeypatch):
    _client, name, value = signed_in
    monkeypatch.setattr(app, "secret_key", "another key altogether")
    assert not _signed_in(_browser_with(app, name, value))


def test_a_remembered_cookie_is_refused_past_the_session_lifetime(app, signed_in, monkeypatch):
    _client, name, value = signed_in
    lifetime = app.permanent_session_lifetime.total_seconds()
    # the app's own timeouts (login.clock) are left alone: only the signature's age is past its limit
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + lifetime + 5)
    assert not _signed_in(_browser_with(app, name, value))


def test_a_session_holding_more_than_plain_values_is_not_remembered(app, signed_in):
    _client, name, _value = signed_in
    interface = app.session_interface
    with app.test_request_context():
        from flask import session

        session.update({"_user_id": "1", "_flashes": [("info", "a message")]})
        value = interface.get_signing_serializer(app).dumps(dict(session))
    browser = _browser_with(app, name, value)
    browser.get(HOME)
    assert value not in interface._verified  # a list could be changed in place by its request
    assert len(interface._verified) >= 1  # the plain session was


def test_the_remembered_cookies_are_bounded(app, monkeypatch):
    from labeler.auth import login as login_module

    monkeypatch.setattr(login_module, "VERIFIED_COOKIES", 3)
    interface = app.session_interface
    serializer = interface.get_signing_serializer(app)
    name = app.config["SESSION_COOKIE_NAME"]
    values = [serializer.dumps({"n": n}) for n in range(5)]
    for value in values:
        _browser_with(app, name, value).get("/auth/login")
    assert [v for v in interface._verified if v in values] == values[2:]
