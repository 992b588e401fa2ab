"""flask-login wiring: session and bearer-token users, timeouts, CSRF on every cookie-authenticated write.

A request with an Authorization header is authenticated by that header alone: its session cookie is
neither read nor renewed, so a stray or bogus header can never borrow (or keep alive) a browser session.
Cookie sessions carry the user's session generation from sign-in; one that no longer matches the user
row (signed out, deactivated, reactivated, roles changed) is refused.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from functools import wraps
from hashlib import sha512
from typing import NamedTuple, TypeVar
from urllib.parse import urlsplit

from flask import Flask, current_app, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_login import LoginManager, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFProtect
from itsdangerous import BadSignature
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request

from ..db import end_request_session, get_session, utcnow
from ..errors import LabelerError, error_response, wants_json
from .models import User
from .services import (
    LAST_USED_RESOLUTION,
    TokenRefused,
    authenticate_token,
    end_sessions,
    grant_user,
    token_hash,
    user_with_roles,
)
from .token_grants import PENDING, Grants, PendingCheck, StaleGrant, session_key

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable)
GRANTS = "labeler_grants"  # app.extensions: the Grants (tokens and sessions) of this process
CHECKS_CALLER = "checks_caller_in_query"  # the mark caller_checked_in_query sets on a view
FULL_CHECK = "labeler_full_caller_check"  # g: this request's caller gets the full check
login_manager = LoginManager()
csrf = CSRFProtect()
clock = time.time  # seconds; the session-timeout tests replace it
GENERATION_KEY = "gen"  # the user's session_generation when this session signed in
# the idle stamp's resolution: a session is re-signed and its cookie re-sent at most once a minute, not on
# every request (an idle timeout may end up to this many seconds early)
SEEN_AT_RESOLUTION = 60
# signed-in session cookies remembered as verified, per process (about 1 KB each: _SessionInterface)
VERIFIED_COOKIES = 4096


class _HeaderAuthSession(SecureCookieSession):
    """The session of a request authenticated by its Authorization header: empty, never saved."""


class _Verified(NamedTuple):
    """A session cookie value whose signature this process verified."""

    keys: tuple  # the secret key and fallbacks it was checked with
    signed_at: int  # the second it was signed at (itsdangerous's timestamp)
    data: dict  # what it holds: plain values only, nothing a request could change in place


_PLAIN = (str, int, float, bool, type(None))


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, except for requests with an Authorization header: their cookie
    is neither verified nor re-sent (the header alone authenticates them), which also spares the API's
    hot path the signature check and the save on every request.

    A signed-in session's cookie verified once is not verified again: a browser sends the same value
    with every request until its session changes (the idle stamp, at most once a minute), and the
    signature check, decompression and tagged-JSON decoding cost as much as the rest of the request's
    authentication. Only the exact string that passed is remembered, with the keys it passed under and
    the second it was signed at, so the lifetime is still enforced as itsdangerous enforces it; a
    session's revocation is the user row's business (its generation), not the cookie's, and is
    unchanged. Anonymous sessions (anyone can have one signed) are not remembered, so they cannot push
    the signed-in ones out."""

    def __init__(self) -> None:
        self._verified: dict[str, _Verified] = {}
        self._lock = threading.Lock()

    def open_session(self, app, request):
        if "Authorization" in request.headers:
            return _HeaderAuthSession()
        value = request.cookies.get(self.get_cookie_name(app))
        if not value or not app.secret_key:
            return super().open_session(app, request)
        keys = (app.secret_key, *(app.config["SECRET_KEY_FALLBACKS"] or ()))
        max_age = int(app.permanent_session_lifetime.total_seconds())
        known = self._verified.get(value)
        if known is not None and known.keys == keys:
            age = int(time.time()) - known.signed_at  # itsdangerous's test (TimestampSigner.unsign)
            if 0 <= age <= max_age:
                return self.session_class(known.data)  # a copy: the request may change it
        try:
            data, signed_at = self.get_signing_serializer(app).loads(
                value, max_age=max_age, return_timestamp=True
            )
        except BadSignature:
            return self.session_class()
        if (
            isinstance(data, dict)
            and "_user_id" in data
            and all(isinstance(item, _PLAIN) for item in data.values())
        ):
            self._remember(value, _Verified(keys, int(signed_at.timestamp()), data))
        return self.session_class(data)

    def _remember(self, value: str, verified: _Verified) -> None:
        with self._lock:
            if value not in self._verified and len(self._verified) >= VERIFIED_COOKIES:
                del self._verified[next(iter(self._verified))]  # the oldest
            self._verified[value] = verified

    def save_session(self, app, session, response):
        if isinstance(session, _HeaderAuthSession):
            return
        super().save_session(app, session, response)


