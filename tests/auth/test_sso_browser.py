"""Headless Chromium signs in through the provider's login form and signs out through its end-session page.

The live server's port is bound before the provider starts, so the provider can register the app's
/auth/redirect; the provider gets its own instance here (the session-wide one knows other URIs).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator

import pytest
from browser_support.live import LiveServer, serve
from sso_support.fixtures import app_sso_config, default_users
from sso_support.provider import OIDCProvider

from labeler.auth.models import Role
from labeler.auth.services import add_user, find_user_by_email

pytestmark = pytest.mark.browser


@pytest.fixture()
def sso_live(tmp_path, trust_test_ca) -> Iterator[tuple[LiveServer, OIDCProvider]]:
    """The app in single sign-on mode on a live server, and a provider that knows its URLs."""
    started: list[OIDCProvider] = []
    with contextlib.ExitStack() as stack:

        def url_config(base_url: str) -> dict[str, object]:
            provider = OIDCProvider(
                default_users(),
                [f"{base_url}/auth/redirect"],
                tls=trust_test_ca,
                post_logout_redirect_uris=[f"{base_url}/auth/login"],
            )
            started.append(stack.enter_context(provider))
            return app_sso_config(provider)

        # entered after the provider's context, so the server stops first
        server = stack.enter_context(
            serve(tmp_path, os.environ.get("LABELER_TEST_DATABASE_URL"), url_config=url_config)
        )
        yield server, started[0]


@pytest.fixture()
def sso_page(chromium_browser) -> Iterator[object]:
    """A fresh context that accepts the provider's test certificate; page errors fail the test."""
    context = chromium_browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def test_chromium_signs_in_through_the_provider_and_signs_out(sso_live, sso_page) -> None:
    from playwright.sync_api import expect

    server, provider = sso_live
    with server.session() as s:
        add_user(s, None, "alice@example.test", "Alice Rater", {Role.rater})
    page = sso_page

    page.goto(f"{server.url}/")  # signed out: the app sends the browser to its sign-in page
    expect(page).to_have_url(re.compile(re.escape(f"{server.url}/auth/login")))
    page.click("#sso-signin")
    expect(page).to_have_title("Sign in")  # the provider's form
    assert page.url.startswith(f"{provider.origin}/interaction/")
    page.fill("#username", "alice")
    page.fill("#password", "alice-pw")
    page.click("#signin")

    expect(page).to_have_url(f"{server.url}/")  # provider -> /auth/redirect -> the rater's home
    expect(page.locator("h1")).to_have_text("Welcome, Alice Rater")
    expect(page.locator("#my-projects")).to_be_attached()
    cookie = next(c for c in page.context.cookies(server.url) if c["name"] == "session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    with server.session() as s:
        assert find_user_by_email(s, "alice@example.test").oid == provider.users["alice"]["oid"]

    page.click("#signout")  # the app clears its session, then the provider's end-session page
    assert page.url.startswith(f"{provider.issuer}/session/end")
    page.get_by_role("button", name=re.compile("Yes", re.IGNORECASE)).click()
    expect(page).to_have_url(f"{server.url}/auth/login")
    expect(page.locator("#sso-signin")).to_be_visible()

    page.goto(f"{server.url}/")
    expect(page).to_have_url(re.compile(re.escape(f"{server.url}/auth/login")))
    page.click("#sso-signin")  # the provider's session ended too: its form again, no silent sign-in
    expect(page).to_have_title("Sign in")
    assert page.url.startswith(f"{provider.origin}/interaction/")
