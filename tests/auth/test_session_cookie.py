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


def test_a_remembered_cookie_is_refused_before_its_signing_second(app, signed_in, monkeypatch):
    _client, name, value = signed_in
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() - 3600)
    assert not _signed_in(_browser_with(app, name, value))


def test_a_remembered_cookie_follows_the_key_rotation(app, signed_in, monkeypatch):
    _client, name, value = signed_in
    old_key = app.secret_key
    monkeypatch.setattr(app, "secret_key", "the next key")
    monkeypatch.setitem(app.config, "SECRET_KEY_FALLBACKS", [old_key])
    assert _signed_in(_browser_with(app, name, value))  # still signed with a key the app takes
    monkeypatch.setitem(app.config, "SECRET_KEY_FALLBACKS", [])
    assert not _signed_in(_browser_with(app, name, value))


def test_a_request_changing_its_session_leaves_the_remembered_value_alone(app, signed_in):
    _client, name, value = signed_in
    interface = app.session_interface
    with app.test_request_context(headers={"Cookie": f"{name}={value}"}):
        from flask import request

        opened = interface.open_session(app, request)
        opened["_user_id"] = "999"
        opened.pop("gen")
        again = interface.open_session(app, request)
    assert again["_user_id"] != "999" and "gen" in again
    assert interface._verified[value].data == dict(again)


def test_only_signed_in_sessions_of_plain_values_are_remembered(app, signed_in):
    _client, name, value = signed_in
    interface = app.session_interface
    assert value in interface._verified
    serializer = interface.get_signing_serializer(app)
    with_list = serializer.dumps({"_user_id": "1", "_flashes": [["info", "a message"]]})
    anonymous = serializer.dumps({"csrf_token": "abc"})
    for other in (with_list, anonymous):
        _browser_with(app, name, other).get("/auth/login")
        # a list could be changed in place by its request; anyone can have an anonymous one signed
        assert other not in interface._verified


def test_the_image_layer_takes_only_the_verified_value(app, signed_in):
    """The display image answered below Flask (auth.login.trusted_session) opens the session through
    the same interface: a changed value is verified, and refused, there too."""
    from labeler.auth.login import trusted_session

    _client, name, value = signed_in
    payload, _, signature = value.rpartition(".")
    forged = payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    # the test client's own address and browser: flask-login's session protection holds
    environ = app.test_client().get("/auth/login").request.environ
    environ = {k: environ[k] for k in ("REMOTE_ADDR", "HTTP_USER_AGENT")}
    with app.test_request_context():
        assert trusted_session(app, {**environ, "HTTP_COOKIE": f"{name}={value}"}) is not None
        assert trusted_session(app, {**environ, "HTTP_COOKIE": f"{name}={forged}"}) is None


def test_the_remembered_cookies_are_bounded(app, monkeypatch):
    from labeler.auth import login as login_module

    monkeypatch.setattr(login_module, "VERIFIED_COOKIES", 3)
    interface = app.session_interface
    serializer = interface.get_signing_serializer(app)
    name = app.config["SESSION_COOKIE_NAME"]
    values = [serializer.dumps({"_user_id": str(n)}) for n in range(5)]
    for value in values:
        _browser_with(app, name, value).get("/auth/login")
    assert [v for v in interface._verified if v in values] == values[2:]
    # one of them verified again (the keys rotated since) replaces itself, pushing nothing else out
    monkeypatch.setitem(app.config, "SECRET_KEY_FALLBACKS", [app.secret_key])
    monkeypatch.setattr(app, "secret_key", "the next key")
    _browser_with(app, name, values[-1]).get("/auth/login")
    assert [v for v in interface._verified if v in values] == values[2:]
