"""Input cleaning shared by the services: text, bounded whole numbers and database ids.

Flask-free: pages, the API and the CLI hand their values to services, and the services check them here,
so each rule has one home. Request parsing (JSON bodies, query strings) lives in `labeler.api.params`.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import ValidationError

DB_INT_MAX = 2**31 - 1  # ids and seeds are 32-bit integer columns (PostgreSQL int4)
MAX_SEED = DB_INT_MAX

# NUL and the other C0/DEL control characters (tab, newline and carriage return are whitespace and
# handled by the caller's strip/collapse); surrogates only arrive through JSON's "\ud800" escapes and
# cannot be stored as UTF-8.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
SURROGATE = re.compile("[\ud800-\udfff]")
# Invisible text-direction embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069): one in a
# case id or body site would flip how the text around it reads on other people's screens.
_BIDI_CONTROL = re.compile("[\u202a-\u202e\u2066-\u2069]")


def text_problem(value: str) -> str | None:
    """Why a string cannot be stored as text (a NUL or control character, a lone surrogate), or None."""
    if _CONTROL.search(value):
        return "contains a control character (such as NUL), which is not allowed"
    if SURROGATE.search(value):
        return "is not valid Unicode text (it holds a lone surrogate)"
    if _BIDI_CONTROL.search(value):
        return (
            "contains an invisible text-direction control character, which is not allowed "
            "(it would change how the text around it reads)"
        )
    return None


def clean_text(
    value: Any,
    what: str,
    *,
    max_len: int,
    required: bool = False,
    collapse: bool = True,
    **extra: Any,
) -> str | None:
    """Stored text: a string without NUL/control characters or lone surrogates, stripped, within max_len.

    `what` names the field for the message ("the project name"). With `collapse`, runs of whitespace
    (tabs and newlines included) become one space. Empty text gives None, or an error if `required`.
    """
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be text", **extra)
    problem = text_problem(value)
    if problem:
        raise ValidationError(f"{what} {problem}", **extra)
    value = " ".join(value.split()) if collapse else value.strip()
    if not value:
        if required:
            raise ValidationError(f"{what} is required", **extra)
        return None
    if len(value) > max_len:
        raise ValidationError(
            f"{what} is too long ({len(value)} characters; at most {max_len})", **extra
        )
    return value


def clean_int(
    value: Any,
    what: str,
    *,
    lo: int,
    hi: int,
    default: int | None = None,
    from_text: bool = False,
    **extra: Any,
) -> int | None:
    """A whole number within [lo, hi]; None (or "" with `from_text`) gives `default`.

    JSON callers pass numbers (a bool, a float or a string is refused); form and CLI callers pass
    `from_text=True` so that "42" is read as 42. Nothing unbounded reaches the database.
    """
    if value is None or (from_text and isinstance(value, str) and not value.strip()):
        return default
    if from_text and isinstance(value, str):
        raw = value.strip()
        if not (raw.isascii() and raw.lstrip("-").isdigit()) or len(raw) > 30:
            raise ValidationError(f"{what} must be a whole number", **extra)
        value = int(raw)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{what} must be a whole number", **extra)
    if not lo <= value <= hi:
        raise ValidationError(f"{what} must be between {lo} and {hi}", **extra)
    return value


def clean_flag(value: Any, what: str, **extra: Any) -> bool | None:
    """A yes/no filter from a query string: absent or "" -> None (no filter), "1" -> True, "0" -> False."""
    if value is None or value == "":
        return None
    if value in ("1", "0"):
        return value == "1"
    raise ValidationError(f"{what} must be 0 or 1", status=400, **extra)


def clean_id(value: Any, what: str, **extra: Any) -> int:
    """A database id (1 to 2^31 - 1); larger numbers can name no row and would overflow the column."""
    if value is None:
        raise ValidationError(f"{what} is required", **extra)
    return clean_int(value, what, lo=1, hi=DB_INT_MAX, **extra)


def clean_ids(values: Any, what: str, **extra: Any) -> list[int]:
    """A list of database ids."""
    if not isinstance(values, (list, tuple)):
        raise ValidationError(f"{what} must be a list of ids", **extra)
    return [clean_id(v, f"each of {what}", **extra) for v in values]
