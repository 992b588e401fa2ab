"""The two decision protocols (docs/domain.md section 3): vocabularies, keyboard keys and submission validation.

Pure: plain data in, a CleanLabel or a ValidationError out. The ICD-10 check is passed in as a function so
this module stays free of the code list.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ValidationError
from ..validation import clean_text

LESION, NO_SKIN, HEALTHY_SKIN, POOR_QUALITY = "lesion", "no_skin", "healthy_skin", "poor_quality"
QUALITY_DECISIONS = (LESION, NO_SKIN, HEALTHY_SKIN, POOR_QUALITY)
GRADED, NOT_ACNE, CANNOT_ASSESS = "graded", "not_acne", "cannot_assess"
NON_GRADED = (NOT_ACNE, CANNOT_ASSESS)
SEVERITY_DECISIONS = (GRADED, *NON_GRADED)

# (value, label shown to raters, keyboard key)
QUALITY_CHOICES = (
    (LESION, "Lesion: give a diagnosis", "L"),
    (NO_SKIN, "No skin", "N"),
    (HEALTHY_SKIN, "Healthy skin", "H"),
    (POOR_QUALITY, "Poor quality", "P"),
)
EXPLANATIONS = (
    ("too_far_away", "Too far away", "A"),
    ("bad_framing", "Bad framing", "F"),
    ("lesion_covered", "Lesion covered", "C"),
    ("blurry", "Blurry", "B"),
    ("bad_light", "Bad light", "D"),
    ("low_resolution", "Low resolution", "R"),
)
EXPLANATION_CODES = tuple(code for code, _label, _key in EXPLANATIONS)
NON_GRADED_CHOICES = (
    (NOT_ACNE, "Not acne", "N"),
    (CANNOT_ASSESS, "Cannot assess: poor quality", "X"),
)
MAX_TEXT = 500
# What a person reads wherever a decision is shown (pages, never the stored codes)
DECISION_NAMES = {
    LESION: "Lesion",
    NO_SKIN: "No skin",
    HEALTHY_SKIN: "Healthy skin",
    POOR_QUALITY: "Poor quality",
    GRADED: "Graded",
    NOT_ACNE: "Not acne",
    CANNOT_ASSESS: "Cannot assess: poor quality",
}
EXPLANATION_NAMES = {code: label for code, label, _key in EXPLANATIONS}


def decision_name(value: object) -> str:
    """'no_skin' -> 'No skin' (an unknown value is shown in words, never as a code)."""
    text = str(value)
    return DECISION_NAMES.get(text) or text.replace("_", " ").capitalize()


def explanation_name(value: object) -> str:
    """'too_far_away' -> 'Too far away'."""
    text = str(value)
    return EXPLANATION_NAMES.get(text) or text.replace("_", " ").capitalize()


IsKnownCode = Callable[[str], "str | None"]
"""Returns the canonical (dotted) form of a known ICD-10 code, or None for an unknown one."""


@dataclass(frozen=True)
class CleanLabel:
    decision: str
    icd10: str | None = None
    icd10_missing_text: str | None = None
    explanations: list[str] = field(default_factory=list)
    grade: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "icd10": self.icd10,
            "icd10_missing_text": self.icd10_missing_text,
            "explanations": list(self.explanations),
            "grade": self.grade,
        }


DEFAULT_SEVERITY_SCALE = [
    {"value": 1, "name": "Clear"},
    {"value": 2, "name": "Almost clear"},
    {"value": 3, "name": "Mild"},
    {"value": 4, "name": "Moderate"},
    {"value": 5, "name": "Severe"},
]


def severity_scale(settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The project's ordinal scale: [{value, name}, ...] (default 1 Clear ... 5 Severe)."""
    return list(settings.get("scale") or DEFAULT_SEVERITY_SCALE)


