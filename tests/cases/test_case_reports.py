"""Fusion, agreement, exports and the training manifest follow the unit: a per-case project counts
and exports each case once (with its photos); a per-image project in the case view, each photo."""

from __future__ import annotations

import json

# ruff: noqa: F811  (fixtures imported from case_fixtures are used as arguments)
from case_fixtures import case_project, put_json  # noqa: F401

from labeler.cases.grouping import case_groups, collapse_to_cases
from labeler.ml.manifest import read_manifest
from labeler.reports.export import fused_records, raw_records, training_manifest
from labeler.reports.matrix import load_label_matrix
from labeler.reports.services import project_agreement

PER_CASE = {"cases": {"view": True, "unit": "case"}}
PER_IMAGE = {"cases": {"view": True, "unit": "image"}}


def label_all(client, project, answer_for):
    """Walk the rater's queue case by case, answering each with ``answer_for(case)``."""
    n = 0
    while True:
        case = client.get(f"/api/v1/projects/{project.id}/queue/next-case").get_json()["case"]
        if case is None:
            return n
        body = {"items": [p["item"] for p in case["photos"]], **answer_for(case)}
        resp = put_json(client, f"/api/v1/cases/{case['case']}/label", body)
        assert resp.status_code == 200, resp.get_json()
        n += 1


def test_case_groups_and_collapse_are_pure():
    import numpy as np

    groups = case_groups(np.array(["a", None, "b", "a", "", "b"], dtype=object), 6)
    assert [g.tolist() for g in groups] == [[0, 3], [1], [2, 5], [4]]


def test_per_case_project_counts_and_exports_cases(db, app, tmp_path, case_project, client_for):
    project, raters, images = case_project(
        cases={"a": 3, "b": 2}, singles=1, raters=2, overlap=2, settings=PER_CASE
    )
    grades = {raters[0].id: 2, raters[1].id: 4}
    for rater in raters:
        answer = {"answer": {"decision": "graded", "grade": grades[rater.id]}}
        assert label_all(client_for(rater), project, lambda _case, a=answer: a) == 3
    db.expire_all()
    # per photo, 6 labels per rater are stored; per case, the matrix has 3 rows
    full = load_label_matrix(db, project)
    assert full.labeled.sum() == 12
    cases, members = collapse_to_cases(full)
    assert cases.labeled.shape == (3, 2) and cases.labeled.all()
    assert sorted(len(m) for m in members) == [1, 2, 3]
    assert (cases.grades[:, 0] == 2).all() and (cases.grades[:, 1] == 4).all()

    fused = list(fused_records(db, project))
    assert len(fused) == 3
    assert all(rec["unit"] == "case" for rec in fused)
    assert sorted(len(rec["image_ids"]) for rec in fused) == [1, 2, 3]
    assert sorted(i for rec in fused for i in rec["image_ids"]) == sorted(im.id for im in images)
    assert all(rec["rater_count"] == 2 and rec["severity"]["mean"] == 3.0 for rec in fused)
    by_case = {rec["case_id"]: rec for rec in fused}
    assert by_case["a"]["image_id"] == min(by_case["a"]["image_ids"])

    raw = list(raw_records(db, project))
    assert len(raw) == 6  # 3 cases x 2 raters, not 6 photos x 2 raters
    assert {len(r["image_ids"]) for r in raw} == {1, 2, 3}
    # every revision of a per-case label is listed once too
    assert len(list(raw_records(db, project, revisions=True))) == 6

    figures = project_agreement(db, project, "all", resamples=50)
    # agreement counts cases: 3 units, each rater 3 grades (not 6 photos)
    assert figures["images"] == 3 and figures["graded_images"] == 3
    assert [r["grades"] for r in figures["raters"]] == [3, 3]

    storage = app.extensions["labeler_storage"]
    lines = list(training_manifest(db, project, storage))
    records = [json.loads(line) for line in lines[1:]]
    assert len(records) == 3 and all("images" in r for r in records)
    path = tmp_path / "manifest.jsonl"
    with open(path, "w") as fh:
        fh.writelines(lines)
    manifest = read_manifest(path)
    assert len(manifest.rows) == 6  # each photo a training row carrying its case's label
    assert {r.severity.mean for r in manifest.rows} == {3.0}
    assert {r.case_id for r in manifest.rows} == {"a", "b", None}


def test_per_image_project_in_case_view_counts_photos(db, case_project, client_for):
    project, raters, _images = case_project(
        "quality", cases={"a": 3}, singles=1, raters=1, settings=PER_IMAGE
    )
    client = client_for(raters[0])

    def answers(case):
        return {"answers": {p["item"]: {"decision": "no_skin"} for p in case["photos"]}}

    assert label_all(client, project, answers) == 2
    fused = list(fused_records(db, project))
    assert len(fused) == 4 and all("unit" not in rec for rec in fused)
    assert len(list(raw_records(db, project))) == 4
