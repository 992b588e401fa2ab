"""flask-login wiring: session and bearer-token users, timeouts, CSRF on every cookie-authenticated write."""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit

from flask import Flask, current_app, g, redirect, request, session, url_for
from flask_login import LoginManager, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.exc import OperationalError

from ..db import get_session
from ..errors import error_response, wants_json
from .models import User
from .services import user_for_token

log = logging.getLogger(__name__)
login_manager = LoginManager()
csrf = CSRFProtect()
clock = time.time  # seconds; the session-timeout tests replace it


def init_app(app: Flask) -> None:
    app.config.setdefault(
        "WTF_CSRF_CHECK_DEFAULT", False
    )  # checked below, except for bearer tokens
    login_manager.init_app(app)
    csrf.init_app(app)
    login_manager.login_view = "auth.login"
    # "basic": "strong" drops the user whenever a cookie session lacks flask-login's identifier, which also
    # refuses a valid bearer token sent along with an anonymous session cookie
    login_manager.session_protection = "basic"
    app.before_request(_enforce_session_rules)


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    user = get_session().get(User, int(user_id)) if user_id.isdigit() else None
    return user if user is not None and user.active else None


@login_manager.request_loader
def _load_bearer(req) -> User | None:
    header = req.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        return None
    db = get_session()
    user = user_for_token(db, header[7:].strip())
    if user is not None and db.dirty:
        try:
            db.commit()  # the last-used stamp
        except OperationalError as exc:
            # SQLite: a reading request's transaction cannot take the write lock once another writer has
            # committed since its first read; the stamp (a minute's resolution) waits for a later request
            if db.get_bind().dialect.name != "sqlite" or "locked" not in str(exc.orig):
                raise
            db.rollback()
            log.info("token last-use stamp deferred: the SQLite database was busy")
    return user


@login_manager.unauthorized_handler
def _unauthorized():
    if wants_json():
        return error_response(
            401, "unauthorized", "Sign in or send 'Authorization: Bearer <token>'."
        )
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def _enforce_session_rules() -> None:
    """Idle/absolute timeouts for cookie sessions; CSRF on writes that did not come with a bearer token."""
    if request.endpoint == "static":
        return
    has_bearer = request.headers.get("Authorization", "").lower().startswith("bearer ")
    if request.method not in {"GET", "HEAD", "OPTIONS"} and not has_bearer:
        csrf.protect()
    if "_user_id" in session and not has_bearer:
        now = clock()
        idle = current_app.config["SESSION_IDLE_MINUTES"] * 60
        absolute = current_app.config["SESSION_ABSOLUTE_HOURS"] * 3600
        # a session without the stamps sign_in() sets did not come from sign_in(): treat it as expired
        expired = (
            now - session.get("seen_at", 0) > idle or now - session.get("auth_at", 0) > absolute
        )
        if (
            expired or not current_user.is_authenticated
        ):  # not authenticated: the user was deactivated
            logout_user()
            session.clear()
            return
        session["seen_at"] = now


def sign_in(user: User) -> None:
    """Start a fresh session for the user (drops everything the old one carried)."""
    session.clear()
    g.pop("csrf_token", None)  # the cached CSRF token belonged to the old session
    login_user(user)
    session["auth_at"] = session["seen_at"] = clock()
    session.permanent = True


def sign_out() -> None:
    logout_user()
    session.clear()


def safe_next(target: str | None) -> str | None:
    """Only paths of this app: no scheme, no host, no protocol-relative or backslash tricks."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    # browsers drop tabs and newlines inside URLs ("/\t/evil" becomes "//evil"): refuse all controls
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target
