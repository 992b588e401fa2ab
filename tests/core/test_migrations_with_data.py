"""Migrations with data in the database: existing projects and labels migrate unchanged (issue 13).

A fresh database is upgraded to BASE (the revision before the first migration of issue 13's
session), filled with plain SQL (no app models: they describe head, not BASE), then upgraded to
whatever "head" is today and downgraded back to BASE. Every row inserted reads back the same at
head and again after the downgrade; columns added after BASE hold NULL (or one server default for
every row). New migrations need no change here; one that rewrites existing values on purpose
must say so in this test.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from helpers import empty_pg_database, queue_tally_mismatches
from sqlalchemy import inspect, text

from labeler.db import make_engine
from labeler.migrate import downgrade, upgrade

BASE = "0006"  # training heartbeat: the last revision before skin type (0007) and what followed
T0 = datetime(2026, 11, 2, 9, 30, 15, tzinfo=UTC)
T1 = datetime(2026, 11, 3, 17, 5, 1, tzinfo=UTC)
JSON_COLUMNS = {"settings", "meta", "explanations"}
SEVERITY_SETTINGS = {
    "scale": [{"value": 1, "name": "Clear"}, {"value": 2.5, "name": "Mild – ünïcode"}],
    "allow_non_graded": True,
    "fusion": {
        "method": "plurality",
        "tie_policy": "unresolved",
        "precedence": [],
        "explanation_k": 2,
    },
    "agreement": {"min_pair_images": 3, "min_group_images": 30, "min_eval_images": 20},
}

# fmt: off
# table -> rows, in insertion order (foreign keys first); every NOT NULL column of BASE is given
ROWS: dict[str, list[dict]] = {
    "users": [
        {"id": 1, "email": "lead@clinic.test", "name": "Dr Lead", "oid": "o-1", "tenant_id": "t",
         "active": True, "created_at": T0, "last_login_at": T1, "session_generation": 3},
        {"id": 2, "email": "r1@clinic.test", "name": "Rater Ünal", "oid": None, "tenant_id": None,
         "active": True, "created_at": T0, "last_login_at": None, "session_generation": 0},
        {"id": 3, "email": "r2@clinic.test", "name": "Rater Two", "oid": None, "tenant_id": None,
         "active": False, "created_at": T1, "last_login_at": None, "session_generation": 1},
    ],
    "projects": [
        {"id": 1, "name": "Quality study", "protocol": "quality", "created_at": T0,
         "created_by_id": 1,
         "settings": {"fusion": {"method": "plurality", "tie_policy": "precedence",
                                 "precedence": ["poor_quality", "lesion", "no_skin", "healthy_skin"],
                                 "explanation_k": 1}}},
        {"id": 2, "name": "Acne grades", "protocol": "severity", "created_at": T1,
         "created_by_id": None, "settings": SEVERITY_SETTINGS},
    ],
    "project_members": [
        {"id": 1, "project_id": 1, "user_id": 1, "role": "lead"},
        {"id": 2, "project_id": 1, "user_id": 2, "role": "rater"},
        {"id": 3, "project_id": 1, "user_id": 3, "role": "rater"},
        {"id": 4, "project_id": 2, "user_id": 2, "role": "rater"},
    ],
    "images": [
        {"id": i, "project_id": p, "import_batch_id": None, "sha256": f"{i:064x}",
         "filename": f"case {i}.jpg", "width": 640 + i, "height": 480, "format": "JPEG",
         "byte_size": 10_000_000_000 + i, "display_key": f"d/{i}", "thumb_key": f"t/{i}",
         "original_key": f"o/{i}", "case_id": case, "body_site": site, "fitzpatrick": fitz,
         "meta": meta, "created_at": T0}
        for i, p, case, site, fitz, meta in (
            (1, 1, "C1", "Face", 2, {"skin_type": "II", "note": "ünïcode"}),
            (2, 1, "C1", "Back", None, {}),
            (3, 1, None, None, 6, {"fst": 6}),
            (4, 2, "C9", "cheek", 4, {}),
        )
    ],
    "golden_images": [{"id": 1, "project_id": 1, "image_id": 1}],
    "queue_items": [
        {"id": 1, "public_id": "a" * 20, "project_id": 1, "rater_id": 2, "image_id": 1,
         "position": 1, "is_golden": True, "status": "done", "skip_reason": None,
         "created_at": T0, "shown_at": T1},
        {"id": 2, "public_id": "b" * 20, "project_id": 1, "rater_id": 2, "image_id": 2,
         "position": 2, "is_golden": False, "status": "skipped", "skip_reason": "too dark, sorry",
         "created_at": T0, "shown_at": T1},
        {"id": 3, "public_id": "c" * 20, "project_id": 1, "rater_id": 3, "image_id": 1,
         "position": 1, "is_golden": True, "status": "done", "skip_reason": None,
         "created_at": T0, "shown_at": None},
        {"id": 4, "public_id": "d" * 20, "project_id": 2, "rater_id": 2, "image_id": 4,
         "position": 1, "is_golden": False, "status": "done", "skip_reason": None,
         "created_at": T1, "shown_at": T1},
    ],
    "labels": [
        {"id": 1, "project_id": 1, "rater_id": 2, "image_id": 1, "decision": "poor_quality",
         "icd10": None, "icd10_missing_text": None, "explanations": ["blurry", "bad_light"],
         "grade": None, "version": 2, "time_spent_ms": 5_000_000_000, "submission_id": "s-2",
         "created_at": T0, "updated_at": T1},
        {"id": 2, "project_id": 1, "rater_id": 3, "image_id": 1, "decision": "lesion",
         "icd10": "L70.0", "icd10_missing_text": None, "explanations": [], "grade": None,
         "version": 1, "time_spent_ms": 1200, "submission_id": None, "created_at": T0,
         "updated_at": T0},
        {"id": 3, "project_id": 2, "rater_id": 2, "image_id": 4, "decision": "graded",
         "icd10": None, "icd10_missing_text": None, "explanations": [], "grade": 2.5,
         "version": 1, "time_spent_ms": 0, "submission_id": "s-3", "created_at": T1,
         "updated_at": T1},
    ],
    "label_revisions": [
        {"id": 1, "label_id": 1, "version": 1, "author_id": 2, "decision": "lesion",
         "icd10": None, "icd10_missing_text": "naevus – atypical", "explanations": [],
         "grade": None, "time_spent_ms": 900, "submission_id": "s-1", "created_at": T0},
        {"id": 2, "label_id": 1, "version": 2, "author_id": 2, "decision": "poor_quality",
         "icd10": None, "icd10_missing_text": None, "explanations": ["blurry", "bad_light"],
         "grade": None, "time_spent_ms": 4_999_999_100, "submission_id": "s-2", "created_at": T1},
        {"id": 3, "label_id": 2, "version": 1, "author_id": 3, "decision": "lesion",
         "icd10": "L70.0", "icd10_missing_text": None, "explanations": [], "grade": None,
         "time_spent_ms": 1200, "submission_id": None, "created_at": T0},
        {"id": 4, "label_id": 3, "version": 1, "author_id": 2, "decision": "graded",
         "icd10": None, "icd10_missing_text": None, "explanations": [], "grade": 2.5,
         "time_spent_ms": 0, "submission_id": "s-3", "created_at": T1},
    ],
    "adjudications": [
        {"id": 1, "project_id": 1, "image_id": 1, "decision": "lesion",
         "note": "seen in clinic", "decided_by_id": 1, "decided_at": T1},
    ],
    "item_flags": [
        {"id": 1, "project_id": 1, "rater_id": 2, "image_id": 2, "unsure": True,
         "comment": "is this a naevus?", "answer": "yes", "answered_by_id": 1,
         "answered_at": T1, "created_at": T0, "updated_at": T1},
    ],
}
# fmt: on


def _insert(conn) -> None:
    for table, rows in ROWS.items():
        cols = list(rows[0])
        stmt = text(
            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})"
        ).bindparams(*(sa.bindparam(c, type_=sa.JSON) for c in cols if c in JSON_COLUMNS))
        conn.execute(stmt, rows)


def _read(conn) -> dict[str, list[tuple]]:
    """Every inserted table's rows, the columns of BASE only, by id, exactly as the driver returns them."""
    out = {}
    for table, rows in ROWS.items():
        cols = list(rows[0])
        out[table] = [
            tuple(r)
            for r in conn.execute(text(f"SELECT {', '.join(cols)} FROM {table} ORDER BY id"))
        ]
    return out


