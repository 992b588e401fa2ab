"""End to end: a small quality project labeled through the API by several raters; the dashboard,
the exports and the agreement JSON agree with each other and with scikit-learn."""

from __future__ import annotations

import io
import itertools
import json
import re
from collections import Counter

import numpy as np
import pytest
from PIL import Image as PILImage
from sklearn.metrics import f1_score

from labeler.auth.services import create_token

CLASSES = ["lesion", "no_skin", "healthy_skin", "poor_quality"]


def _jpeg(i: int) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", (32, 32), (i * 20 % 256, 80, 40)).save(buf, "JPEG")
    return buf.getvalue()


def _answer(rater: int, position: int) -> dict:
    decision = CLASSES[(position * 3 + rater * (position % 2)) % 4]
    body = {"decision": decision, "time_spent_ms": 1500 + position}
    if decision == "poor_quality":
        body["explanations"] = ["blurry"] if rater % 2 else ["blurry", "bad_light"]
    if decision == "lesion":
        body["icd10"] = "L70.0"
    return body


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")
def test_labels_through_api_match_dashboard_export_agreement(client, db, make_user, login_as):
    lead = make_user("lead@e2e.test", "lead")
    raters = [make_user(f"r{j}@e2e.test", "rater", name=f"Rater {j}") for j in range(3)]
    tokens = {}
    for u in [lead, *raters]:
        _t, raw = create_token(db, u, u, "e2e")
        tokens[u.email] = {"Authorization": f"Bearer {raw}"}
    db.commit()
    lh = tokens[lead.email]
    pid = client.post(
        "/api/v1/projects", json={"name": "E2E quality", "protocol": "quality"}, headers=lh
    ).json["id"]
    files = {"files": [(io.BytesIO(_jpeg(i)), f"e{i}.jpg") for i in range(8)]}
    up = client.post(
        f"/api/v1/projects/{pid}/images", data=files, headers=lh, content_type="multipart/form-data"
    )
    assert up.status_code == 201 and len(up.json["imported"]) == 8
    alloc = client.post(
        f"/api/v1/projects/{pid}/allocation",
        headers=lh,
        json={"raters": [r.email for r in raters], "golden_size": 2, "overlap": 2, "seed": 3},
    )
    assert alloc.status_code == 201, alloc.json

    for j, r in enumerate(raters):
        position = 0
        while True:
            item = client.get(f"/api/v1/projects/{pid}/queue/next", headers=tokens[r.email]).json[
                "item"
            ]
            if item is None:
                break
            resp = client.put(
                f"/api/v1/items/{item['id']}/label",
                json=_answer(j, position),
                headers=tokens[r.email],
            )
            assert resp.status_code == 200, resp.json
            position += 1
        assert position >= 2

    raw = [
        json.loads(x)
        for x in client.get(f"/api/v1/projects/{pid}/export?kind=raw&format=jsonl", headers=lh)
        .get_data(as_text=True)
        .splitlines()
    ]
    fused = [
        json.loads(x)
        for x in client.get(f"/api/v1/projects/{pid}/export?kind=fused&format=jsonl", headers=lh)
        .get_data(as_text=True)
        .splitlines()
    ]
    figures = client.get(f"/api/v1/projects/{pid}/agreement", headers=lh).json
    assert len(fused) == 8 and len(raw) == sum(r["rater_count"] for r in fused)

    # plurality from the raw rows, computed here independently
    by_image: dict[int, list[str]] = {}
    for row in raw:
        by_image.setdefault(row["image_id"], []).append(row["decision"])
    for rec in fused:
        votes = Counter(by_image.get(rec["image_id"], []))
        assert rec["votes"] == {c: votes.get(c, 0) for c in CLASSES}
        top = max(votes.values())
        winners = [c for c in CLASSES if votes.get(c) == top]
        assert rec["fused_class"] == (winners[0] if len(winners) == 1 else None)
        assert rec["tie"] == (len(winners) > 1)
    counts = Counter(rec["fused_class"] for rec in fused if rec["fused_class"])
    assert {d["class"]: d["count"] for d in figures["distribution"]} == {
        c: counts.get(c, 0) for c in CLASSES
    }
    assert figures["ties_unresolved"] == sum(rec["tie"] for rec in fused)

    # pairwise macro F1 with scikit-learn on co-labeled images
    rater_ids = sorted({row["rater_id"] for row in raw})
    table = {(row["image_id"], row["rater_id"]): row["decision"] for row in raw}
    macros = []
    for a, b in itertools.combinations(rater_ids, 2):
        common = [i for i in by_image if (i, a) in table and (i, b) in table]
        if not common:
            continue
        ya = [table[i, a] for i in common]
        yb = [table[i, b] for i in common]
        present = [c for c in CLASSES if c in ya or c in yb]
        per_class = f1_score(yb, ya, labels=present, average=None, zero_division=0.0)
        macros.append(float(np.mean(per_class)))
    assert figures["macro_f1"]["pairs"] == len(macros)
    assert figures["macro_f1"]["mean"] == pytest.approx(np.mean(macros), abs=1e-6)
    assert figures["macro_f1"]["std"] == pytest.approx(np.std(macros), abs=1e-6)

    # the dashboard shows the same numbers
    login_as(lead)
    html = client.get(f"/projects/{pid}/dashboard").get_data(as_text=True)
    shown = re.search(r'id="macro-f1">([^<]+)<', html).group(1)
    assert shown.strip() == f"{figures['macro_f1']['mean']:.2f} ± {figures['macro_f1']['std']:.2f}"
    progress = re.findall(r"<progress max=\"(\d+)\" value=\"(\d+)\"", html)
    assert len(progress) == 3 and all(mx == v for mx, v in progress)  # every rater finished
