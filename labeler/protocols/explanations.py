"""The explanations of an image that cannot be judged, shared by quality ("poor quality") and
severity ("cannot assess"): codes, the words raters read, keyboard keys and their validation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ValidationError
from .base import Choice

EXPLANATIONS = (
    Choice("too_far_away", "Too far away", "A"),
    Choice("bad_framing", "Bad framing", "F"),
    Choice("lesion_covered", "Lesion covered", "C"),
    Choice("blurry", "Blurry", "B"),
    Choice("bad_light", "Bad light", "D"),
    Choice("low_resolution", "Low resolution", "R"),
)
EXPLANATION_CODES: tuple[str, ...] = tuple(e.value for e in EXPLANATIONS)
EXPLANATION_NAMES = {e.value: e.label for e in EXPLANATIONS}


def explanation_name(value: object) -> str:
    """'too_far_away' -> 'Too far away'."""
    text = str(value)
    return EXPLANATION_NAMES.get(text) or text.replace("_", " ").capitalize()


def clean_explanations(data: Mapping[str, Any]) -> list[str]:
    """A submission's explanations in canonical order without duplicates (ValidationError else)."""
    value = data.get("explanations")
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError(
            "'explanations' must be a list of explanation codes", field="explanations"
        )
    unknown = sorted(set(value) - set(EXPLANATION_CODES))
    if unknown:
        raise ValidationError(
            f"unknown explanation {', '.join(map(repr, unknown))}; choose from {', '.join(EXPLANATION_CODES)}",
            field="explanations",
        )
    return [code for code in EXPLANATION_CODES if code in value]


def explanation_choices() -> list[dict[str, Any]]:
    return [e.as_dict() for e in EXPLANATIONS]


def with_explanations(name: str, codes: Any) -> str:
    """'Poor quality (Blurry, Bad light)': an answer's words with its explanations'."""
    words = [explanation_name(c) for c in codes or ()]
    return f"{name} ({', '.join(words)})" if words else name
