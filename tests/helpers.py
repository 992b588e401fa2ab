"""Plain helpers shared by the tests (importable as `helpers`; conftest modules are not meant for imports)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path


def make_config(tmp_path: Path, database_url: str, **extra) -> dict:
    cfg = {
        "LABELER_ENV": "test",
        "TESTING": True,
        "SECRET_KEY": "test-secret-" + uuid.uuid4().hex,
        "DATABASE_URL": database_url,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "STORAGE_PATH": str(tmp_path / "files"),
        "AUTH_MODE": "dev",
    }
    cfg.update(extra)
    return cfg


CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def csrf_from(client) -> str:
    html = client.get("/auth/login").get_data(as_text=True)
    match = CSRF_META.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def login(client, user) -> str:
    """Sign in through the development sign-in form (with its CSRF token); returns a fresh CSRF token."""
    if getattr(client, "csrf", None):  # switching users: sign the previous one out first
        client.post("/auth/logout", data={"csrf_token": client.csrf})
    token = csrf_from(client)
    resp = client.post("/auth/dev-login", data={"email": user.email, "csrf_token": token})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    page = client.get("/").get_data(as_text=True)
    client.csrf = CSRF_META.search(page).group(1)
    return client.csrf
