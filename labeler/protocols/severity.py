"""Acne severity (docs/domain.md section 3b, the Microsoft/Nestlé acne severity study).

An ordinal grade on the project's scale (default 1 Clear ... 5 Severe); a project may allow the
non-graded answers "not acne" and "cannot assess: poor quality" (with explanations). Fusion: the mean
grade with median, std and count; agreement: per-rater RMSE with the bar, quadratic kappa, ICC,
Krippendorff's alpha (ordinal and interval). Keys: on a scale of whole numbers 0-9 the key is the
grade itself (0-4 scale: keys 0-4); on any other scale keys 1-9 follow the positions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from ..errors import ValidationError
from .base import Choice, CleanLabel, IsKnownCode, ProtocolSpec, no_diagnosis, no_grade
from .explanations import clean_explanations, explanation_choices, with_explanations

GRADED, NOT_ACNE, CANNOT_ASSESS = "graded", "not_acne", "cannot_assess"
NON_GRADED = (NOT_ACNE, CANNOT_ASSESS)
SEVERITY_DECISIONS = (GRADED, *NON_GRADED)
NON_GRADED_CHOICES = (
    Choice(NOT_ACNE, "Not acne", "N"),
    Choice(CANNOT_ASSESS, "Cannot assess: poor quality", "X"),
)
DECISION_NAMES = {
    GRADED: "A grade",
    NOT_ACNE: "Not acne",
    CANNOT_ASSESS: "Cannot assess: poor quality",
}
DEFAULT_SEVERITY_SCALE = [
    {"value": 1, "name": "Clear"},
    {"value": 2, "name": "Almost clear"},
    {"value": 3, "name": "Mild"},
    {"value": 4, "name": "Moderate"},
    {"value": 5, "name": "Severe"},
]
SCALE_SIZE = (2, 11)  # a grade scale has 2 to 11 steps (0-10 at most)
SCALE_NAME_MAX = 40
# a grade's value, either way: the fused mean, the cut midpoints, RMSE's squares and ICC's sums of
# squares must stay finite (a scale of 1e308 and 1.7e308 made them Infinity, which is not JSON)
SCALE_VALUE_MAX = 1_000_000


def severity_scale(settings: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The project's ordinal scale: [{value, name}, ...] (default 1 Clear ... 5 Severe)."""
    return list((settings or {}).get("scale") or DEFAULT_SEVERITY_SCALE)


def show_number(value: float) -> str:
    """A grade as people write it: 2, not 2.0; 2.5 as is."""
    return str(int(value)) if float(value).is_integer() else str(value)


