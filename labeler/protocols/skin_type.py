"""Fitzpatrick skin type (docs/domain.md section 10): the third decision protocol.

Raters answer Fitzpatrick I-VI (stored as decision "graded" with grade 1-6) or "cannot assess"
(decision "cannot_assess", no grade); keys 1-6 and 0. Fusion is the median with vote counts and
ties, agreement the figures of ``labeler/metrics/skin_type.py``; there is no bundled model.

The pure helpers (``clean_skin_type``, ``skin_type_name``, ``answer_code``, ``fuse``) serve both this
protocol and the skin-type second question of quality and severity projects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ValidationError
from ..metrics import skin_type as metrics
from .base import Choice, CleanLabel, IsKnownCode, ProtocolSpec, no_diagnosis

GRADED, CANNOT_ASSESS = "graded", "cannot_assess"
DECISIONS = (GRADED, CANNOT_ASSESS)
SKIN_TYPES = metrics.SKIN_TYPES  # 1..6
CANNOT_ASSESS_CODE = metrics.CANNOT_ASSESS  # 0
NO_ANSWER_CODE = metrics.MISSING  # -1
ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV", 5: "V", 6: "VI"}
CANNOT_ASSESS_NAME = "Cannot assess"
# Fitzpatrick's own description of each type (skin colour and how it reacts to the sun), shown
# beside the buttons
HINTS = {
    1: "pale white; always burns, never tans",
    2: "white; usually burns, tans minimally",
    3: "light brown; sometimes burns, tans uniformly",
    4: "moderate brown; rarely burns, tans well",
    5: "dark brown; very rarely burns, tans very easily",
    6: "deeply pigmented dark brown to black; never burns",
}


def skin_type_name(code: Any) -> str:
    """3 -> 'Type III', 0 -> 'Cannot assess' (what a person reads; never the number alone)."""
    if code is None or code == NO_ANSWER_CODE:
        return "No answer"
    number = isinstance(code, (int, float)) and not isinstance(code, bool)
    if number and float(code).is_integer() and int(code) in ROMAN:
        return f"Type {ROMAN[int(code)]}"
    if code == CANNOT_ASSESS_CODE:
        return CANNOT_ASSESS_NAME
    return str(code)


def clean_skin_type(value: Any, field: str = "skin_type") -> int:
    """An answer as a code: 1-6 for Fitzpatrick I-VI, 0 for "cannot assess" (ValidationError else).

    Takes a whole number 0-6 (JSON 3 or 3.0, form text "3") or the text "cannot_assess".
    """
    if value == CANNOT_ASSESS:
        return CANNOT_ASSESS_CODE
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())  # ASCII digits only: "²".isdigit() holds but int() refuses it
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 6:
        raise ValidationError(
            f"the skin type must be Fitzpatrick I to VI (1 to 6) or 0 for 'cannot assess' "
            f"(got {repr(value)[:40]})",
            field=field,
        )
    return value


def answer_code(decision: str | None, grade: float | None) -> int:
    """A stored answer (decision, grade) as the metrics' code: 1-6, 0 cannot assess, -1 none."""
    if decision == CANNOT_ASSESS:
        return CANNOT_ASSESS_CODE
    if decision == GRADED and grade is not None and int(grade) in ROMAN:
        return int(grade)
    return NO_ANSWER_CODE


def fuse(codes: np.ndarray) -> metrics.SkinTypeFusion:
    """Median fusion with votes and ties over an (images, raters) code matrix (see answer_code)."""
    return metrics.fuse_skin_types(codes)


def fused_row(fusion: metrics.SkinTypeFusion, i: int) -> dict[str, Any]:
    """One image's fused skin type as exported: the type (None on a tie or with no grade), the
    median, the votes per type, "cannot assess" answers and the tied pair."""
    fused = int(fusion.fused[i])
    median = float(fusion.median[i])
    return {
        "skin_type": fused if fused >= 1 else None,
        "median": None if np.isnan(median) else median,
        "votes": {ROMAN[t]: int(fusion.votes[i, t - 1]) for t in SKIN_TYPES},
        "cannot_assess": int(fusion.cannot_assess[i]),
        "count": int(fusion.n_graded[i]),
        "tie": [int(fusion.tie_low[i]), int(fusion.tie_high[i])] if fusion.tie[i] else None,
    }


