"""Project settings: the one place for their defaults, their validation and how code reads them.

``project.settings`` is a JSON dict. Readers go through ``read_settings`` (or the small accessors
below), which fill in the defaults, so a project stored before a key existed reads the same as a new
one. Writers go through ``merge_settings``, which validates a partial change and returns the whole
new dict; the service in ``projects.services`` adds the rules that need the database (labels exist,
the prescreen model exists) and the audit event.

Pure: plain data in, plain data or a ValidationError out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import protocols
from ..errors import ValidationError
from ..protocols import skin_type_question
from ..protocols.quality import QUALITY_DECISIONS
from ..protocols.severity import DEFAULT_SEVERITY_SCALE
from ..validation import text_problem

TIE_POLICIES = ("unresolved", "precedence")
FUSION_METHODS = ("plurality", "dawid_skene")
FUSION_METHOD_NAMES = {"plurality": "Plurality vote", "dawid_skene": "Dawid-Skene"}
QUALITY_CLASS_NAMES = {
    "lesion": "Lesion",
    "no_skin": "No skin",
    "healthy_skin": "Healthy skin",
    "poor_quality": "Poor quality",
}
LIMITS = {  # inclusive bounds of the whole-number settings
    "fusion.explanation_k": (1, 50),
    "agreement.min_pair_images": (1, 100_000),
    "agreement.min_group_images": (1, 1_000_000),
    "agreement.min_eval_images": (1, 1_000_000),
}
DEFAULT_FUSION = {
    "method": "plurality",
    "tie_policy": "unresolved",
    "precedence": [],
    "explanation_k": 1,
}
# min_eval_images: a model's evaluation on fewer golden images gives its figures but no verdict
DEFAULT_AGREEMENT = {"min_pair_images": 1, "min_group_images": 30, "min_eval_images": 20}
# the order of each rater's fold items: "seeded" (the allocation's shuffle) or "uncertainty" (active
# learning: the current model's least certain images first; golden items keep their seeded places)
QUEUE_ORDERS = ("seeded", "uncertainty")
QUEUE_ORDER_NAMES = {"seeded": "Seeded shuffle", "uncertainty": "Model uncertainty first"}
DEFAULT_QUEUE = {"order": "seeded"}
# cases (docs/domain.md section 11): "view" shows a case's photos together; "unit" is what one answer
# labels, "image" (each photo its own answer) or "case" (one answer for all its photos, where the
# protocol allows it: labeler/cases/units.py); "show" names the import manifest's columns that raters
# read beside the photos (the body site is always shown)
CASE_UNITS = ("image", "case")
CASE_SHOW_MAX = 10
DEFAULT_CASES: dict[str, Any] = {"view": False, "unit": "image", "show": []}
# the keys a change may carry, per section ("" is the top level)
EDITABLE = {
    "": {
        "scale",
        "allow_non_graded",
        "fusion",
        "agreement",
        "queue",
        "cases",
        "prescreen_model_id",
        "suggestions_model_id",
        skin_type_question.SETTING,
    },
    "fusion": set(DEFAULT_FUSION),
    "agreement": set(DEFAULT_AGREEMENT),
    "queue": set(DEFAULT_QUEUE),
    "cases": set(DEFAULT_CASES),
}


def _protocol(protocol: Any) -> str:
    return getattr(protocol, "value", protocol)


def default_settings(protocol: Any) -> dict[str, Any]:
    """The settings a new project of the protocol starts with."""
    settings: dict[str, Any] = {
        "fusion": dict(DEFAULT_FUSION, precedence=[]),
        "agreement": dict(DEFAULT_AGREEMENT),
        "queue": dict(DEFAULT_QUEUE),
        "cases": dict(DEFAULT_CASES, show=[]),
    }
    settings.update(protocols.get(protocol).default_settings())
    return settings


def with_defaults(protocol: Any, settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """The stored settings with the defaults filled in, section by section (what the API shows)."""
    stored = dict(settings or {})
    out = {**default_settings(protocol), **stored}
    for section in ("fusion", "agreement", "queue", "cases"):
        out[section] = {**default_settings(protocol)[section], **(stored.get(section) or {})}
    if skin_type_question.can_ask(protocol):
        out.setdefault(skin_type_question.SETTING, False)
    return out


@dataclass(frozen=True)
class ProjectSettings:
    """A project's settings with every default filled in (what fusion, agreement and labeling read)."""

    scale: tuple[dict[str, Any], ...]
    allow_non_graded: bool
    explanation_k: int
    tie_policy: str
    precedence: tuple[str, ...]
    fusion_method: str
    min_pair_images: int
    min_group_images: int
    min_eval_images: int
    prescreen_model_id: str | None
    queue_order: str = "seeded"
    # pre-labeling: the model whose stored suggestions every rater sees while labeling (labeler/assist)
    suggestions_model_id: str | None = None
    case_view: bool = False
    case_unit: str = "image"
    case_show: tuple[str, ...] = ()
    ask_skin_type: bool = False  # the Fitzpatrick second question (protocols/skin_type_question.py)

    @property
    def scale_values(self) -> list[float]:
        return [float(step["value"]) for step in self.scale]