def init_app(app: Flask) -> None:
    app.config.setdefault(
        "WTF_CSRF_CHECK_DEFAULT", False
    )  # checked below, except for bearer tokens
    # the cookie is sent only when the session changed (sign-in, the idle stamp, CSRF token), not
    # re-signed on every request; the timeouts are enforced here from the stamps, not by the cookie's expiry
    app.config["SESSION_REFRESH_EACH_REQUEST"] = False
    app.session_interface = _SessionInterface()
    app.extensions[GRANTS] = Grants()  # tokens and sessions this process checked (token_grants.py)
    login_manager.init_app(app)
    csrf.init_app(app)
    login_manager.login_view = "auth.login"
    # "basic": "strong" drops the user whenever a cookie session lacks flask-login's identifier, which also
    # refuses a valid bearer token sent along with an anonymous session cookie
    login_manager.session_protection = "basic"
    app.before_request(_enforce_session_rules)


def has_authorization_header() -> bool:
    """An API request: authenticated by its Authorization header alone, never by the cookie."""
    return "Authorization" in request.headers


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    if has_authorization_header():
        return None  # the cookie is ignored; the request loader decides
    if not user_id.isdigit():
        return None
    db, grants = get_session(), current_app.extensions[GRANTS]
    if _view_checks_in_query():
        grant = grants.get(session_key(int(user_id)))
        if grant is not None and grant.trusted_for(session.get(GENERATION_KEY), utcnow()):
            # taken on trust until the view's first read has checked it (token_grants.py)
            db.info[PENDING] = PendingCheck(grant)
            return grant_user(db, grant)
    user = user_with_roles(db, int(user_id), grants=grants)
    if user is None or not user.active:
        return None
    # the generation is on the row just loaded: revocation costs no extra query
    if session.get(GENERATION_KEY) != user.session_generation:
        return None
    return user


@login_manager.request_loader
def _load_bearer(req) -> User | None:
    header = req.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        g.auth_refusal = TokenRefused(
            "Send the API token as 'Authorization: Bearer <token>'.", code="unauthorized"
        )
        return None
    raw = credentials.strip()
    db = get_session()
    grants = current_app.extensions[GRANTS]
    if _view_checks_in_query():
        grant = grants.trusted_token(token_hash(raw), utcnow(), LAST_USED_RESOLUTION)
        if grant is not None:
            # taken on trust until the view's first read has checked it (token_grants.py)
            db.info[PENDING] = PendingCheck(grant)
            return grant_user(db, grant)
    try:
        user = authenticate_token(db, raw, grants=grants)
        if db.info.pop("wrote", False):
            db.commit()  # the last-used stamp
    except TokenRefused as exc:
        g.auth_refusal = exc
        return None
    except OperationalError as exc:
        # SQLite: a reading request's transaction cannot take the write lock once another writer has
        # committed since its first read; the stamp (a minute's resolution) waits for a later request
        if db.get_bind().dialect.name != "sqlite" or "locked" not in str(exc.orig):
            raise
        db.rollback()
        grants.drop(token_hash(raw))  # its stamp was not written: the next request checks in full
        log.info("token last-use stamp deferred: the SQLite database was busy")
        user = authenticate_token(db, raw, stamp=False)
    return user


def _view_checks_in_query() -> bool:
    """This request's view checks a caller taken on trust in its first read, and this is not
    its second answer (caller_checked_in_query). OPTIONS never reaches the view (Flask answers it)."""
    if request.method == "OPTIONS" or g.get(FULL_CHECK, False):
        return False
    return getattr(current_app.view_functions.get(request.endpoint), CHECKS_CALLER, False)


def caller_checked_in_query(view: F) -> F:
    """Mark a hot-path view whose first read checks a caller taken on trust, a bearer token or a
    session cookie's user (token_grants.checked/confirmed): the caller's own query is skipped when
    this process checked it in full less than a minute ago. Put it right under the route decorator,
    above the permission check.

    If the caller no longer passes (StaleGrant), or the view answered or was refused (a 4xx) before
    any checked statement ran, nothing of that attempt is kept: the request's session is discarded,
    the caller gets the full check (a token's refusal answers 401; a session no longer valid is
    ended, as _enforce_session_rules ends it, and the permission check refuses it) and the view runs
    again. Any other failure (the database's) is not retried: a 500 says nothing about the caller.

    Such a view may use the caller's id and roles (the check covers both), not its name or e-mail:
    those are up to a minute old (token_grants.SESSION_GRANT_LIFETIME, a token's last full check).
    """

    @wraps(view)
    def wrapped(*args, **kwargs):
        current_user.is_authenticated  # noqa: B018  (the loader runs now, taking the token on trust)
        check = get_session().info.get(PENDING)
        if check is None:
            return view(*args, **kwargs)
        try:
            answer = view(*args, **kwargs)
        except StaleGrant:
            pass
        except (LabelerError, HTTPException):
            if check.confirmed:
                raise
        else:
            if check.confirmed:
                return answer
        # again, from the start: a new session, the caller's full check, the permission check
        current_app.extensions[GRANTS].drop(check.grant.key)
        end_request_session()
        g.pop("_login_user", None)
        g.setdefault(FULL_CHECK, True)
        if not current_user.is_authenticated:
            if has_authorization_header():
                return _refused_authorization()
            _end_session()  # signed out elsewhere, deactivated, roles changed: the view refuses it
        return view(*args, **kwargs)

    setattr(wrapped, CHECKS_CALLER, True)
    return wrapped  # type: ignore[return-value]


