"""labeler.validation: the text and number rules every service applies."""

from __future__ import annotations

import pytest

from labeler.errors import ValidationError
from labeler.validation import DB_INT_MAX, clean_id, clean_ids, clean_int, clean_text


@pytest.mark.parametrize(
    "value, expected",
    [("  Acne   study ", "Acne study"), ("Акне\tтест", "Акне тест"), ("", None), (None, None)],
)
def test_clean_text_keeps_text_and_collapses_whitespace(value, expected):
    assert clean_text(value, "the name", max_len=50) == expected


@pytest.mark.parametrize(
    "value, message",
    [
        ("a\x00b", "not allowed"),
        ("a\x1bb", "not allowed"),
        ("a\x7fb", "not allowed"),
        ("a\ud800b", "not valid Unicode"),
        ("face \u202eleft", "text-direction"),
        ("a\u2066b\u2069", "text-direction"),
        (5, "must be text"),
        (["a"], "must be text"),
        ("x" * 51, "too long"),
    ],
)
def test_clean_text_refuses_what_cannot_be_stored(value, message):
    with pytest.raises(ValidationError, match=message) as err:
        clean_text(value, "the name", max_len=50)
    assert err.value.message.startswith("the name ")


def test_clean_text_required_and_extra_fields():
    with pytest.raises(ValidationError, match="the name is required") as err:
        clean_text("  ", "the name", max_len=5, required=True, field="name")
    assert err.value.extra == {"field": "name"}
    assert clean_text(" a\n b ", "x", max_len=9, collapse=False) == "a\n b"


@pytest.mark.parametrize(
    "value, from_text, expected",
    [(3, False, 3), ("3", True, 3), (" 42 ", True, 42), (None, False, 7), ("", True, 7)],
)
def test_clean_int_reads_whole_numbers(value, from_text, expected):
    assert clean_int(value, "n", lo=0, hi=100, default=7, from_text=from_text) == expected


@pytest.mark.parametrize(
    "value, from_text",
    [
        (True, False),
        (1.0, False),
        (float("nan"), False),
        ("3", False),
        ("3.5", True),
        ("1e3", True),
        ("١٢", True),  # Arabic-Indic digits: int() reads them, a form field should not
        ("9" * 5000, True),
        (101, False),
        (-1, False),
        (2**63, False),
    ],
)
def test_clean_int_refuses_everything_else(value, from_text):
    with pytest.raises(ValidationError, match="^n must be"):
        clean_int(value, "n", lo=0, hi=100, from_text=from_text)


def test_clean_id_bounds_to_the_id_columns():
    assert clean_id(DB_INT_MAX, "id") == DB_INT_MAX
    for bad in (None, 0, DB_INT_MAX + 1, 2**63, "1"):
        with pytest.raises(ValidationError, match="^id "):
            clean_id(bad, "id")
    assert clean_ids([1, 2], "ids") == [1, 2]
    with pytest.raises(ValidationError, match="list of ids"):
        clean_ids(5, "ids")


def test_clean_text_keeps_right_to_left_text():
    """Hebrew and Arabic text, and the invisible direction marks (U+200E/U+200F) it may carry, are text."""
    assert clean_text("\u05e8\u05d2\u05dc \u200fשמאל", "the body site", max_len=50) == (
        "\u05e8\u05d2\u05dc \u200fשמאל"
    )