def _number(value: Any, what: str, field: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationError(f"{what} must be a number (got {value!r})", field=field)
    return int(value) if float(value).is_integer() else float(value)


def parse_number(text: Any, what: str, field: str) -> int | float:
    """A number from form text or JSON ("2", "2.5", 2): whole numbers come back as int."""
    if isinstance(text, str):
        raw = text.strip()
        try:
            value: Any = float(raw)
        except ValueError:
            raise ValidationError(f"{what} must be a number (got {raw!r})", field=field) from None
        return _number(value, what, field)
    return _number(text, what, field)


def validate_scale(scale: Any) -> list[dict[str, Any]]:
    """A severity scale: 2 to 11 steps of {value, name}, values ascending and distinct, names distinct."""
    if not isinstance(scale, list):
        raise ValidationError(
            "the scale must be a list of steps, each {value, name}", field="scale"
        )
    low, high = SCALE_SIZE
    if not low <= len(scale) <= high:
        raise ValidationError(
            f"the scale needs {low} to {high} steps (got {len(scale)})", field="scale"
        )
    steps: list[dict[str, Any]] = []
    for i, step in enumerate(scale, start=1):
        if not isinstance(step, Mapping) or set(step) != {"value", "name"}:
            raise ValidationError(
                f"step {i} of the scale must be {{value, name}} (got {step!r})", field="scale"
            )
        value = parse_number(step["value"], f"the value of step {i}", "scale")
        if abs(value) > SCALE_VALUE_MAX:
            raise ValidationError(
                f"the value of step {i} must be from {-SCALE_VALUE_MAX:,} to {SCALE_VALUE_MAX:,}"
                f" (got {show_number(value)})",
                field="scale",
            )
        name = " ".join(str(step["name"] or "").split()) if isinstance(step["name"], str) else ""
        if not name or len(name) > SCALE_NAME_MAX:
            raise ValidationError(
                f"step {i} of the scale needs a name of 1 to {SCALE_NAME_MAX} characters",
                field="scale",
            )
        steps.append({"value": value, "name": name})
    for prev, step in pairwise(steps):
        if step["value"] <= prev["value"]:
            raise ValidationError(
                "the scale's values must ascend with no repeats: "
                f"{prev['value']} ({prev['name']}) is followed by {step['value']} ({step['name']})",
                field="scale",
            )
    names = [s["name"].casefold() for s in steps]
    if len(set(names)) != len(names):
        raise ValidationError("two steps of the scale have the same name", field="scale")
    return steps


def grade_keys(values: list[float]) -> list[str | None]:
    """Keyboard keys of a scale's steps: the value itself when every value is a whole number 0-9,
    else the position 1-9 (steps past the ninth have no key)."""
    if all(float(v).is_integer() and 0 <= v <= 9 for v in values):
        return [str(int(v)) for v in values]
    return [str(i + 1) if i < 9 else None for i in range(len(values))]


@dataclass(frozen=True)
class SeveritySettings:
    """The severity protocol's own settings, defaults filled in."""

    scale: tuple[dict[str, Any], ...] = tuple(DEFAULT_SEVERITY_SCALE)
    allow_non_graded: bool = False

    @property
    def scale_values(self) -> list[float]:
        return [float(step["value"]) for step in self.scale]

    def grade_name(self, grade: float | None) -> str | None:
        """'3 · Mild' for grade 3 on the default scale; None for a grade off the scale."""
        for step in self.scale:
            if grade is not None and float(step["value"]) == float(grade):
                return f"{show_number(step['value'])} · {step['name']}"
        return None


class SeverityProtocol(ProtocolSpec):
    name = "severity"
    title = "Acne severity"
    question = "Acne severity"
    description = "an acne severity grade on the project's scale, by default 1 Clear to 5 Severe"
    form_template = "labeling/forms/severity.html"
    has_scale = True
    has_explanations = True
    fusion = "mean"
    agreement = (
        "per-rater RMSE against the golden consensus, with the bar",
        "per-rater MAE",
        "quadratic-weighted Cohen's kappa per pair",
        "Fleiss' kappa (golden)",
        "ICC(2,1) and ICC(3,1) (golden)",
        "Krippendorff's alpha (ordinal and interval)",
    )
    model_kind = "severity"
    export_columns = ("severity", "grade_votes", "non_graded")
    manifest_field = "severity"
    decisions = SEVERITY_DECISIONS
    per_case = True
    asks_skin_type_question = True
    non_graded = NON_GRADED
    settings_keys = frozenset({"scale", "allow_non_graded"})
    explanation_owner = CANNOT_ASSESS

    def default_settings(self) -> dict[str, Any]:
        return {"scale": [dict(step) for step in DEFAULT_SEVERITY_SCALE], "allow_non_graded": False}

    def parse_settings(self, raw: Mapping[str, Any] | None) -> SeveritySettings:
        raw = raw or {}
        return SeveritySettings(
            scale=tuple(raw.get("scale") or DEFAULT_SEVERITY_SCALE),
            allow_non_graded=bool(raw.get("allow_non_graded", False)),
        )

    def merge_settings(self, new: dict[str, Any], changes: Mapping[str, Any]) -> None:
        if "scale" in changes:
            new["scale"] = validate_scale(changes["scale"])
        if "allow_non_graded" in changes:
            if not isinstance(changes["allow_non_graded"], bool):
                raise ValidationError(
                    "'allow_non_graded' must be true or false", field="allow_non_graded"
                )
            new["allow_non_graded"] = changes["allow_non_graded"]

    def openapi_settings(self) -> dict[str, Any]:
        return {
            "scale": {
                "type": "array",
                "description": f"severity: {SCALE_SIZE[0]}-{SCALE_SIZE[1]} steps, values ascending "
                "and distinct; on whole numbers 0-9 the labeling keys are the values",
                "items": {
                    "type": "object",
                    "properties": {"value": {"type": "number"}, "name": {"type": "string"}},
                },
            },
            "allow_non_graded": {
                "type": "boolean",
                "description": "severity: also offer 'not acne' and 'cannot assess'",
            },
        }

    def manifest_header(self, settings: SeveritySettings) -> dict[str, Any]:
        return {"scale": settings.scale_values}  # grades in the manifest are scale values

    def form_spec(self, settings: SeveritySettings) -> dict[str, Any]:
        values = settings.scale_values
        keys = grade_keys(values)
        return {
            "protocol": self.name,
            "scale": [
                {"value": s["value"], "label": str(s["name"]), "key": k}
                for s, k in zip(settings.scale, keys, strict=True)
            ],
            "non_graded": [c.as_dict() for c in NON_GRADED_CHOICES]
            if settings.allow_non_graded
            else [],
            "explanations": explanation_choices(),
        }

    def guideline_targets(self, spec: Mapping[str, Any]) -> list[tuple[str, str]]:
        out = [
            (f"grade:{show_number(s['value'])}", f"{show_number(s['value'])} · {s['label']}")
            for s in spec["scale"]
        ]
        out += [(f"decision:{c['value']}", c["label"]) for c in spec["non_graded"]]
        if spec["non_graded"]:
            out += [
                (f"explanation:{e['value']}", f"Cannot assess: {e['label'].lower()}")
                for e in spec["explanations"]
            ]
        return out

    def decision_name(self, decision: str) -> str:
        return DECISION_NAMES.get(decision) or super().decision_name(decision)

    def answer_name(self, label: Any, settings: SeveritySettings) -> str:
        if label.decision == GRADED:
            return settings.grade_name(label.grade) or f"Grade {show_number(label.grade or 0)}"
        return with_explanations(self.decision_name(label.decision), label.explanations)

    def validate(
        self, data: Mapping[str, Any], settings: SeveritySettings, is_known_code: IsKnownCode
    ) -> CleanLabel:
        decision = data.get("decision") or GRADED
        allowed = SEVERITY_DECISIONS if settings.allow_non_graded else (GRADED,)
        if decision not in allowed:
            if decision in NON_GRADED:
                raise ValidationError(
                    f"this project does not allow non-graded answers such as {decision!r}",
                    field="decision",
                )
            raise ValidationError(
                f"'decision' must be one of {', '.join(allowed)} (got {decision!r})",
                field="decision",
            )
        no_diagnosis(data, "severity")
        explanations = clean_explanations(data)
        if decision == GRADED:
            if explanations:
                raise ValidationError(
                    "explanations are only for 'cannot assess', not for a grade",
                    field="explanations",
                )
            return CleanLabel(GRADED, grade=_grade(data.get("grade"), settings))
        no_grade(data, f"the answer {decision!r}")
        if decision == CANNOT_ASSESS:
            if not explanations:
                raise ValidationError(
                    "'cannot assess' needs at least one explanation", field="explanations"
                )
            return CleanLabel(CANNOT_ASSESS, explanations=explanations)
        if explanations:
            raise ValidationError(
                "explanations are only for 'cannot assess', not for 'not acne'",
                field="explanations",
            )
        return CleanLabel(NOT_ACNE)


def _grade(value: Any, settings: SeveritySettings) -> float:
    values = [s["value"] for s in settings.scale]
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


PROTOCOL = SeverityProtocol()
