"""What every decision protocol declares (docs/domain.md section 3), and the pieces they share.

A protocol is one module in this package with one ``ProtocolSpec`` subclass, registered in
``labeler/protocols/__init__.py``. Labeling, reports, exports, the training manifest and the OpenAPI
document ask the protocol object; nothing outside this package compares protocol names.

Pure: plain data in, plain data or a ValidationError out (no ORM objects, no Flask).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import ValidationError
from ..validation import clean_text

MAX_TEXT = 500

IsKnownCode = Callable[[str], "str | None"]
"""Returns the canonical (dotted) form of a known ICD-10 code, or None for an unknown one."""


@dataclass(frozen=True)
class Choice:
    """One answer a rater can pick: its stored value, what the rater reads, its keyboard key."""

    value: Any
    label: str
    key: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "label": self.label, "key": self.key}


@dataclass(frozen=True)
class CleanLabel:
    """A validated answer in the label columns every protocol shares."""

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


def clean_answer_text(data: Mapping[str, Any], key: str) -> str | None:
    """A free-text field of a submission, trimmed (None when empty)."""
    return clean_text(data.get(key), f"'{key}'", max_len=MAX_TEXT, field=key)


def no_grade(data: Mapping[str, Any], why: str) -> None:
    if data.get("grade") is not None:
        raise ValidationError(f"a grade does not belong to {why}", field="grade")


def no_diagnosis(data: Mapping[str, Any], protocol_title: str) -> None:
    if clean_answer_text(data, "icd10") or clean_answer_text(data, "icd10_missing_text"):
        raise ValidationError(f"the {protocol_title} protocol takes no diagnosis", field="icd10")


class ProtocolSpec(ABC):
    """The interface of a decision protocol; one subclass per module of this package.

    Class attributes describe the protocol; methods validate, describe the form and read settings.
    Subclasses override what they need; the defaults suit a protocol with no scale and no model.
    """

    name: ClassVar[str]  # stored in projects.protocol (at most 16 characters)
    title: ClassVar[str]  # what people read: "Image quality"
    question: ClassVar[str]  # the legend of the labeling form
    description: ClassVar[str]  # what the answers are, on the new-project page
    form_template: ClassVar[str]  # the labeling form, included by templates/labeling/item_page.html
    has_scale: ClassVar[bool] = False  # answers are grades on an ordered scale
    scale_noun: ClassVar[str] = "grade"  # what one step of the scale is called, in the key help
    has_classes: ClassVar[bool] = False  # answers are unordered classes (plurality fusion)
    has_diagnosis: ClassVar[bool] = False  # answers may carry an ICD-10 diagnosis
    has_explanations: ClassVar[bool] = False  # some answers need explanations
    explanation_owner: ClassVar[str | None] = None  # the decision the explanations belong to
    fusion: ClassVar[str]  # how the raters' answers are fused: "plurality", "mean", "median"
    agreement: ClassVar[tuple[str, ...]] = ()  # the agreement figures that apply, in words
    model_kind: ClassVar[str | None] = None  # the bundled model trained on it; None: no model
    export_columns: ClassVar[tuple[str, ...]] = ()  # its columns of the fused export
    manifest_field: ClassVar[str | None] = None  # its object in each training-manifest line
    decisions: ClassVar[tuple[str, ...]] = ()  # every stored decision value
    per_case: ClassVar[bool] = False  # may be answered once per case (the answer is the patient's)
    asks_skin_type_question: ClassVar[bool] = False  # may add the skin-type second question
    answers_are_skin_types: ClassVar[bool] = False  # the answer is a Fitzpatrick type (reports)
    non_graded: ClassVar[tuple[str, ...]] = ()  # decisions that carry no grade (scale protocols)
    settings_keys: ClassVar[frozenset[str]] = frozenset()  # top-level settings it owns

    # -- settings ---------------------------------------------------------------------------------

    def default_settings(self) -> dict[str, Any]:
        """The protocol's own keys of a new project's settings."""
        return {}

    def merge_settings(self, new: dict[str, Any], changes: Mapping[str, Any]) -> None:
        """Validate the protocol's own keys of a settings change into `new` (ValidationError)."""

    def manifest_header(self, settings: Any) -> dict[str, Any]:
        """Fields of the training manifest's header line beside its protocol."""
        return {}

    def openapi_settings(self) -> dict[str, Any]:
        """OpenAPI properties of the protocol's own settings."""
        return {}

    # -- answers ----------------------------------------------------------------------------------

    @abstractmethod
    def parse_settings(self, raw: Mapping[str, Any] | None) -> Any:
        """The protocol's own settings as a typed object, defaults filled in."""

    @abstractmethod
    def validate(
        self, data: Mapping[str, Any], settings: Any, is_known_code: IsKnownCode
    ) -> CleanLabel:
        """The clean label for a submission, or a ValidationError in the rater's words."""

    @abstractmethod
    def form_spec(self, settings: Any) -> dict[str, Any]:
        """What the labeling form renders: choices with their keys (plain JSON-able data)."""

    def guideline_targets(self, spec: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(target key, words) of what guideline definitions attach to, from form_spec's output."""
        return []

    def decision_name(self, decision: str) -> str:
        """A stored decision in words."""
        return decision.replace("_", " ").capitalize()

    def answer_name(self, label: Any, settings: Any) -> str:
        """A whole answer in words, as a rater or lead reads it (never a code): `label` is anything
        with the label columns as attributes (decision, grade, icd10, icd10_missing_text,
        explanations), `settings` the protocol's parsed settings."""
        return self.decision_name(label.decision)

    def __repr__(self) -> str:
        return f"<protocol {self.name}>"
