"""Domain errors and the HTTP error handlers (JSON for the API, pages elsewhere)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask, Response, g, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

log = logging.getLogger(__name__)


class LabelerError(Exception):
    """A business rule refused the request; carries an HTTP status and a machine-readable code."""

    status = 400
    code = "bad_request"

    def __init__(
        self, message: str, *, code: str | None = None, status: int | None = None, **extra: object
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status
        self.extra = extra


class NotFound(LabelerError):
    status, code = 404, "not_found"


class Forbidden(LabelerError):
    status, code = 403, "forbidden"


class Conflict(LabelerError):
    status, code = 409, "conflict"


class ValidationError(LabelerError):
    status, code = 422, "invalid"


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def error_response(
    status: int, code: str, message: str, **extra: object
) -> tuple[Response | str, int]:
    if wants_json():
        body: dict[str, object] = {"code": code, "message": message}
        body.update(extra)
        return jsonify(error=body), status
    return render_template("errors/error.html", status=status, code=code, message=message), status


def on_form_error(page: Callable[[LabelerError], ResponseReturnValue]) -> None:
    """A page's answer to a refused form: from here on, a LabelerError rolls the request back and
    answers ``page(exc)`` (the form again, with the message) instead of the error page."""
    g.labeler_form_page = page


def register_error_handlers(app: Flask, rollback: Callable[[], None]) -> None:
    """JSON or an error page for every error; `rollback` discards the request's writes first."""

    @app.errorhandler(LabelerError)
    def _domain_error(exc: LabelerError):
        rollback()
        page = g.pop("labeler_form_page", None)
        if page is not None:
            return page(exc)
        return error_response(exc.status, exc.code, exc.message, **exc.extra)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(_exc: RequestEntityTooLarge):
        limit = request.max_content_length or 0
        size = f"{limit / 2**20:g} MB" if limit >= 2**20 else f"{limit // 1024} KB"
        return error_response(
            413,
            "too_large",
            f"The request is larger than this address accepts ({size} at most); nothing was saved.",
        )

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(exc.code or 500, code, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        rollback()
        return error_response(
            500, "internal_error", "Something went wrong on our side; nothing was saved."
        )