def _columns(conn) -> dict[str, set[str]]:
    insp = inspect(conn)
    return {t: {c["name"] for c in insp.get_columns(t)} for t in ROWS}


def _check_values(snapshot: dict[str, list[tuple]]) -> None:
    """The snapshot holds what was inserted (spot checks of the values that could be mangled)."""
    by_table = {t: {row[0]: row for row in rows} for t, rows in snapshot.items()}
    labels = [c for c in ROWS["labels"][0]]
    label1 = dict(zip(labels, by_table["labels"][1], strict=True))
    assert label1["time_spent_ms"] == 5_000_000_000 and label1["version"] == 2
    explanations = label1["explanations"]
    assert explanations == ["blurry", "bad_light"] or '"blurry"' in explanations
    label3 = dict(zip(labels, by_table["labels"][3], strict=True))
    assert label3["grade"] == 2.5 and label3["decision"] == "graded"
    revs = [c for c in ROWS["label_revisions"][0]]
    rev1 = dict(zip(revs, by_table["label_revisions"][1], strict=True))
    assert rev1["icd10_missing_text"] == "naevus – atypical"
    assert by_table["users"][2][2] == "Rater Ünal"
    assert len(snapshot["queue_items"]) == 4 and len(snapshot["item_flags"]) == 1


