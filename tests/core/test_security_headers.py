"""Security headers: the Content-Security-Policy every response carries."""

from __future__ import annotations

import pytest

from labeler.config import content_security_policy


def directives(header: str) -> dict[str, list[str]]:
    parsed = {}
    for part in header.split(";"):
        name, *values = part.split()
        assert name not in parsed, f"{name} given twice"
        parsed[name] = values
    return parsed


@pytest.mark.parametrize("path", ["/auth/login", "/", "/api/v1/projects", "/no-such-page"])
def test_every_response_carries_the_policy(client, path):
    csp = directives(client.get(path).headers["Content-Security-Policy"])
    assert csp["form-action"] == ["'self'"]  # development sign-in: no form leaves the app
    assert csp["base-uri"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["default-src"] == csp["script-src"] == ["'self'"]


def test_form_action_allows_only_the_identity_providers_origin():
    """Sign-out's form is answered by a redirect to the provider's end-session page."""
    cfg = {"AUTH_MODE": "sso", "SSO_AUTHORITY": "https://login.microsoftonline.com/tenant-id"}
    csp = directives(content_security_policy(cfg))
    assert csp["form-action"] == ["'self'", "https://login.microsoftonline.com"]
    assert csp["base-uri"] == ["'none'"]
    assert directives(content_security_policy({"AUTH_MODE": "sso"}))["form-action"] == ["'self'"]
    dev = {"AUTH_MODE": "dev", "SSO_AUTHORITY": "https://login.microsoftonline.com/t"}
    assert directives(content_security_policy(dev))["form-action"] == ["'self'"]


@pytest.mark.parametrize("path", ["/auth/login", "/api/v1/projects", "/no-such-page"])
def test_every_security_header_once(client, path):
    """Each of the headers security_headers lists, exactly once, with its value."""
    from labeler.config import security_headers

    resp = client.get(path)
    for name, value in security_headers(client.application.config):
        assert resp.headers.getlist(name) == [value], name


def test_a_page_that_sets_its_own_policy_keeps_it(app):
    """The after_request hook adds only what the answer lacks (case-insensitively)."""

    @app.get("/_own_csp")
    def own_csp():
        return "ok", 200, {"content-security-policy": "default-src 'none'"}

    resp = app.test_client().get("/_own_csp")
    assert resp.headers.getlist("Content-Security-Policy") == ["default-src 'none'"]
    assert resp.headers["X-Frame-Options"] == "DENY"