def read_settings(settings: Mapping[str, Any] | None) -> ProjectSettings:
    """The settings as stored, defaults filled in for every key a project does not carry."""
    settings = settings or {}
    fusion = {**DEFAULT_FUSION, **(settings.get("fusion") or {})}
    agreement = {**DEFAULT_AGREEMENT, **(settings.get("agreement") or {})}
    cases = {**DEFAULT_CASES, **(settings.get("cases") or {})}
    return ProjectSettings(
        scale=tuple(settings.get("scale") or DEFAULT_SEVERITY_SCALE),
        allow_non_graded=bool(settings.get("allow_non_graded", False)),
        explanation_k=int(fusion["explanation_k"]),
        tie_policy=str(fusion["tie_policy"]),
        precedence=tuple(fusion.get("precedence") or ()),
        fusion_method=str(fusion["method"]),
        min_pair_images=int(agreement["min_pair_images"]),
        min_group_images=int(agreement["min_group_images"]),
        min_eval_images=int(agreement["min_eval_images"]),
        prescreen_model_id=settings.get("prescreen_model_id") or None,
        suggestions_model_id=settings.get("suggestions_model_id") or None,
        queue_order=str({**DEFAULT_QUEUE, **(settings.get("queue") or {})}["order"]),
        case_view=bool(cases["view"]),
        case_unit=str(cases["unit"]),
        case_show=tuple(cases["show"] or ()),
        ask_skin_type=bool(settings.get(skin_type_question.SETTING, False)),
    )


# -- validation -----------------------------------------------------------------------------------


def _whole(value: Any, key: str, label: str) -> int:
    low, high = LIMITS[key]
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(
            f"{label} must be a whole number from {low} to {high} (got {value!r})", field=key
        )
    return value


def _validate_fusion(protocol: str, fusion: dict[str, Any]) -> dict[str, Any]:
    if fusion["method"] not in FUSION_METHODS:
        raise ValidationError(
            f"the fusion method must be one of {', '.join(FUSION_METHODS)} "
            f"(got {fusion['method']!r})",
            field="fusion.method",
        )
    if fusion["tie_policy"] not in TIE_POLICIES:
        raise ValidationError(
            f"the tie policy must be 'unresolved' (a lead adjudicates) or 'precedence' "
            f"(got {fusion['tie_policy']!r})",
            field="fusion.tie_policy",
        )
    precedence = fusion.get("precedence") or []
    if not isinstance(precedence, list) or not all(isinstance(c, str) for c in precedence):
        raise ValidationError(
            "the precedence must be a list of quality classes", field="fusion.precedence"
        )
    if fusion["tie_policy"] == "precedence":
        if not protocols.get(protocol).has_classes:
            raise ValidationError(
                "a precedence order breaks ties between quality classes; "
                f"{protocols.get(protocol).title.lower()} fusion has no ties to break",
                field="fusion.tie_policy",
            )
        if sorted(precedence) != sorted(QUALITY_DECISIONS):
            names = ", ".join(QUALITY_DECISIONS)
            raise ValidationError(
                f"a precedence order must list each of the four classes once ({names}), "
                f"first the one that wins a tie (got {precedence!r})",
                field="fusion.precedence",
            )
    elif precedence and sorted(precedence) != sorted(QUALITY_DECISIONS):
        raise ValidationError(
            "the precedence must be empty or list each of the four classes once",
            field="fusion.precedence",
        )
    return {
        "method": fusion["method"],
        "tie_policy": fusion["tie_policy"],
        "precedence": list(precedence),
        "explanation_k": _whole(
            fusion["explanation_k"], "fusion.explanation_k", "the explanation threshold k"
        ),
    }


def _check_keys(section: str, changes: Mapping[str, Any]) -> None:
    unknown = sorted(set(changes) - EDITABLE[section])
    if unknown:
        where = f"in '{section}' " if section else ""
        known = ", ".join(sorted(EDITABLE[section]))
        raise ValidationError(
            f"unknown setting {where}{unknown[0]!r}; the settings are: {known}",
            field=f"{section}.{unknown[0]}" if section else unknown[0],
        )


