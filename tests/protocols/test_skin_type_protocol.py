"""The skin-type protocol's validation and names (labeler/protocols/skin_type.py)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from labeler import protocols
from labeler.errors import ValidationError
from labeler.protocols import skin_type as st

SPEC = protocols.get("skin_type")


def no_codes(_code: str) -> None:
    return None


@pytest.mark.parametrize("grade", [1, 2, 3, 4, 5, 6, 3.0])
def test_each_fitzpatrick_type_is_a_graded_answer(grade):
    clean = SPEC.validate({"decision": "graded", "grade": grade}, None, no_codes)
    assert (clean.decision, clean.grade) == ("graded", float(grade))
    assert SPEC.validate({"grade": grade}, None, no_codes).grade == float(grade)


def test_cannot_assess_has_no_grade():
    assert SPEC.validate({"decision": "cannot_assess"}, None, no_codes).decision == "cannot_assess"
    with pytest.raises(ValidationError, match="cannot assess") as err:
        SPEC.validate({"decision": "cannot_assess", "grade": 3}, None, no_codes)
    assert err.value.extra["field"] == "grade"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"grade": 0}, "grade"),
        ({"grade": 7}, "grade"),
        ({"grade": -1}, "grade"),
        ({"grade": 2.5}, "grade"),
        ({"grade": True}, "grade"),
        ({"grade": "III"}, "grade"),
        ({"grade": None}, "grade"),
        ({}, "grade"),
        ({"decision": "not_acne"}, "decision"),
        ({"decision": "graded", "grade": 3, "icd10": "L70.0"}, "icd10"),
        ({"decision": "graded", "grade": 3, "explanations": ["blurry"]}, "explanations"),
    ],
)
def test_bad_answers_are_refused_in_words(data, field):
    with pytest.raises(ValidationError) as err:
        SPEC.validate(data, None, no_codes)
    assert err.value.extra["field"] == field
    assert "skin type" in str(err.value) or "decision" in str(err.value)
    assert "no_skin" not in str(err.value)


def test_clean_skin_type_takes_codes_0_to_6_and_form_text():
    assert [st.clean_skin_type(v) for v in (0, 1, 6, "4", " 2 ", 5.0, "cannot_assess")] == [
        0,
        1,
        6,
        4,
        2,
        5,
        0,
    ]
    for bad in (7, -1, 1.5, "VI", "", None, False, [3]):
        with pytest.raises(ValidationError, match="Fitzpatrick I to VI") as err:
            st.clean_skin_type(bad, field="second")
        assert err.value.extra["field"] == "second"


def test_names_are_words_never_codes():
    assert [st.skin_type_name(t) for t in range(1, 7)] == [
        "Type I",
        "Type II",
        "Type III",
        "Type IV",
        "Type V",
        "Type VI",
    ]
    assert st.skin_type_name(0) == "Cannot assess"
    assert SPEC.answer_name(SimpleNamespace(decision="graded", grade=4.0), None) == "Type IV"
    assert SPEC.answer_name(SimpleNamespace(decision="cannot_assess", grade=None), None) == (
        "Cannot assess"
    )


def test_form_keys_are_1_to_6_and_0():
    spec = SPEC.form_spec(SPEC.parse_settings({}))
    assert [(s["value"], s["key"]) for s in spec["scale"]] == [(t, str(t)) for t in range(1, 7)]
    assert [(c["value"], c["key"]) for c in spec["non_graded"]] == [("cannot_assess", "0")]


def test_answer_codes_feed_the_median_fusion():
    rows = [
        [("graded", 2.0), ("graded", 3.0), ("graded", 3.0)],
        [("graded", 2.0), ("graded", 4.0), ("cannot_assess", None)],
        [("cannot_assess", None), (None, None), (None, None)],
    ]
    codes = np.array([[st.answer_code(d, g) for d, g in row] for row in rows])
    assert codes.tolist() == [[2, 3, 3], [2, 4, 0], [0, -1, -1]]
    fusion = st.fuse(codes)
    first, tied, unassessable = (st.fused_row(fusion, i) for i in range(3))
    assert first["skin_type"] == 3 and first["votes"]["III"] == 2 and first["tie"] is None
    assert tied["skin_type"] is None and tied["tie"] == [2, 4] and tied["cannot_assess"] == 1
    assert unassessable["skin_type"] is None and unassessable["count"] == 0