def _check_new_columns(conn, base_columns: dict[str, set[str]]) -> list[str]:
    """Columns added after BASE to the filled tables hold NULL, or one server default in every row."""
    added = []
    insp = inspect(conn)
    for table in ROWS:
        defaults = {c["name"]: c.get("default") for c in insp.get_columns(table)}
        for col in sorted(set(defaults) - base_columns[table]):
            added.append(f"{table}.{col}")
            values = {v for (v,) in conn.execute(text(f"SELECT {col} FROM {table}"))}
            if defaults[col] is None:
                assert values == {None}, f"{table}.{col} is new but holds {values} for old rows"
            else:
                assert len(values) == 1, f"{table}.{col} (default {defaults[col]}): {values}"
    return added


def _roundtrip(url: str) -> None:
    upgrade(url, BASE)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            base_columns = _columns(conn)
            _insert(conn)
        with engine.connect() as conn:
            snapshot = _read(conn)
        _check_values(snapshot)

        upgrade(url, "head")
        with engine.connect() as conn:
            assert _read(conn) == snapshot, "a migration changed existing rows"
            added = _check_new_columns(conn, base_columns)
            assert {"labels.skin_type", "label_revisions.skin_type"} <= set(added)
            # the queue tallies (0012) counted from the items there were, then kept by triggers
            tallies = conn.execute(
                text("SELECT project_id, rater_id, total, done FROM queue_tallies ORDER BY 1, 2")
            ).all()
            assert [tuple(t) for t in tallies] == [(1, 2, 2, 1), (1, 3, 1, 1), (2, 2, 1, 1)]
            assert queue_tally_mismatches(conn) == []

        downgrade(url, BASE)
        with engine.connect() as conn:
            assert _columns(conn) == base_columns
            assert _read(conn) == snapshot, "a downgrade changed existing rows"
            (version,) = conn.execute(text("SELECT version_num FROM alembic_version")).one()
            assert version == BASE
    finally:
        engine.dispose()


def test_sqlite_data_survives_upgrade_to_head_and_back(tmp_path):
    _roundtrip(f"sqlite:///{tmp_path / 'data.db'}")


def test_postgresql_data_survives_upgrade_to_head_and_back():
    url = os.environ.get("LABELER_TEST_DATABASE_URL")
    if not url:
        pytest.skip(
            "PostgreSQL run only (LABELER_TEST_DATABASE_URL); .ci/run runs the suite on both"
        )
    with empty_pg_database(url, "labeler_migdata") as fresh_url:
        _roundtrip(fresh_url)