def merge_settings(protocol: Any, current: Mapping[str, Any], changes: Any) -> dict[str, Any]:
    """The project's whole new settings after a partial change, validated (ValidationError says what is wrong).

    Sections ("fusion", "agreement") merge key by key; other keys replace. Defaults fill what the
    project never stored.
    """
    protocol = _protocol(protocol)
    if not isinstance(changes, Mapping):
        raise ValidationError("'settings' must be an object of the settings to change")
    _check_keys("", changes)
    for section in ("fusion", "agreement", "queue", "cases"):
        if section in changes:
            if not isinstance(changes[section], Mapping):
                raise ValidationError(f"'{section}' must be an object", field=section)
            _check_keys(section, changes[section])
    spec = protocols.get(protocol)
    for other in protocols.all():
        misplaced = (other.settings_keys - spec.settings_keys) & set(changes)
        if misplaced:
            key = min(misplaced)
            raise ValidationError(
                f"'{key}' is a setting of {other.title.lower()} projects; this is a "
                f"{spec.title.lower()} project",
                field=key,
            )
    merged = {**default_settings(protocol), **dict(current or {})}
    new = dict(merged)
    new["fusion"] = _validate_fusion(
        protocol,
        {**DEFAULT_FUSION, **(merged.get("fusion") or {}), **(changes.get("fusion") or {})},
    )
    agreement = {
        **DEFAULT_AGREEMENT,
        **(merged.get("agreement") or {}),
        **(changes.get("agreement") or {}),
    }
    new["agreement"] = {
        "min_pair_images": _whole(
            agreement["min_pair_images"],
            "agreement.min_pair_images",
            "the minimum of co-labeled images per rater pair",
        ),
        "min_group_images": _whole(
            agreement["min_group_images"],
            "agreement.min_group_images",
            "the minimum of images per fairness group",
        ),
        "min_eval_images": _whole(
            agreement["min_eval_images"],
            "agreement.min_eval_images",
            "the minimum of golden images for a model's verdict",
        ),
    }
    queue = {**DEFAULT_QUEUE, **(merged.get("queue") or {}), **(changes.get("queue") or {})}
    if queue["order"] not in QUEUE_ORDERS:
        names = " or ".join(f"'{QUEUE_ORDER_NAMES[k]}' ({k})" for k in QUEUE_ORDERS)
        raise ValidationError(f"the labeling order must be {names}", field="queue.order")
    new["queue"] = {"order": queue["order"]}
    new["cases"] = validate_cases(
        protocol, {**DEFAULT_CASES, **(merged.get("cases") or {}), **(changes.get("cases") or {})}
    )
    spec.merge_settings(new, changes)  # the protocol's own keys (severity: scale, non-graded)
    key = skin_type_question.SETTING
    if key in changes:
        if not isinstance(changes[key], bool):
            raise ValidationError(f"'{key}' must be true or false", field=key)
        if changes[key] and not skin_type_question.can_ask(protocol):
            raise ValidationError(
                "only image quality and severity projects can also ask the skin type; "
                f"this is a {protocol} project",
                field=key,
            )
        new[key] = changes[key]
    if "suggestions_model_id" in changes:
        model_id = changes["suggestions_model_id"]
        if model_id is not None and not isinstance(model_id, str):
            raise ValidationError(
                "'suggestions_model_id' (the model whose suggestions raters see) must be a model "
                "id or null (off)",
                field="suggestions_model_id",
            )
        new["suggestions_model_id"] = (model_id or "").strip() or None
    return new


def validate_cases(protocol: str, cases: Mapping[str, Any]) -> dict[str, Any]:
    """The cases section: a view flag, the labeling unit (per case only where the protocol allows it,
    and only with the case view) and the manifest columns shown to raters."""
    if not isinstance(cases["view"], bool):
        raise ValidationError("'cases.view' must be true or false", field="cases.view")
    if cases["unit"] not in CASE_UNITS:
        raise ValidationError(
            "the labeling unit must be 'image' (an answer per photo) or 'case' (one answer for "
            f"all photos of a case) (got {cases['unit']!r})",
            field="cases.unit",
        )
    if cases["unit"] == "case":
        if not protocols.get(protocol).per_case:  # the protocol's own declaration
            raise ValidationError(
                f"a {protocol} project labels every photo on its own (each photo can be blurry on "
                "its own); one answer per case is for protocols that judge the patient",
                field="cases.unit",
            )
        if not cases["view"]:
            raise ValidationError(
                "one answer per case needs the case view (the rater must see every photo of the "
                "case): turn 'cases.view' on too",
                field="cases.unit",
            )
    show = cases["show"]
    if not isinstance(show, list) or len(show) > CASE_SHOW_MAX:
        raise ValidationError(
            f"'cases.show' must be a list of up to {CASE_SHOW_MAX} manifest column names",
            field="cases.show",
        )
    names: list[str] = []
    for name in show:
        if not isinstance(name, str) or not 1 <= len(name.strip()) <= 64 or text_problem(name):
            raise ValidationError(
                "each column in 'cases.show' must be a name of 1 to 64 characters",
                field="cases.show",
            )
        if name.strip() not in names:
            names.append(name.strip())
    return {"view": cases["view"], "unit": cases["unit"], "show": names}


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Dotted keys whose value differs (sections compared key by key; defaults fill the old side)."""
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(b, Mapping) and key in ("fusion", "agreement", "cases"):
            base = {"fusion": DEFAULT_FUSION, "agreement": DEFAULT_AGREEMENT}.get(
                key, DEFAULT_CASES
            )
            a = {**base, **(a or {})}
            keys += [f"{key}.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif key == "scale":
            if _scale_key(a) != _scale_key(b):
                keys.append(key)
        elif a != b:
            keys.append(key)
    return keys


def _scale_key(scale: Any) -> list[tuple[float, str]] | None:
    if not scale:
        return None
    return [(float(s["value"]), str(s["name"])) for s in scale]
