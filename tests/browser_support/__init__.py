"""Browser-test support: a live app server on its own database and Debian's Chromium driven by Playwright.

Register the plugin in tests/conftest.py (`pytest_plugins = [..., "browser_support.fixtures"]`); mark tests
`@pytest.mark.browser`. axe-core comes from npm: `npm ci --prefix tests/browser_support` (see package.json).
"""
