"""The skin-type second question: a quality or severity project may also ask each rater the
Fitzpatrick skin type of the image (the project setting ``ask_skin_type``, off by default).

The answer is stored beside the main one in ``labels.skin_type`` and ``label_revisions.skin_type``:
1-6 for Fitzpatrick I-VI, 0 for "cannot assess", NULL when not asked or not answered. It is
optional: a rater may save the main answer and leave the skin type out. Answers are fused by the
median (``labeler.metrics.skin_type``) and the fused type fills the fairness breakdowns where the
import manifest has no type.

Pure: plain data in, plain data or a ValidationError out.
"""

from __future__ import annotations

from typing import Any

from ..errors import ValidationError
from . import get
from .skin_type import (
    CANNOT_ASSESS_CODE,
    CANNOT_ASSESS_NAME,
    ROMAN,
    SKIN_TYPES,
    clean_skin_type,
    skin_type_name,
)

SETTING = "ask_skin_type"  # the project setting (bool)
FIELD = "skin_type"  # the submission's and the label's field


def can_ask(protocol: Any) -> bool:
    """Whether a project of this protocol may turn the second question on (quality and severity;
    the skin-type protocol asks it already): the protocol's asks_skin_type_question."""
    return get(protocol).asks_skin_type_question


def clean_answer(asked: bool, value: Any) -> int | None:
    """The submitted skin type as stored (1-6, 0 cannot assess, None not answered).

    Refused (422) when the project does not ask the skin type, or when it is out of range.
    """
    if value is None or value == "":
        return None
    if not asked:
        raise ValidationError(
            "this project does not ask the skin type; leave 'skin_type' out (a lead can turn "
            "the question on in the project's settings)",
            field=FIELD,
        )
    return clean_skin_type(value, field=FIELD)


def answer_name(code: int | None) -> str:
    """3 -> 'Type III', 0 -> 'Cannot assess', None -> '' (not answered)."""
    return "" if code is None else skin_type_name(code)


def form_spec() -> dict[str, Any]:
    """What the labeling page renders for the second question: each answer with its key.

    The keys are Shift with the digit (Shift+1 .. Shift+6, Shift+0), which no main protocol uses;
    T moves the focus into the question for keyboards whose digits need Shift themselves.
    """
    choices = [{"value": t, "label": f"Type {ROMAN[t]}", "key": str(t)} for t in SKIN_TYPES]
    choices.append({"value": CANNOT_ASSESS_CODE, "label": CANNOT_ASSESS_NAME, "key": "0"})
    return {"field": FIELD, "choices": choices, "focus_key": "T"}
