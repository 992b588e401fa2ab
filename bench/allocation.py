"""Benchmark allocation at ImageQX scale and the rater's queue/next, on SQLite and PostgreSQL.

Run: .venv/bin/python bench/allocation.py [--seed N] [--requests N] [--pg URL]
(--pg defaults to LABELER_TEST_DATABASE_URL; a scratch database is created next to it and dropped.)

Allocates 36,509 images to 12 raters with overlap 3 and a 1,000-image golden set (118,527 queue
items), and compares the time per allocated item with a bulk insert of the same number of plain rows
into an unindexed table, measured in the same run on the same database. Then times queue/next for
one rater (~9,900 items, the first half already labeled) through the service and through the
in-process API (session cookie, and bearer token: that one also commits the token's last-use
stamp on every request), and reports p50/p95.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text, update
from sqlalchemy.orm import sessionmaker

from labeler import create_app
from labeler.allocation import services
from labeler.allocation.models import ItemStatus, QueueItem
from labeler.allocation.queue import next_item
from labeler.auth.models import Role
from labeler.auth.services import add_user, create_token
from labeler.db import make_engine, utcnow
from labeler.images.models import Image
from labeler.migrate import upgrade
from labeler.projects.services import create_project

N_IMAGES = 36_509
N_RATERS = 12
N_GOLDEN = 1_000
OVERLAP = 3


def p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def seed_project(Session) -> tuple[int, list[str]]:
    with Session() as s:
        lead = add_user(s, None, "lead@bench.test", "Lead", {Role.lead})
        raters = [
            add_user(s, None, f"rater{i:02d}@bench.test", f"Rater {i}", {Role.rater})
            for i in range(N_RATERS)
        ]
        project = create_project(s, lead, "bench", "quality")
        now = utcnow()
        rows = []
        for i in range(N_IMAGES):
            sha = secrets.token_hex(32)
            rows.append(
                {
                    "project_id": project.id,
                    "sha256": sha,
                    "filename": f"img{i}.jpg",
                    "width": 8,
                    "height": 8,
                    "format": "JPEG",
                    "byte_size": 1,
                    "display_key": f"display/{sha}.jpg",
                    "thumb_key": f"thumbs/{sha}.jpg",
                    "original_key": f"originals/{sha}.jpg",
                    "case_id": None,
                    "meta": {},
                    "created_at": now,
                }
            )
        s.execute(insert(Image), rows)
        s.commit()
        return project.id, [r.email for r in raters]


def bulk_insert_baseline(engine, n_rows: int) -> float:
    """Seconds to insert n plain rows (same columns as a queue item, no indexes or constraints)."""
    meta = MetaData()
    plain = Table(
        f"bench_plain_{uuid.uuid4().hex[:6]}",
        meta,
        Column("id", Integer, primary_key=True),
        Column("public_id", String(32)),
        Column("project_id", Integer),
        Column("rater_id", Integer),
        Column("image_id", Integer),
        Column("position", Integer),
        Column("is_golden", Integer),
        Column("status", String(16)),
    )
    meta.create_all(engine)
    rows = [
        {
            "public_id": secrets.token_urlsafe(16),
            "project_id": 1,
            "rater_id": i % N_RATERS,
            "image_id": i,
            "position": i,
            "is_golden": 0,
            "status": "pending",
        }
        for i in range(n_rows)
    ]
    try:
        t0 = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(insert(plain), rows)
        return time.perf_counter() - t0
    finally:
        meta.drop_all(engine)


def _time_api(
    app,
    project_id: int,
    total: int,
    requests: int,
    *,
    email: str | None = None,
    headers: dict | None = None,
) -> list[float]:
    """Milliseconds per GET queue/next through the whole app (auth, view, JSON), after 5 warm-up calls."""
    import re

    client = app.test_client()
    if email:  # development sign-in, as a browser would hold a session cookie
        page = client.get("/auth/login").get_data(as_text=True)
        token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        assert (
            client.post("/auth/dev-login", data={"email": email, "csrf_token": token}).status_code
            == 302
        )
    out = []
    for _ in range(requests + 5):
        t0 = time.perf_counter()
        resp = client.get(f"/api/v1/projects/{project_id}/queue/next", headers=headers or {})
        out.append((time.perf_counter() - t0) * 1000)
        assert resp.status_code == 200 and resp.get_json()["item"]["position"] == total // 2 + 1
    return out[5:]


def run(label: str, url: str, seed: int, requests: int) -> None:
    upgrade(url)
    engine = make_engine(url)
    Session = sessionmaker(bind=engine, expire_on_commit=False)
    project_id, emails = seed_project(Session)
    from labeler.projects.models import Project

    with Session() as s:
        project = s.get(Project, project_id)
        t0 = time.perf_counter()
        services.allocate(
            s, None, project, emails, golden_size=N_GOLDEN, overlap=OVERLAP, seed=seed
        )
        s.commit()
        t_alloc = time.perf_counter() - t0
        n_items = s.scalar(select(text("count(*)")).select_from(QueueItem))
    t_bulk = bulk_insert_baseline(engine, n_items)

    with Session() as s:  # one rater, first half of the queue labeled
        rater = s.scalars(select(QueueItem.rater_id).limit(1)).one()
        total = s.scalar(
            select(text("count(*)")).select_from(QueueItem).where(QueueItem.rater_id == rater)
        )
        s.execute(
            update(QueueItem)
            .where(QueueItem.rater_id == rater, QueueItem.position <= total // 2)
            .values(status=ItemStatus.done)
        )
        from labeler.auth.models import User

        user = s.get(User, rater)
        _tok, raw = create_token(s, user, user, "bench")
        s.commit()
        email = user.email
        service_ms = []
        project = s.get(Project, project_id)
        for _ in range(requests):
            t0 = time.perf_counter()
            next_item(s, user, project)
            service_ms.append((time.perf_counter() - t0) * 1000)
            s.rollback()

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(
            {
                "LABELER_ENV": "development",
                "SECRET_KEY": "bench",
                "DATABASE_URL": url,
                "INSTANCE_PATH": tmp,
                "STORAGE_PATH": tmp,
                "AUTH_MODE": "dev",
            }
        )
        api_ms = {
            "session cookie": _time_api(app, project_id, total, requests, email=email),
            "bearer token": _time_api(
                app, project_id, total, requests, headers={"Authorization": f"Bearer {raw}"}
            ),
        }
        app.extensions["labeler_db"].engine.dispose()
    engine.dispose()

    print(
        f"[{label}] allocate {N_IMAGES:,} images, {N_RATERS} raters, overlap {OVERLAP}, golden {N_GOLDEN:,}: "
        f"{n_items:,} queue items in {t_alloc:.2f} s ({t_alloc / n_items * 1e6:.1f} us/item)"
    )
    print(
        f"[{label}] bulk insert of {n_items:,} plain rows: {t_bulk:.2f} s ({t_bulk / n_items * 1e6:.1f} us/row); "
        f"allocation / bulk insert = {t_alloc / t_bulk:.2f}x (goal <= 3x)"
    )
    print(
        f"[{label}] queue/next for a rater with {total:,} items (half done), goal p95 < 10 ms: service p50 "
        f"{statistics.median(service_ms):.2f} ms p95 {p(service_ms, 0.95):.2f} ms"
    )
    for how, ms in api_ms.items():
        print(
            f"[{label}]   API in-process, {how}: p50 {statistics.median(ms):.2f} ms p95 {p(ms, 0.95):.2f} ms"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--pg", default=os.environ.get("LABELER_TEST_DATABASE_URL"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run("sqlite", f"sqlite:///{tmp}/bench.db", args.seed, args.requests)
    if not args.pg:
        print("[postgresql] skipped: pass --pg URL or set LABELER_TEST_DATABASE_URL")
        return
    name = f"labeler_bench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(args.pg, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        run("postgresql", args.pg.rsplit("/", 1)[0] + "/" + name, args.seed, args.requests)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