def form_spec(protocol: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """What the labeling page renders: choices, explanations, scale, each with its key."""
    explanations = [{"value": v, "label": lbl, "key": k} for v, lbl, k in EXPLANATIONS]
    if protocol == "quality":
        return {
            "protocol": protocol,
            "explanations": explanations,
            "choices": [{"value": v, "label": lbl, "key": k} for v, lbl, k in QUALITY_CHOICES],
        }
    scale = [
        {"value": s["value"], "label": str(s["name"]), "key": str(i + 1) if i < 9 else None}
        for i, s in enumerate(severity_scale(settings))
    ]
    non_graded = (
        [{"value": v, "label": lbl, "key": k} for v, lbl, k in NON_GRADED_CHOICES]
        if settings.get("allow_non_graded")
        else []
    )
    return {
        "protocol": protocol,
        "scale": scale,
        "non_graded": non_graded,
        "explanations": explanations,
    }


def _text(data: Mapping[str, Any], key: str) -> str | None:
    return clean_text(data.get(key), f"'{key}'", max_len=MAX_TEXT, field=key)


def _explanations(data: Mapping[str, Any]) -> list[str]:
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
    return [code for code in EXPLANATION_CODES if code in value]  # canonical order, no duplicates


def _no_grade(data: Mapping[str, Any], why: str) -> None:
    if data.get("grade") is not None:
        raise ValidationError(f"a grade does not belong to {why}", field="grade")


def validate_quality(data: Mapping[str, Any], is_known_code: IsKnownCode) -> CleanLabel:
    decision = data.get("decision")
    if decision not in QUALITY_DECISIONS:
        raise ValidationError(
            f"'decision' must be one of {', '.join(QUALITY_DECISIONS)} (got {decision!r})",
            field="decision",
        )
    _no_grade(data, "the quality protocol")
    icd10, missing_text, explanations = (
        _text(data, "icd10"),
        _text(data, "icd10_missing_text"),
        _explanations(data),
    )
    if decision == LESION:
        if explanations:
            raise ValidationError(
                "explanations are only for poor quality, not for a lesion", field="explanations"
            )
        if icd10 and missing_text:
            raise ValidationError(
                "give either an ICD-10 code or 'ICD-10 missing' with a diagnosis, not both",
                field="icd10",
            )
        if icd10:
            canonical = is_known_code(icd10)
            if canonical is None:
                raise ValidationError(
                    f"unknown ICD-10 code {icd10!r}: pick one from the list, or choose "
                    "'ICD-10 missing' and type the diagnosis",
                    field="icd10",
                )
            return CleanLabel(LESION, icd10=canonical)
        if missing_text:
            return CleanLabel(LESION, icd10_missing_text=missing_text)
        raise ValidationError(
            "a lesion needs a diagnosis: an ICD-10 code, or 'ICD-10 missing' with the diagnosis "
            "as text",
            field="icd10_missing_text" if "icd10_missing_text" in data else "icd10",
        )
    if icd10 or missing_text:
        raise ValidationError(
            f"a diagnosis belongs to a lesion, not to {decision.replace('_', ' ')}", field="icd10"
        )
    if decision == POOR_QUALITY:
        if not explanations:
            raise ValidationError(
                "poor quality needs at least one explanation ("
                + ", ".join(lbl.lower() for _c, lbl, _k in EXPLANATIONS)
                + ")",
                field="explanations",
            )
        return CleanLabel(POOR_QUALITY, explanations=explanations)
    if explanations:
        raise ValidationError(
            f"explanations are only for poor quality, not for {decision.replace('_', ' ')}",
            field="explanations",
        )
    return CleanLabel(decision)


def validate_severity(data: Mapping[str, Any], settings: Mapping[str, Any]) -> CleanLabel:
    decision = data.get("decision") or GRADED
    allowed = SEVERITY_DECISIONS if settings.get("allow_non_graded") else (GRADED,)
    if decision not in allowed:
        if decision in NON_GRADED:
            raise ValidationError(
                f"this project does not allow non-graded answers such as {decision!r}",
                field="decision",
            )
        raise ValidationError(
            f"'decision' must be one of {', '.join(allowed)} (got {decision!r})", field="decision"
        )
    if _text(data, "icd10") or _text(data, "icd10_missing_text"):
        raise ValidationError("the severity protocol takes no diagnosis", field="icd10")
    explanations = _explanations(data)
    if decision == GRADED:
        if explanations:
            raise ValidationError(
                "explanations are only for 'cannot assess', not for a grade", field="explanations"
            )
        return CleanLabel(GRADED, grade=_grade(data.get("grade"), settings))
    _no_grade(data, f"the answer {decision!r}")
    if decision == CANNOT_ASSESS:
        if not explanations:
            raise ValidationError(
                "'cannot assess' needs at least one explanation", field="explanations"
            )
        return CleanLabel(CANNOT_ASSESS, explanations=explanations)
    if explanations:
        raise ValidationError(
            "explanations are only for 'cannot assess', not for 'not acne'", field="explanations"
        )
    return CleanLabel(NOT_ACNE)


def _grade(value: Any, settings: Mapping[str, Any]) -> float:
    values = [s["value"] for s in severity_scale(settings)]
    shown = ", ".join(str(v) for v in values)
    if value is None:
        raise ValidationError(f"choose a grade ({shown})", field="grade")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationError(f"the grade must be a number on the scale ({shown})", field="grade")
    if value not in values:
        raise ValidationError(
            f"grade {value} is off the scale; choose one of {shown}", field="grade"
        )
    return float(value)


def validate_submission(
    protocol: str, settings: Mapping[str, Any], data: Mapping[str, Any], is_known_code: IsKnownCode
) -> CleanLabel:
    """The clean label for a submission under the project's protocol, or a ValidationError saying what is wrong."""
    if not isinstance(data, Mapping):
        raise ValidationError("the label must be a JSON object")
    if protocol == "quality":
        return validate_quality(data, is_known_code)
    if protocol == "severity":
        return validate_severity(data, settings)
    raise ValidationError(f"unknown protocol {protocol!r}")
