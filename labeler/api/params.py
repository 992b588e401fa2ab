"""Request parsing for the API, in one place: JSON bodies and query-string numbers.

What arrives here is checked for shape (a JSON object, a number); what it means (a known rater, a
grade on the scale, text fit to store) is checked by the services, for pages, API and CLI alike.
"""

from __future__ import annotations

import json
from typing import Any

from flask import request

from ..errors import ValidationError
from ..validation import SURROGATE, clean_int

MAX_DEPTH = 32  # the deepest API body (project settings) nests 5 levels; past 32 is an attack


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is too large for a number")
    return number


def _bad(message: str) -> ValidationError:
    return ValidationError(message, status=400, code="bad_json")


def _check_tree(body: Any) -> None:
    """Refuse nesting past MAX_DEPTH and lone surrogates ("\\ud800": valid JSON, not valid Unicode).

    NUL and control characters are refused by the services that store text, with the field's name.
    """
    stack = [(body, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _bad(f"the JSON body is nested too deeply (more than {MAX_DEPTH} levels)")
        if isinstance(node, dict):
            for key, value in node.items():
                _check_string(key)
                stack.append((value, depth + 1))
        elif isinstance(node, list):
            stack.extend((value, depth + 1) for value in node)
        elif isinstance(node, str):
            _check_string(node)


def _check_string(value: str) -> None:
    if SURROGATE.search(value):
        raise _bad(
            "the JSON body holds a lone surrogate (such as \\ud800), which is not valid text"
        )


def json_body(*, optional: bool = False) -> dict:
    """The request's JSON object; 400 with a clear message for anything else.

    Refused: a body that is not JSON (or not an object), NaN and Infinity (not JSON), numbers too large
    for a float, nesting deeper than MAX_DEPTH, lone surrogates in any string. An empty body gives {} when
    `optional`. The body limit (1 MB, see labeler.web) applies before this reads anything.
    """
    data = request.get_data(cache=True)
    if optional and not data.strip():
        return {}
    if not request.is_json:
        raise _bad("send a JSON object with 'Content-Type: application/json'")
    try:
        body = json.loads(data, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise _bad(f"the JSON body is nested too deeply (more than {MAX_DEPTH} levels)") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, our refusals, 4300+ digit ints
        raise _bad(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object")
    _check_tree(body)
    return body


def query_int(name: str, *, default: int, lo: int, hi: int) -> int:
    """A whole-number query parameter within [lo, hi] (400 otherwise); absent or empty gives `default`."""
    return clean_int(
        request.args.get(name), f"'{name}'", lo=lo, hi=hi, default=default, from_text=True
    )
