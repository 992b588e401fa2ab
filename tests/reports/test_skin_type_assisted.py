"""The skin-type figures follow the ?assisted= filter like every other figure: only the answers of
the labels kept, each in its own rater's column (before, every skin-type answer was read whatever the
filter, and a rater left out by it had their answers put in another rater's column, or a 500)."""

from __future__ import annotations

import pytest

H = "healthy_skin"


def st(skin, assisted):
    return {"decision": H, "skin_type": skin, "assisted": assisted}


# rater 1 labels without the model's suggestion; raters 2 and 3 only with it
TABLE = [
    [st(2, False), st(5, True), st(5, True)],
    [st(2, False), st(6, True), st(6, True)],
    [st(3, False), st(6, True), st(5, True)],
    [st(1, False), None, None],  # only rater 1: must not land in rater 2's column
]


@pytest.fixture()
def mixed(db, build_project):
    b = build_project("quality", TABLE, golden={0, 1, 2, 3})
    b.project.settings = {**b.project.settings, "ask_skin_type": True}
    db.flush()
    return b


def _skin(client, b, assisted):
    resp = client.get(
        f"/api/v1/projects/{b.project.id}/agreement?assisted={assisted}", headers=b.headers
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    return resp.json["skin_type"]


def test_without_suggestions_only_the_unassisted_answers_count(client, mixed):
    skin = _skin(client, mixed, 0)
    assert skin["answers"] == 4
    assert [r["rater_id"] for r in skin["raters"]] == [mixed.raters[0].id]
    assert {d["type"]: d["images"] for d in skin["distribution"]} == {
        "I": 1,
        "II": 2,
        "III": 1,
        "IV": 0,
        "V": 0,
        "VI": 0,
    }


def test_with_suggestions_each_answer_stays_in_its_raters_column(client, mixed):
    skin = _skin(client, mixed, 1)
    assert skin["answers"] == 6
    assert [r["rater_id"] for r in skin["raters"]] == [r.id for r in mixed.raters[1:]]
    # raters 2 and 3 agree exactly on images 0 and 1, within one on image 2
    assert skin["exact_agreement"]["pooled"] == pytest.approx(2 / 3)
    assert skin["within_one_agreement"]["pooled"] == pytest.approx(1.0)
    fused = {d["type"]: d["images"] for d in skin["distribution"]}
    assert (
        fused["I"] == 0 and fused["II"] == 0 and fused["VI"] == 1 and fused["V"] == 1
    )  # image 2: 5/6 is a tie
    assert skin["fused_ties"] == 1
