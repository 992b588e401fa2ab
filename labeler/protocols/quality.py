"""Image quality (docs/domain.md section 3a, the ImageQX paper): a diagnosis, or why not.

Decisions: lesion (with an ICD-10 code or "ICD-10 missing" and a free-text diagnosis), no skin,
healthy skin, poor quality (with one or more explanations). Fusion: plurality over the four classes
with explicit ties; agreement: pairwise F1 per class and explanation, kappas, alpha (nominal).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ValidationError
from .base import (
    Choice,
    CleanLabel,
    IsKnownCode,
    ProtocolSpec,
    clean_answer_text,
    no_grade,
)
from .explanations import (
    EXPLANATIONS,
    clean_explanations,
    explanation_choices,
    with_explanations,
)

LESION, NO_SKIN, HEALTHY_SKIN, POOR_QUALITY = "lesion", "no_skin", "healthy_skin", "poor_quality"
QUALITY_DECISIONS = (LESION, NO_SKIN, HEALTHY_SKIN, POOR_QUALITY)
QUALITY_CHOICES = (
    Choice(LESION, "Lesion: give a diagnosis", "L"),
    Choice(NO_SKIN, "No skin", "N"),
    Choice(HEALTHY_SKIN, "Healthy skin", "H"),
    Choice(POOR_QUALITY, "Poor quality", "P"),
)
DECISION_NAMES = {
    LESION: "Lesion",
    NO_SKIN: "No skin",
    HEALTHY_SKIN: "Healthy skin",
    POOR_QUALITY: "Poor quality",
}


@dataclass(frozen=True)
class QualitySettings:
    """The quality protocol's own settings."""

    prescreen_model_id: str | None = None  # the model that flags poor photographs at import


class QualityProtocol(ProtocolSpec):
    name = "quality"
    title = "Image quality"
    question = "Can the image be assessed?"
    description = "assessable with an ICD-10 diagnosis, or no skin / healthy skin / poor quality"
    form_template = "labeling/forms/quality.html"
    has_diagnosis = True
    has_explanations = True
    has_classes = True
    fusion = "plurality"
    agreement = (
        "pairwise F1 per class and macro F1",
        "pairwise F1 per explanation",
        "per-rater macro F1 against the fused class (golden)",
        "Cohen's kappa per pair",
        "Fleiss' kappa (golden)",
        "Krippendorff's alpha (nominal)",
    )
    model_kind = "quality"
    export_columns = (
        "fused_class",
        "fusion_method",
        "tie",
        "tied_classes",
        "resolution",
        "votes",
        "diagnosis",
        "diagnosis_votes",
        "diagnosis_tie",
        "diagnosis_tied_codes",
        "adjudication",
        "adjudication_outdated",
    )
    manifest_field = "quality"
    decisions = QUALITY_DECISIONS
    asks_skin_type_question = True
    settings_keys = frozenset({"prescreen_model_id"})
    explanation_owner = POOR_QUALITY

    def parse_settings(self, raw: Mapping[str, Any] | None) -> QualitySettings:
        raw = raw or {}
        return QualitySettings(prescreen_model_id=raw.get("prescreen_model_id") or None)

    def merge_settings(self, new: dict[str, Any], changes: Mapping[str, Any]) -> None:
        if "prescreen_model_id" in changes:
            model_id = changes["prescreen_model_id"]
            if model_id is not None and not isinstance(model_id, str):
                raise ValidationError(
                    "'prescreen_model_id' must be a model id or null", field="prescreen_model_id"
                )
            new["prescreen_model_id"] = (model_id or "").strip() or None

    def form_spec(self, settings: Any) -> dict[str, Any]:
        return {
            "protocol": self.name,
            "explanations": explanation_choices(),
            "choices": [c.as_dict() for c in QUALITY_CHOICES],
        }

    def guideline_targets(self, spec: Mapping[str, Any]) -> list[tuple[str, str]]:
        out = [(f"decision:{c['value']}", c["label"]) for c in spec["choices"]]
        out += [
            (f"explanation:{e['value']}", f"Poor quality: {e['label'].lower()}")
            for e in spec["explanations"]
        ]
        return out

    def decision_name(self, decision: str) -> str:
        return DECISION_NAMES.get(decision) or super().decision_name(decision)

    def answer_name(self, label: Any, settings: Any) -> str:
        if label.decision == LESION:
            if label.icd10:
                return f"Lesion: {label.icd10}"
            return f"Lesion: ICD-10 missing: {label.icd10_missing_text or ''}".rstrip(": ")
        return with_explanations(self.decision_name(label.decision), label.explanations)

    def validate(
        self, data: Mapping[str, Any], settings: Any, is_known_code: IsKnownCode
    ) -> CleanLabel:
        decision = data.get("decision")
        if decision not in QUALITY_DECISIONS:
            raise ValidationError(
                f"'decision' must be one of {', '.join(QUALITY_DECISIONS)} (got {decision!r})",
                field="decision",
            )
        no_grade(data, "the quality protocol")
        icd10 = clean_answer_text(data, "icd10")
        missing_text = clean_answer_text(data, "icd10_missing_text")
        explanations = clean_explanations(data)
        if decision == LESION:
            if explanations:
                raise ValidationError(
                    "explanations are only for poor quality, not for a lesion",
                    field="explanations",
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
                "a lesion needs a diagnosis: an ICD-10 code, or 'ICD-10 missing' with the "
                "diagnosis as text",
                field="icd10_missing_text" if "icd10_missing_text" in data else "icd10",
            )
        if icd10 or missing_text:
            raise ValidationError(
                f"a diagnosis belongs to a lesion, not to {decision.replace('_', ' ')}",
                field="icd10",
            )
        if decision == POOR_QUALITY:
            if not explanations:
                raise ValidationError(
                    "poor quality needs at least one explanation ("
                    + ", ".join(e.label.lower() for e in EXPLANATIONS)
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

    def openapi_settings(self) -> dict[str, Any]:
        return {
            "prescreen_model_id": {
                "type": ["string", "null"],
                "description": "quality projects: the model that flags poor photographs at import",
            }
        }


PROTOCOL = QualityProtocol()
