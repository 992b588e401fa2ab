"""Request plumbing shared by pages and API: URL converters that refuse impossible ids, body-size limits.

- `<int:...>` in a route is a database id: 1 to 2^31 - 1. A larger number can name no row, would
  overflow PostgreSQL's int4 (or SQLite's 64-bit integer), and gets a plain 404 like any unknown id.
- `<index:...>` is a position counted from 0 (a deep-zoom tile's level, column, row), same bound.
- Text path segments (`<public_id>`, `<model_id>`) holding a NUL or control character get 404 too.
- Every request body is limited to MAX_CONTENT_LENGTH (1 MB: JSON and forms); routes that take
  uploads say so with `@accepts_upload(...)` and get MAX_UPLOAD_BYTES (LABELER_MAX_UPLOAD_MB) or
  their own limit. Past the limit: 413 with a clear message (errors.py), before anything is read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, current_app, request
from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter, UnicodeConverter

from .validation import DB_INT_MAX, text_problem

F = TypeVar("F", bound=Callable[..., Any])


# Raised from to_python, NotFound answers 404 whatever the method (werkzeug's ValidationError would
# let a same-path rule for another method turn it into a 405).
_NO_SUCH_ID = f"Nothing has this id (ids are whole numbers from 1 to {DB_INT_MAX})."
_NO_SUCH_NAME = "Nothing has this id (ids never contain control characters)."


class IdConverter(IntegerConverter):
    """`<int:name>`: a positive id that fits the 32-bit id columns; anything else is a 404."""

    def to_python(self, value: str) -> int:
        if len(value) > len(str(DB_INT_MAX)):  # also spares int() a 5000-digit string
            raise NotFound(_NO_SUCH_ID)
        number = int(value)
        if not 1 <= number <= DB_INT_MAX:
            raise NotFound(_NO_SUCH_ID)
        return number


class IndexConverter(IntegerConverter):
    """`<index:name>`: a whole number from 0 (a deep-zoom level or tile column); else a 404."""

    def to_python(self, value: str) -> int:
        if len(value) > len(str(DB_INT_MAX)) or int(value) > DB_INT_MAX:
            raise NotFound("No such tile.")
        return int(value)


class TextConverter(UnicodeConverter):
    """A text path segment without NUL or control characters (no id holds one: 404)."""

    def to_python(self, value: str) -> str:
        if text_problem(value):
            raise NotFound(_NO_SUCH_NAME)
        return value


def accepts_upload(max_bytes: int | None = None) -> Callable[[F], F]:
    """Mark a view that takes a large body: `max_bytes`, or the MAX_UPLOAD_BYTES setting."""

    def mark(view: F) -> F:
        view.max_body_bytes = max_bytes or 0  # type: ignore[attr-defined]  # 0: the setting
        return view

    return mark


def _body_limit() -> None:
    view = current_app.view_functions.get(request.endpoint or "")
    limit = getattr(view, "max_body_bytes", None)
    if limit is not None:
        request.max_content_length = limit or current_app.config["MAX_UPLOAD_BYTES"]


def init_app(app: Flask) -> None:
    """Install the converters (before any blueprint adds its routes) and the per-route body limit."""
    app.url_map.converters.update(
        int=IdConverter, index=IndexConverter, default=TextConverter, string=TextConverter
    )
    # registered before the sign-in hooks: the CSRF check reads upload forms, under this limit
    app.before_request(_body_limit)
