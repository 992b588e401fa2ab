"""Each protocol's fused-export columns (ProtocolSpec.export_columns) are the ones the export
writes for its projects, and no other protocol's; the manifest carries its manifest_field."""

# ruff: noqa: F811  (fixtures imported from labeling_fixtures are used as arguments)
from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest

from labeler import protocols
from labeler.images.storage import app_storage
from labeler.labeling.services import submit_label
from labeler.reports.export import fused_records, training_manifest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "labeling"))
from labeling_fixtures import make_item  # noqa: F401  (fixture)

ANSWERS = {
    "quality": {"decision": "lesion", "icd10": "L70.0"},
    "severity": {"decision": "graded", "grade": 3},
    "skin_type": {"decision": "graded", "grade": 5},
}


@pytest.mark.parametrize("name", protocols.names())
def test_the_fused_export_writes_the_protocols_columns(
    app, db, make_user, make_project, make_item, name
):
    spec = protocols.get(name)
    project = make_project(None, protocol=name)
    for _ in range(2):
        rater = make_user(None, "rater")
        item = make_item(rater, project)
        submit_label(
            db,
            rater,
            item,
            ANSWERS[name],
            base_version=0,
            submission_id=uuid.uuid4().hex,
            time_spent_ms=100,
        )
    db.flush()
    records = list(fused_records(db, project))
    assert len(records) == 2
    others = {c for p in protocols.all() if p is not spec for c in p.export_columns}
    for rec in records:
        assert set(spec.export_columns) <= set(rec)
        assert not (others - set(spec.export_columns)) & set(rec)
    with app.app_context():
        lines = [json.loads(line) for line in training_manifest(db, project, app_storage())]
    header, first = lines[0], lines[1]
    assert header["protocol"] == name
    fields = {p.manifest_field for p in protocols.all() if p.manifest_field}
    assert fields <= set(first)
    for field in fields:
        assert (first[field] is not None) == (field == spec.manifest_field)
