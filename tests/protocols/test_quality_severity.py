"""Every validation rule of both protocols (docs/domain.md sections 3a-3c)."""

from __future__ import annotations

import pytest

from labeler.errors import ValidationError
from labeler.projects.models import Protocol, default_settings
from labeler.protocols import form_spec, validate_submission
from labeler.protocols.explanations import EXPLANATION_CODES

KNOWN = {"L70.0": "L70.0", "L700": "L70.0", "C43.9": "C43.9"}
SEVERITY = {**default_settings(Protocol.severity), "allow_non_graded": True}
SEVERITY_STRICT = default_settings(Protocol.severity)


def quality(**data):
    return validate_submission("quality", {}, data, lambda c: KNOWN.get(c.replace(" ", "").upper()))


def severity(settings=SEVERITY, **data):
    return validate_submission("severity", settings, data, KNOWN.get)


def test_lesion_with_a_code_is_stored_in_its_canonical_form():
    clean = quality(decision="lesion", icd10="l700")
    assert clean.as_dict() == {
        "decision": "lesion",
        "icd10": "L70.0",
        "icd10_missing_text": None,
        "explanations": [],
        "grade": None,
    }


def test_lesion_with_icd10_missing_keeps_the_free_text():
    clean = quality(decision="lesion", icd10_missing_text="  acral   pseudolymphoma ")
    assert clean.icd10 is None and clean.icd10_missing_text == "acral pseudolymphoma"


@pytest.mark.parametrize(
    "data, message",
    [
        ({"decision": "lesion", "icd10": "Q99.99"}, "unknown ICD-10 code"),
        ({"decision": "lesion"}, "a lesion needs a diagnosis"),
        ({"decision": "lesion", "icd10_missing_text": "   "}, "a lesion needs a diagnosis"),
        ({"decision": "lesion", "icd10": "L70.0", "icd10_missing_text": "x"}, "not both"),
        (
            {"decision": "lesion", "icd10": "L70.0", "explanations": ["blurry"]},
            "explanations are only for poor quality",
        ),
        ({"decision": "poor_quality"}, "poor quality needs at least one explanation"),
        (
            {"decision": "poor_quality", "explanations": []},
            "poor quality needs at least one explanation",
        ),
        ({"decision": "poor_quality", "explanations": ["smudged"]}, "unknown explanation"),
        ({"decision": "poor_quality", "explanations": "blurry"}, "must be a list"),
        (
            {"decision": "poor_quality", "explanations": ["blurry"], "icd10": "L70.0"},
            "a diagnosis belongs to a lesion",
        ),
        (
            {"decision": "no_skin", "explanations": ["blurry"]},
            "explanations are only for poor quality",
        ),
        (
            {"decision": "healthy_skin", "icd10_missing_text": "eczema"},
            "a diagnosis belongs to a lesion",
        ),
        ({"decision": "healthy_skin", "grade": 3}, "a grade does not belong"),
        ({"decision": "blurry"}, "'decision' must be one of"),
        ({}, "'decision' must be one of"),
        ({"decision": "lesion", "icd10": 700}, "'icd10' must be text"),
        ({"decision": "lesion", "icd10_missing_text": "x" * 501}, "too long"),
        ({"decision": "lesion", "icd10_missing_text": "acne\x00"}, "not allowed"),
        ({"decision": "lesion", "icd10_missing_text": "\ud800"}, "not valid Unicode"),
    ],
)
def test_quality_refuses_invalid_combinations_with_a_clear_message(data, message):
    with pytest.raises(ValidationError, match=message) as err:
        quality(**data)
    assert err.value.status == 422


@pytest.mark.parametrize("decision", ["no_skin", "healthy_skin"])
def test_no_skin_and_healthy_skin_need_nothing_else(decision):
    assert quality(decision=decision).as_dict()["decision"] == decision


def test_poor_quality_explanations_are_deduplicated_in_a_fixed_order():
    clean = quality(decision="poor_quality", explanations=["low_resolution", "blurry", "blurry"])
    assert clean.explanations == ["blurry", "low_resolution"]


@pytest.mark.parametrize("grade", [1, 2, 3, 4, 5, 3.0])
def test_severity_grades_on_the_scale(grade):
    assert severity(grade=grade).as_dict() == {
        "decision": "graded",
        "icd10": None,
        "icd10_missing_text": None,
        "explanations": [],
        "grade": float(grade),
    }


