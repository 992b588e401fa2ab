"""Manifest reader, grouped splits and evaluation figures (pure, fast)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import f1_score

from labeler.ml import ManifestError, read_manifest
from labeler.ml.metrics import (
    aggregate_runs,
    binary_figures,
    discretize,
    quality_figures,
    quality_verdict,
    severity_figures,
    severity_verdict,
)
from labeler.ml.splits import assert_grouped, group_split

ROWS = [
    {
        "image_id": 1,
        "sha256": "a" * 64,
        "path": "/x/1.jpg",
        "case_id": "c1",
        "split": "fold",
        "quality": {"class": "lesion", "tie": False, "explanations": []},
        "severity": None,
    },
    {
        "image_id": 2,
        "sha256": "b" * 64,
        "path": "/x/2.jpg",
        "case_id": None,
        "split": "fold",
        "quality": {"class": None, "tie": True, "explanations": []},
        "severity": None,
    },
    {
        "image_id": 3,
        "sha256": "c" * 64,
        "path": "/x/3.jpg",
        "case_id": "c1",
        "split": "golden",
        "quality": {
            "class": "poor_quality",
            "tie": False,
            "explanations": ["blurry", "lesion_covered"],
        },
        "severity": {"mean": 2.5, "median": 2.0, "std": 0.5, "count": 4, "grade": None},
    },
]
HEADER = {"manifest": "labeler-training", "version": 1, "project_id": 7, "protocol": "quality"}


@pytest.mark.parametrize("header", [True, False])
def test_manifest_with_and_without_header(tmp_path, header):
    p = tmp_path / "m.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in ([HEADER] if header else []) + ROWS) + "\n")
    m = read_manifest(p)
    assert m.header == (HEADER if header else {})
    assert [r.image_id for r in m.quality_training_rows()] == [1]  # tie and golden left out
    assert [r.image_id for r in m.quality_rows("golden")] == [3]
    assert [r.image_id for r in m.severity_rows("golden")] == [3]
    assert m.rows[2].quality.explanations == ("blurry", "lesion_covered")
    assert m.rows[2].severity.mean == 2.5 and m.rows[2].severity.grade is None
    assert m.rows[0].group == m.rows[2].group != m.rows[1].group
    assert len(m.sha256) == 64


def test_manifest_rows_without_file_or_consensus_are_left_out(tmp_path):
    p = tmp_path / "m.jsonl"
    no_file = {**ROWS[0], "path": None}
    no_mean = {
        **ROWS[2],
        "split": "fold",
        "quality": None,
        "severity": {"mean": None, "median": None, "std": None, "count": 0, "grade": None},
    }
    p.write_text(json.dumps(no_file) + "\n" + json.dumps(no_mean) + "\n")
    m = read_manifest(p)
    assert m.rows[0].path is None and m.rows[1].severity is None
    assert m.quality_training_rows() == [] and m.severity_training_rows() == []


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["{not json"], "line 1: not JSON"),
        ([json.dumps(ROWS[0]), json.dumps(HEADER)], "header must be the first line"),
        (
            [json.dumps({**ROWS[0], "quality": {"class": "cat", "tie": False}})],
            "unknown quality class",
        ),
        (
            [json.dumps({k: v for k, v in ROWS[0].items() if k != "sha256"})],
            "missing field 'sha256'",
        ),
        ([json.dumps({**ROWS[0], "split": "test"})], "split must be"),
        ([json.dumps({**HEADER, "version": 2})], "unsupported manifest header"),
    ],
)
def test_manifest_errors(tmp_path, lines, message):
    p = tmp_path / "m.jsonl"
    p.write_text("\n".join(lines))
    with pytest.raises(ManifestError, match=message):
        read_manifest(p)


def test_group_split_keeps_cases_together():
    groups = [f"case:{i // 3}" for i in range(90)] + [f"image:{i}" for i in range(30)]
    tr, va = group_split(groups, 0.25, seed=3)
    assert len(tr) + len(va) == 120 and 25 <= len(va) <= 35
    assert_grouped(groups, tr, va)
    with pytest.raises(AssertionError):
        assert_grouped(groups, np.array([0]), np.array([1]))


def test_figures_match_scikit_learn():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    et, ep = rng.random((200, 5)) < 0.2, rng.random((200, 5)) < 0.3
    f = quality_figures(y, p, et, ep, ["a", "b", "c", "d"], list("vwxyz"))
    assert f["macro_f1"] == pytest.approx(f1_score(y, p, average="macro"))
    assert f["per_explanation"]["w"]["f1"] == pytest.approx(f1_score(et[:, 1], ep[:, 1]))
    b = binary_figures(y == 2, p == 2)
    assert b["recall"] == pytest.approx(np.mean(p[y == 2] == 2))
    assert b["specificity"] == pytest.approx(np.mean(p[y != 2] != 2))
    assert np.array(f["confusion"]["matrix"]).sum() == 200
    assert binary_figures(np.zeros(3, bool), np.zeros(3, bool))["f1"] is None


def test_severity_figures_and_verdicts():
    t = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    f = severity_figures(t, t + 0.4)
    assert f["rmse"] == pytest.approx(0.4) and f["pearson_r"] == pytest.approx(1.0)
    assert discretize([1.49, 1.5, 2.6, 4.5, 9]).tolist() == [1, 2, 3, 5, 5]
    assert np.trace(f["confusion"]["matrix"]) == 5  # +0.4 keeps every grade
    assert np.trace(severity_figures(t, t + 0.6)["confusion"]["matrix"]) == 1  # only 5.6 -> 5 stays
    assert (
        severity_verdict(0.482, 0.517)["expert_level"]
        and not severity_verdict(0.6, 0.517)["expert_level"]
    )
    assert (
        quality_verdict(0.71, 0.77, 0.07)["expert_level"]
        and not quality_verdict(0.69, 0.77, 0.07)["expert_level"]
    )


def test_aggregate_runs_mean_and_std():
    s = aggregate_runs(
        [
            {"rmse": 0.4, "per": {"x": {"f1": 0.5}}, "conf": [[1]]},
            {"rmse": 0.6, "per": {"x": {"f1": None}}, "conf": [[2]]},
        ]
    )
    assert s["rmse"] == {"mean": pytest.approx(0.5), "std": pytest.approx(0.1), "n": 2}
    assert s["per"]["x"]["f1"]["n"] == 1 and "conf" not in s
