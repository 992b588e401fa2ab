"""A skin-type project end to end: three raters answer random types through the labeling service;
the agreement JSON, the dashboard and the fused export agree with scikit-learn, krippendorff and a
median computed by hand (docs/domain.md section 10)."""

# ruff: noqa: F811  (fixtures imported from labeling_fixtures are used as arguments)
from __future__ import annotations

import json
import sys
import uuid
from itertools import combinations
from pathlib import Path

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from labeler.allocation.models import GoldenImage
from labeler.images.models import Image
from labeler.labeling.services import submit_label

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "labeling"))
from labeling_fixtures import make_item  # noqa: F401  (fixture)

N_IMAGES, N_RATERS = 24, 3
TYPES = [1, 2, 3, 4, 5, 6]


def answer(db, rater, item, code):
    body = {"decision": "cannot_assess"} if code == 0 else {"decision": "graded", "grade": code}
    submit_label(
        db, rater, item, body, base_version=0, submission_id=uuid.uuid4().hex, time_spent_ms=500
    )


@pytest.fixture()
def labeled(db, make_user, make_project, make_item):
    """(project, lead, codes (images x raters): 1-6, 0 cannot assess, -1 none; golden mask)."""
    rng = np.random.default_rng(7)
    lead = make_user(None, "lead")
    project = make_project(lead, protocol="skin_type")
    raters = [make_user(None, "rater") for _ in range(N_RATERS)]
    truth = rng.integers(1, 7, N_IMAGES)
    codes = np.clip(truth[:, None] + rng.integers(-1, 2, (N_IMAGES, N_RATERS)), 1, 6)
    codes[rng.random(codes.shape) < 0.08] = 0  # cannot assess
    codes[rng.random(codes.shape) < 0.08] = -1  # not labeled
    codes[0] = [2, 4, -1]  # a tie: two different middle answers
    golden = np.zeros(N_IMAGES, dtype=bool)
    golden[:8] = True
    for i in range(N_IMAGES):
        first = make_item(raters[0], project)
        image = db.get(Image, first.image_id)
        if golden[i]:
            db.add(GoldenImage(project_id=project.id, image_id=image.id))
        for j, rater in enumerate(raters):
            item = first if j == 0 else make_item(rater, project, image=image)
            if codes[i, j] >= 0:
                answer(db, rater, item, int(codes[i, j]))
    db.flush()
    return project, lead, codes, golden


def hand_median(row):
    graded = sorted(int(c) for c in row if c >= 1)
    if not graded:
        return None, None
    low, high = graded[(len(graded) - 1) // 2], graded[len(graded) // 2]
    return (low if low == high else None), (low + high) / 2


def test_agreement_json_matches_scikit_learn_and_krippendorff(labeled, login_as):
    project, lead, codes, golden = labeled
    client = login_as(lead)
    body = client.get(f"/api/v1/projects/{project.id}/agreement").json
    assert body["protocol"] == "skin_type" and body["fusion"]["method"] == "median"
    st = body["skin_type"]
    kappas = []
    for a, b in combinations(range(N_RATERS), 2):
        both = (codes[:, a] >= 1) & (codes[:, b] >= 1)
        kappas.append(
            cohen_kappa_score(codes[both, a], codes[both, b], labels=TYPES, weights="quadratic")
        )
    assert st["kappa_quadratic"]["mean"] == pytest.approx(np.mean(kappas))
    assert st["kappa_quadratic"]["std"] == pytest.approx(np.std(kappas))
    data = np.where(codes >= 1, codes, np.nan).T.astype(float)
    ref = krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal")
    assert st["krippendorff_alpha_ordinal"]["alpha"] == pytest.approx(ref)
    exact = [
        np.mean(codes[m, a] == codes[m, b])
        for a, b in combinations(range(N_RATERS), 2)
        if (m := (codes[:, a] >= 1) & (codes[:, b] >= 1)).any()
    ]
    assert st["exact_agreement"]["mean"] == pytest.approx(np.mean(exact))
    assert st["cannot_assess"] == int((codes == 0).sum())
    fused = [hand_median(row)[0] for row in codes]
    assert st["fused_images"] == sum(f is not None for f in fused)
    assert st["fused_ties"] >= 1
    # MAD on the golden images against the median of all graded answers (the rater's included)
    for j, r in enumerate(st["raters"]):
        devs = [
            abs(codes[i, j] - hand_median(codes[i])[1])
            for i in np.flatnonzero(golden)
            if codes[i, j] >= 1
        ]
        assert r["mad"] == pytest.approx(np.mean(devs))


def test_fused_export_and_dashboard(labeled, login_as):
    project, lead, codes, _golden = labeled
    client = login_as(lead)
    resp = client.get(f"/api/v1/projects/{project.id}/export?kind=fused&format=jsonl")
    assert resp.status_code == 200
    records = [json.loads(line) for line in resp.get_data(as_text=True).splitlines() if line]
    assert len(records) == N_IMAGES
    for rec, row in zip(sorted(records, key=lambda r: r["image_id"]), codes, strict=True):
        fused, median = hand_median(row)
        assert rec["skin_type"] == fused and rec["skin_type_median"] == median
        assert rec["skin_type_cannot_assess"] == int((row == 0).sum())
        assert sum(rec["skin_type_votes"].values()) == int((row >= 1).sum())
        assert "severity" not in rec and "fused_class" not in rec
    assert records[0]["skin_type_tie"] == [2, 4] or any(r["skin_type_tie"] for r in records)
    page = client.get(f"/projects/{project.id}/dashboard")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Fused skin types" in text and "Skin type agreement" in text
    assert "Severity consensus" not in text and "RMSE" not in text
