"""pytest plugin: Debian's Chromium driven by Playwright (session-scoped) and a live app server per test.

Never `playwright install`: the browser is the Debian package (`apt-get install chromium chromium-driver`).
A missing browser fails the tests with that instruction rather than skipping them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from .live import LiveServer, serve

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE_JS = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator[object]:
    """One headless Chromium for the whole run."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"browser tests need Debian's Chromium at {CHROMIUM}: "
            "apt-get install chromium chromium-driver (never `playwright install`)",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    try:
        yield browser
    finally:
        browser.close()
        pw.stop()


@pytest.fixture()
def live_server(tmp_path) -> Iterator[LiveServer]:
    """The app on its own fresh database (SQLite file, or a schema of LABELER_TEST_DATABASE_URL)."""
    with serve(tmp_path, os.environ.get("LABELER_TEST_DATABASE_URL")) as server:
        yield server


def open_page(browser, **context_options) -> Iterator[object]:
    """A fresh context and page; JavaScript errors and CSP violations on the page fail the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, **context_options)
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and "Content Security Policy" in msg.text
            else None
        ),
    )
    page.js_errors = errors
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture()
def browser_page(chromium_browser) -> Iterator[object]:
    """A page under the app's real Content-Security-Policy."""
    yield from open_page(chromium_browser)


@pytest.fixture()
def axe_page(chromium_browser) -> Iterator[object]:
    """A page that may receive axe-core: CSP bypassed, because add_script_tag inlines the script."""
    yield from open_page(chromium_browser, bypass_csp=True)


def sign_in(page, server: LiveServer, email: str, next_path: str = "") -> None:
    """Sign in through the development sign-in page, as a person would."""
    page.goto(f"{server.url}/auth/login" + (f"?next={next_path}" if next_path else ""))
    page.select_option("#email", email)
    page.click("#dev-signin")
    page.wait_for_load_state()


def axe_scan(page, *, impacts: tuple[str, ...] = ("serious", "critical")) -> list[dict]:
    """Run axe-core on the page; returns the violations of the given impacts."""
    if not AXE_JS.exists():
        pytest.fail(
            f"axe-core is missing at {AXE_JS}: run `npm ci --prefix tests/browser_support`",
            pytrace=False,
        )
    page.add_script_tag(path=str(AXE_JS))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [v for v in result["violations"] if v.get("impact") in impacts]