@pytest.mark.parametrize(
    "data, message",
    [
        ({"grade": 6}, "off the scale"),
        ({"grade": 0}, "off the scale"),
        ({"grade": 2.5}, "off the scale"),
        ({"grade": "3"}, "must be a number"),
        ({"grade": True}, "must be a number"),
        ({"grade": float("nan")}, "must be a number"),
        ({"decision": "graded"}, "choose a grade"),
        ({"grade": 3, "explanations": ["blurry"]}, "explanations are only for 'cannot assess'"),
        ({"grade": 3, "icd10": "L70.0"}, "takes no diagnosis"),
        ({"decision": "cannot_assess"}, "needs at least one explanation"),
        (
            {"decision": "cannot_assess", "explanations": ["blurry"], "grade": 2},
            "a grade does not belong",
        ),
        (
            {"decision": "not_acne", "explanations": ["blurry"]},
            "explanations are only for 'cannot assess'",
        ),
        ({"decision": "lesion"}, "'decision' must be one of"),
    ],
)
def test_severity_refuses_invalid_answers(data, message):
    with pytest.raises(ValidationError, match=message):
        severity(**data)


def test_non_graded_answers_are_kept_when_the_project_allows_them():
    assert severity(decision="not_acne").decision == "not_acne"
    clean = severity(decision="cannot_assess", explanations=["bad_light"])
    assert (
        clean.decision == "cannot_assess"
        and clean.explanations == ["bad_light"]
        and clean.grade is None
    )


@pytest.mark.parametrize("decision", ["not_acne", "cannot_assess"])
def test_non_graded_answers_are_refused_when_the_project_does_not_allow_them(decision):
    with pytest.raises(ValidationError, match="does not allow non-graded"):
        severity(SEVERITY_STRICT, decision=decision, explanations=["blurry"])


def test_a_custom_scale_is_respected():
    settings = {"scale": [{"value": 0, "name": "None"}, {"value": 1, "name": "Some"}]}
    assert severity(settings, grade=0).grade == 0.0
    with pytest.raises(ValidationError, match="choose one of 0, 1"):
        severity(settings, grade=2)


def test_form_spec_keys_do_not_clash():
    quality_spec = form_spec("quality", {})
    keys = [c["key"] for c in quality_spec["choices"]] + [
        e["key"] for e in quality_spec["explanations"]
    ]
    reserved = {"Z", "W", "+", "-", "S", "M", "?", "G", "U", "T", "["}  # page keys
    assert len(keys) == len(set(keys)) and not reserved & set(keys)
    sev = form_spec("severity", SEVERITY)
    sev_keys = (
        [s["key"] for s in sev["scale"]]
        + [c["key"] for c in sev["non_graded"]]
        + [e["key"] for e in sev["explanations"]]
    )
    assert sev_keys[:5] == ["1", "2", "3", "4", "5"] and len(sev_keys) == len(set(sev_keys))
    assert not reserved & set(sev_keys)
    assert [e["value"] for e in sev["explanations"]] == list(EXPLANATION_CODES)
    assert form_spec("severity", SEVERITY_STRICT)["non_graded"] == []


@pytest.mark.parametrize(
    ("values", "keys"),
    [
        ([1, 2, 3, 4, 5], ["1", "2", "3", "4", "5"]),
        ([0, 1, 2, 3, 4], ["0", "1", "2", "3", "4"]),  # the key is the grade, not its position
        ([0, 2, 4, 6], ["0", "2", "4", "6"]),
        ([1, 1.5, 2], ["1", "2", "3"]),  # not whole numbers: positions
        (list(range(11)), [str(i) for i in range(1, 10)] + [None, None]),  # 10 needs two keys
        ([-1, 0, 1], ["1", "2", "3"]),
    ],
)
def test_severity_keys_are_the_grades_on_a_whole_number_scale_0_to_9(values, keys):
    scale = [{"value": v, "name": f"step {v}"} for v in values]
    spec = form_spec("severity", {**SEVERITY, "scale": scale})
    assert [s["key"] for s in spec["scale"]] == keys
    page_keys = {"Z", "W", "+", "-", "S", "M", "?", "G", "U", "T", "["}
    used = [k for k in keys if k] + [c["key"] for c in spec["non_graded"]]
    used += [e["key"] for e in spec["explanations"]]
    assert len(used) == len(set(used)) and not page_keys & set(used)


def test_skin_type_keys_do_not_clash_with_the_page():
    spec = form_spec("skin_type", {})
    keys = [s["key"] for s in spec["scale"]] + [c["key"] for c in spec["non_graded"]]
    assert keys == ["1", "2", "3", "4", "5", "6", "0"] and spec["explanations"] == []