def _refused_authorization():
    refusal = g.get("auth_refusal") or TokenRefused("The Authorization header was not accepted.")
    resp = error_response(401, refusal.code, refusal.message)
    return resp[0], 401, {"WWW-Authenticate": 'Bearer realm="labeler"'}


@login_manager.unauthorized_handler
def _unauthorized():
    if has_authorization_header():
        return _refused_authorization()
    if wants_json():
        return error_response(
            401, "unauthorized", "Sign in or send 'Authorization: Bearer <token>'."
        )
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def _enforce_session_rules():
    """Idle/absolute timeouts and CSRF for cookie sessions; API requests answer for their header alone."""
    if request.endpoint == "static":
        return None
    if has_authorization_header():
        # no cookie is consulted, so no cross-site form can ride on it: CSRF is not needed
        if not current_user.is_authenticated:
            return _refused_authorization()
        return None
    if request.method not in {"GET", "HEAD", "OPTIONS"}:
        csrf.protect()
    if "_user_id" in session:
        now = clock()
        # not authenticated: the user was deactivated, or the session was revoked (older generation)
        if _session_expired(session, now, current_app.config) or not current_user.is_authenticated:
            _end_session()
            return None
        if _seen_at_due(session, now):  # a changed session is re-signed and re-sent: once a minute
            session["seen_at"] = now
    return None


def _end_session() -> None:
    """This request's cookie session no longer signs anyone in: signed out, its cookie cleared."""
    logout_user()
    session.clear()


def _session_expired(sess: Mapping, now: float, config: Mapping) -> bool:
    """Past the idle or the absolute timeout. A session without the stamps sign_in() sets did not
    come from sign_in(): it is expired."""
    idle = config["SESSION_IDLE_MINUTES"] * 60
    absolute = config["SESSION_ABSOLUTE_HOURS"] * 3600
    return now - sess.get("seen_at", 0) > idle or now - sess.get("auth_at", 0) > absolute


def _seen_at_due(sess: Mapping, now: float) -> bool:
    """The idle stamp is renewed (and the cookie re-sent) at most once a minute."""
    return now - sess.get("seen_at", 0) >= SEEN_AT_RESOLUTION


def session_identifier(environ: Mapping) -> str:
    """flask-login's session identifier (flask_login.utils._create_identifier: the first
    X-Forwarded-For address, else the remote address, and the User-Agent, hashed) from a WSGI environ,
    for a request answered outside Flask; a test holds the two equal."""
    address = environ.get("HTTP_X_FORWARDED_FOR", environ.get("REMOTE_ADDR"))
    if address is not None:
        address = address.encode("utf-8").split(b",")[0].strip()
    agent = environ.get("HTTP_USER_AGENT")
    return sha512(f"{address}|{None if agent is None else agent.encode()}".encode()).hexdigest()


def trusted_session(app: Flask, environ: dict) -> tuple[int, int] | None:
    """The user id and session generation of a signed-in browser session that this request's route
    would take as it is, for a request answered outside Flask (api/hot_image.py): its cookie is
    Flask's own check's (signed, not older than the session lifetime), neither timeout has passed, the
    idle stamp is not due, and flask-login's session protection would not mark it. None otherwise:
    the route decides (renews, ends or refuses the session). The user's row is not read here: the
    caller's statement checks it (token_grants.SESSION_STILL_VALID: active, at this generation, a
    rater), as _load_user does for the route."""
    if "HTTP_AUTHORIZATION" in environ:
        return None  # such a request is authenticated by its header alone
    if app.config.get("SESSION_PROTECTION", login_manager.session_protection) != "basic":
        return None  # the protection mirrored below is "basic"'s (init_app): any other, the route
    sess = app.session_interface.open_session(app, Request(environ))
    if not sess:
        return None
    user_id, generation = sess.get("_user_id"), sess.get(GENERATION_KEY)
    if not (isinstance(user_id, str) and user_id.isdigit()) or type(generation) is not int:
        return None
    now = clock()
    if _session_expired(sess, now, app.config) or _seen_at_due(sess, now):
        return None
    # "basic" protection marks a session seen from another address or browser as not fresh (a change
    # to the session, so a new cookie): the route does that
    if sess.get("_fresh") is not False and sess.get("_id") != session_identifier(environ):
        return None
    return int(user_id), generation


def sign_in(user: User) -> None:
    """Start a fresh session for the user (drops everything the old one carried)."""
    session.clear()
    g.pop("csrf_token", None)  # the cached CSRF token belonged to the old session
    login_user(user)
    session["auth_at"] = session["seen_at"] = clock()
    session[GENERATION_KEY] = user.session_generation
    session.permanent = True


def keep_session(user: User) -> None:
    """After changing the signed-in user's own generation (e.g. their roles): this session stays valid."""
    session[GENERATION_KEY] = user.session_generation


def sign_out() -> None:
    """End this session, and every copy of its cookie: the user's older sessions are refused too."""
    if current_user.is_authenticated:
        end_sessions(get_session(), current_user._get_current_object())
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
