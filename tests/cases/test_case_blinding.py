"""Blinding for cases: a golden case looks exactly like a fold case to its rater (docs/domain.md
sections 2 and 11), checked the way tests/allocation/test_allocation_blinding.py checks items."""

from __future__ import annotations

import re
from collections import defaultdict

# ruff: noqa: F811  (fixtures imported from case_fixtures are used as arguments)
from case_fixtures import case_project, put_json  # noqa: F401
from helpers import PUBLIC_ID_RE, header_view, shape
from sqlalchemy import select

from labeler.allocation.models import QueueItem


def _strip_ids(case: dict) -> str:
    """The case's JSON shape; "next" (an id, or null after the last case: queue order, not
    golden-ness) is checked on its own."""
    nxt = case.get("next")
    assert nxt is None or PUBLIC_ID_RE.fullmatch(nxt)
    return repr(shape({k: v for k, v in case.items() if k != "next"}))


def test_golden_and_fold_cases_are_indistinguishable(db, case_project, client_for):
    cases = {f"case-{k}": 3 for k in range(8)}
    project, raters, images = case_project(
        cases=cases,
        raters=3,
        overlap=2,
        golden_size=6,  # two whole cases
        settings={"cases": {"view": True, "unit": "case", "show": ["age"]}},
        seed=11,
    )
    by_image = {im.id: im for im in images}
    rater = raters[0]
    golden_of = {
        i.public_id: i.is_golden
        for i in db.scalars(select(QueueItem).where(QueueItem.rater_id == rater.id))
    }
    assert set(golden_of.values()) == {True, False}
    client = client_for(rater)
    seen = defaultdict(lambda: defaultdict(set))
    kinds = []
    while True:
        resp = client.get(f"/api/v1/projects/{project.id}/queue/next-case")
        case = resp.get_json()["case"]
        if case is None:
            break
        ids = [p["item"] for p in case["photos"]]
        kind = {golden_of[i] for i in ids}
        assert len(kind) == 1  # a case is all golden or all fold
        kind = kind.pop()
        kinds.append(kind)
        detail = client.get(f"/api/v1/cases/{case['case']}")
        for name, r in (("next", resp), ("detail", detail)):
            body = r.get_json()["case"]
            seen[kind][f"{name}_shape"].add(_strip_ids(body))
            seen[kind][f"{name}_headers"].add(header_view(r.headers))
            seen[kind][f"{name}_photos"].add(len(body["photos"]))
            text = r.get_data(as_text=True)
            for pid in ids:
                image = by_image[
                    db.scalar(select(QueueItem.image_id).where(QueueItem.public_id == pid))
                ]
                for leak in (
                    image.filename,
                    image.sha256[:16],
                    image.case_id,
                    "golden",
                    "fold",
                    "not for raters",
                ):
                    assert leak not in text, leak
        for photo in case["photos"]:
            img = client.get(photo["image_url"])
            img.close()
            seen[kind]["image_headers"].add(header_view(img.headers))
            seen[kind]["image_url"].add(photo["image_url"].replace(photo["item"], "<id>"))
            seen[kind]["id_shape"].add(
                (len(photo["item"]), bool(PUBLIC_ID_RE.fullmatch(photo["item"])))
            )
            assert photo["details"] == [{"name": "age", "value": "40-49"}]
        resp = put_json(
            client,
            f"/api/v1/cases/{case['case']}/label",
            {
                "items": ids,
                "answer": {"decision": "graded", "grade": 2},
                "submission_id": case["case"],
            },
        )
        assert resp.status_code == 200
        seen[kind]["submit_shape"].add(_strip_ids(resp.get_json()["case"]))
        seen[kind]["submit_headers"].add(header_view(resp.headers))
    assert True in kinds and False in kinds
    for aspect in seen[True]:
        assert seen[True][aspect] == seen[False][aspect], aspect
        assert len(seen[True][aspect]) == 1, aspect


def test_golden_cases_have_unrelated_ids_for_each_rater(db, case_project, client_for):
    _project, raters, _ = case_project(
        cases={f"c{k}": 2 for k in range(6)},
        raters=3,
        overlap=1,
        golden_size=4,
        settings={"cases": {"view": True, "unit": "case"}},
    )
    refs = defaultdict(set)
    for rater in raters:
        client = client_for(rater)
        for item in db.scalars(
            select(QueueItem).where(QueueItem.rater_id == rater.id, QueueItem.is_golden.is_(True))
        ):
            case = client.get(f"/api/v1/cases/{item.public_id}").get_json()["case"]
            refs[item.image_id].add(case["case"])
    # every rater names the same golden case by an id of its own
    assert refs and all(len(ids) == len(raters) for ids in refs.values())


def test_case_pages_of_golden_and_fold_cases_are_the_same_page(db, case_project, client_for):
    """The HTML of a golden case's page and a fold case's page differ only by their opaque ids."""
    _project, raters, _ = case_project(
        cases={f"case-{k}": 3 for k in range(6)},
        raters=2,
        overlap=2,
        golden_size=6,
        settings={"cases": {"view": True, "unit": "case"}},
        seed=3,
    )
    rater = raters[0]
    items = db.scalars(
        select(QueueItem).where(QueueItem.rater_id == rater.id).order_by(QueueItem.position)
    ).all()
    client = client_for(rater)
    pages = {}
    for kind in (True, False):
        first = next(i for i in items if i.is_golden is kind)
        case = client.get(f"/api/v1/cases/{first.public_id}").get_json()["case"]
        html = client.get(f"/cases/{case['case']}").get_data(as_text=True)
        ids = {case["case"], case["next"], *(p["item"] for p in case["photos"])} - {None}
        for public_id in ids:
            html = html.replace(public_id, "<id>")
        html = re.sub(r'name="csrf-token" content="[^"]+"', "", html)
        html = re.sub(r'name="csrf_token" value="[^"]+"', "", html)  # forms' CSRF tokens
        pages[kind] = html
    assert pages[True] == pages[False]
