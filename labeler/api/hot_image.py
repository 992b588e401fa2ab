"""The display image of a rater's item, answered below Flask when it can be: one statement, no
request session, no Flask request.

The image is the label cycle's one request that only reads, and Flask's dispatch, flask-login and an
ORM session cost more CPU than the read and the sendfile(2) together (bench/labeling.py). A WSGI layer
in front of the app answers ``GET /api/v1/items/<id>/image`` itself only when all of this holds:

- the caller is one the route would take as is, without a write or a new cookie:
  - a script: ``Authorization: Bearer <token>`` whose full check this process remembers and still
    trusts (auth/token_grants.py: not expired, its last-use stamp less than a minute old);
  - the labeling page: no Authorization header, and a signed session cookie that passes Flask's
    check, neither timeout, with its idle stamp not due and nothing for flask-login's session
    protection to mark (auth/login.py trusted_session);
- no Range or If-Range header (ranges stay with blob_response), an id of the usual characters;
- one statement, the image route's own (allocation/queue.py), with the caller's check in it (a token:
  TOKEN_STILL_VALID, not revoked; both: the user active at the same session generation, a rater)
  finds the rater's item in a project they still rate, already shown (the first showing is a write:
  the route stamps it), and its display copy is a local file.

Anything else, a row not found included, goes to the Flask route unchanged, which checks the caller
in full and answers (401, a sign-in, 404, the first showing, a range, a remote store). So no answer
comes from a token, a session or a membership that no longer passes, and every answer, from here or
from the route, has the same headers: blob_response's (no ETag, no Last-Modified, no file name, never
cached), the app's security headers, and for a cookie session Flask's ``Vary: Cookie``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from ..allocation.queue import trusted_item_image_row
from ..auth.login import GRANTS, trusted_session
from ..auth.services import LAST_USED_RESOLUTION, token_hash
from ..config import add_security_headers
from ..db import database, utcnow
from ..images.serve import accel_headers, blob_headers, local_body
from ..images.storage import InvalidKey
from .allocation import RATER_IMAGE_CACHE, display_type

log = logging.getLogger(__name__)
SECURITY_HEADERS = "labeler_security_headers"  # app.extensions: the headers every answer carries
_PUBLIC_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


class HotImage:
    """The WSGI layer (install() puts it in front of the app)."""

    def __init__(self, app: Flask, wsgi_app: WSGIApp) -> None:
        self.wsgi_app = wsgi_app
        self._app = app
        rule = next(app.url_map.iter_rules("api.item_image")).rule
        self._prefix, _, self._suffix = rule.partition("<public_id>")

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        answer = self._answer(environ)
        if answer is None:
            return self.wsgi_app(environ, start_response)
        headers, body = answer
        start_response("200 OK", headers)
        return body

    def _answer(self, environ: dict[str, Any]) -> tuple[list, Iterable[bytes]] | None:
        """The headers and body of the image, or None: the Flask route answers."""
        path = environ.get("PATH_INFO", "")
        if (
            environ.get("REQUEST_METHOD") != "GET"
            or not path.startswith(self._prefix)
            or not path.endswith(self._suffix)
            or "HTTP_RANGE" in environ
            or "HTTP_IF_RANGE" in environ
        ):
            return None
        public_id = path[len(self._prefix) : len(path) - len(self._suffix)]
        if not _PUBLIC_ID.fullmatch(public_id):
            return None
        app = self._app
        try:
            caller = self._caller(environ)
        except Exception as exc:  # noqa: BLE001  the route meets it again: its error page and log
            log.warning(
                "display image below Flask: the caller's check failed, the route answers: %r", exc
            )
            return None
        if caller is None:
            return None
        rater_id, check, vary = caller
        try:
            with database(app).read_connection() as conn:
                row = trusted_item_image_row(conn, rater_id, public_id, check)
        except SQLAlchemyError as exc:  # the route meets it again and answers it as any request's
            log.warning("display image read below Flask failed, the route answers: %s", exc)
            return None
        if row is None or row.shown_at is None:
            return None
        storage = app.extensions["labeler_storage"]
        key, mimetype = row.display_key, display_type(row.display_key)
        try:
            file = storage.path(key)
            if file is None:  # a remote store: the route streams it
                return None
            size = storage.size(key)  # a missing blob raises here
            if app.config.get("X_ACCEL_REDIRECT"):
                headers = accel_headers(key, mimetype, cache_control=RATER_IMAGE_CACHE)
                body: Iterable[bytes] = []
            else:
                headers = blob_headers(mimetype, size, cache_control=RATER_IMAGE_CACHE)
                body = local_body(environ, file)
        except (FileNotFoundError, InvalidKey):  # the route answers its 404
            return None
        except Exception as exc:  # noqa: BLE001  the route meets it again: its error page and log
            log.warning("display image below Flask: the store failed, the route answers: %r", exc)
            return None
        if vary:
            headers.append(("Vary", "Cookie"))  # as Flask adds to an answer that read the session
        add_security_headers(headers, app.extensions[SECURITY_HEADERS])
        return headers, body

    def _caller(self, environ: dict[str, Any]) -> tuple[int, dict[str, Any], bool] | None:
        """The rater, the parameters of the check the read carries, and whether the answer varies
        with the cookie; None: the route authenticates this request."""
        app = self._app
        if "HTTP_AUTHORIZATION" not in environ:  # a browser's: its signed session cookie
            trusted = trusted_session(app, environ)
            if trusted is None:
                return None
            user_id, generation = trusted
            return user_id, {"auth_user": user_id, "auth_generation": generation}, True
        scheme, _, credentials = environ["HTTP_AUTHORIZATION"].strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        grant = app.extensions[GRANTS].trusted_token(
            token_hash(credentials.strip()), utcnow(), LAST_USED_RESOLUTION
        )
        if grant is None:
            return None
        return grant.user_id, grant.params, False


def install(app: Flask) -> None:
    """Put the layer in front of the app (after every route is registered)."""
    app.wsgi_app = HotImage(app, app.wsgi_app)  # type: ignore[method-assign]
