"""The model's figures per Fitzpatrick type and body site, from the training manifest's metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import f1_score

from labeler.ml.evaluation import model_fairness
from labeler.ml.manifest import read_manifest


def _manifest(tmp_path, n: int, rng) -> list:
    fitz = rng.choice([1, 2, 3, 5, None], n)
    sites = rng.choice(["face", "back", None], n)
    lines = [
        {
            "image_id": i,
            "sha256": f"{i:064x}",
            "path": f"/x/{i}.jpg",
            "case_id": f"c{i // 3}",
            "split": "golden",
            "fitzpatrick": None if fitz[i] is None else int(fitz[i]),
            "body_site": sites[i],
            "quality": {"class": "lesion", "tie": False, "explanations": []},
            "severity": None,
        }
        for i in range(n)
    ]
    lines.append({**lines[0], "image_id": n, "sha256": "f" * 64})  # an older row without them
    del lines[-1]["fitzpatrick"], lines[-1]["body_site"]
    p = tmp_path / "m.jsonl"
    p.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return read_manifest(p).rows


def test_manifest_reads_skin_type_and_body_site(tmp_path):
    rows = _manifest(tmp_path, 12, np.random.default_rng(0))
    assert rows[-1].fitzpatrick is None and rows[-1].body_site is None
    assert {r.fitzpatrick for r in rows} <= {1, 2, 3, 5, None}
    assert any(r.body_site == "face" for r in rows)


def test_quality_fairness_per_group_matches_scikit_learn(tmp_path):
    rng = np.random.default_rng(3)
    rows = _manifest(tmp_path, 90, rng)
    truth = rng.integers(0, 4, len(rows))
    pred = np.where(rng.random(len(rows)) < 0.7, truth, rng.integers(0, 4, len(rows)))
    out = model_fairness(rows, truth, pred, 4, resamples=200)
    groups = {g["group"]: g for g in out["fitzpatrick"]}
    members = np.array([r.fitzpatrick in (1, 2) for r in rows])
    present = np.union1d(truth[members], pred[members])
    ref = f1_score(truth[members], pred[members], labels=present, average="macro")
    assert groups["I-II"]["macro_f1"] == pytest.approx(ref)
    assert groups["I-II"]["images"] == members.sum()
    assert groups["IV"]["images"] == 0 and groups["IV"]["macro_f1"] is None
    assert groups["IV"]["too_few"] and out["min_group_images"] == 30
    low, high = groups["I-II"]["interval"]["low"], groups["I-II"]["interval"]["high"]
    assert low <= ref <= high
    assert [g["group"] for g in out["body_site"]] == ["back", "face", "unknown"]


def test_severity_fairness_rmse_per_group(tmp_path):
    rng = np.random.default_rng(4)
    rows = _manifest(tmp_path, 60, rng)
    truth = rng.uniform(1, 5, len(rows))
    pred = truth + rng.normal(0, 0.5, len(rows))
    out = model_fairness(rows, truth, pred, None, resamples=0)
    face = next(g for g in out["body_site"] if g["group"] == "face")
    members = np.array([r.body_site == "face" for r in rows])
    assert face["rmse"] == pytest.approx(np.sqrt(np.mean((pred - truth)[members] ** 2)))
    assert face["interval"] == {"low": None, "high": None}