@dataclass(frozen=True)
class SkinTypeSettings:
    """Skin type has no protocol-specific settings (the shared fusion/agreement ones apply)."""


class SkinTypeProtocol(ProtocolSpec):
    name = "skin_type"
    title = "Fitzpatrick skin type"
    question = "Fitzpatrick skin type"
    description = "Fitzpatrick I to VI, or cannot assess"
    form_template = "labeling/forms/skin_type.html"
    has_scale = True
    scale_noun = "skin type I–VI"
    fusion = "median"
    agreement = (
        "quadratic-weighted Cohen's kappa per pair",
        "Krippendorff's alpha (ordinal)",
        "exact and within-one agreement per pair",
        "per-rater mean absolute deviation from the golden consensus",
    )
    decisions = DECISIONS
    per_case = True
    answers_are_skin_types = True
    non_graded = (CANNOT_ASSESS,)
    model_kind = None  # no bundled model: the fused type feeds the fairness breakdowns
    export_columns = (
        "skin_type",
        "skin_type_median",
        "skin_type_tie",
        "skin_type_votes",
        "skin_type_cannot_assess",
    )
    manifest_field = None  # no model to train: the manifest's fitzpatrick carries the fused type

    def parse_settings(self, raw: Mapping[str, Any] | None) -> SkinTypeSettings:
        return SkinTypeSettings()

    def choices(self) -> Sequence[Choice]:
        return [Choice(t, ROMAN[t], str(t)) for t in SKIN_TYPES]

    def form_spec(self, settings: Any) -> dict[str, Any]:
        return {
            "protocol": self.name,
            "scale": [{**c.as_dict(), "hint": HINTS[c.value]} for c in self.choices()],
            "non_graded": [Choice(CANNOT_ASSESS, CANNOT_ASSESS_NAME, "0").as_dict()],
            "explanations": [],
        }

    def validate(
        self, data: Mapping[str, Any], settings: Any, is_known_code: IsKnownCode
    ) -> CleanLabel:
        decision = data.get("decision") or GRADED
        if decision not in DECISIONS:
            raise ValidationError(
                f"'decision' must be one of {', '.join(DECISIONS)} (got {decision!r})",
                field="decision",
            )
        no_diagnosis(data, "skin type")
        if data.get("explanations"):
            raise ValidationError(
                "the skin type protocol takes no explanations", field="explanations"
            )
        if decision == CANNOT_ASSESS:
            if data.get("grade") is not None:
                raise ValidationError("a skin type does not go with 'cannot assess'", field="grade")
            return CleanLabel(CANNOT_ASSESS)
        if data.get("grade") is None:
            raise ValidationError(
                "choose a skin type: Fitzpatrick I to VI (1 to 6), or 'cannot assess'",
                field="grade",
            )
        code = clean_skin_type(data.get("grade"), field="grade")
        if code == CANNOT_ASSESS_CODE:
            raise ValidationError(
                "the skin type must be Fitzpatrick I to VI (1 to 6); for 'cannot assess' send "
                "the decision 'cannot_assess'",
                field="grade",
            )
        return CleanLabel(GRADED, grade=float(code))

    def guideline_targets(self, spec: Mapping[str, Any]) -> list[tuple[str, str]]:
        out = [(f"grade:{s['value']}", skin_type_name(s["value"])) for s in spec["scale"]]
        return out + [(f"decision:{c['value']}", c["label"]) for c in spec["non_graded"]]

    def decision_name(self, decision: str) -> str:
        return CANNOT_ASSESS_NAME if decision == CANNOT_ASSESS else "Skin type"

    def answer_name(self, label: Any, settings: Any) -> str:
        return skin_type_name(answer_code(label.decision, label.grade))


PROTOCOL = SkinTypeProtocol()
