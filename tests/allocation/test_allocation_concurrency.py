"""Two allocations of one project at once, on real separate connections: one wins, the other gets 409.

These tests commit, so they use their own database (a fresh SQLite file, or a fresh PostgreSQL
database next to LABELER_TEST_DATABASE_URL's), dropped afterwards; the per-test rolled-back
transaction of the other tests cannot show a race.
"""

from __future__ import annotations

import os
import threading
import uuid

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import sessionmaker

from labeler.allocation import services
from labeler.allocation.models import Allocation, GoldenImage, QueueItem
from labeler.auth.models import Role
from labeler.auth.services import add_user
from labeler.db import make_engine
from labeler.errors import Conflict
from labeler.migrate import upgrade
from labeler.projects.models import Project, ProjectMember
from labeler.projects.services import create_project

PG_URL = os.environ.get("LABELER_TEST_DATABASE_URL")


@pytest.fixture()
def separate_engine(tmp_path):
    if not PG_URL:
        url = f"sqlite:///{tmp_path / 'race.db'}"
        upgrade(url)
        engine = make_engine(url)
        yield engine
        engine.dispose()
        return
    name = f"labeler_race_{uuid.uuid4().hex[:8]}"
    admin = make_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = None
    try:
        url = PG_URL.rsplit("/", 1)[0] + "/" + name
        upgrade(url)
        engine = make_engine(url)
        yield engine
    finally:
        if engine is not None:
            engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture()
def race_world(separate_engine, image_row):
    Session = sessionmaker(bind=separate_engine, expire_on_commit=False)
    with Session() as s:
        lead = add_user(s, None, "lead@race.test", "Lead", {Role.lead})
        raters = [add_user(s, None, f"r{i}@race.test", f"R{i}", {Role.rater}) for i in range(4)]
        project = create_project(s, lead, "race", "quality")
        s.add_all(image_row(project.id) for _ in range(120))
        s.commit()
        return Session, project.id, [r.email for r in raters]


def run_pair(Session, project_id, emails, monkeypatch, *, widen: bool):
    """Two threads allocate the same project, each with its own session and connection."""
    barrier = threading.Barrier(2, timeout=20)
    if widen:  # both pass the pre-check before either writes: the unique constraint must decide
        original = services._existing_allocation

        def check_then_wait(session, project):
            found = original(session, project)
            barrier.wait()
            return found

        monkeypatch.setattr(services, "_existing_allocation", check_then_wait)
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def worker(seed: int):
        with Session() as s:
            try:
                if not widen:
                    barrier.wait()
                project = s.get(Project, project_id)
                services.allocate(s, None, project, emails, golden_size=10, overlap=2, seed=seed)
                s.commit()
                outcomes.append("ok")
            except Conflict as exc:
                s.rollback()
                outcomes.append(exc.code)
            except Exception as exc:  # noqa: BLE001  (re-raised below, in the test's thread)
                s.rollback()
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return sorted(outcomes)


@pytest.mark.parametrize("widen", [True, False], ids=["both-pass-precheck", "free-race"])
def test_concurrent_allocations_one_wins(race_world, monkeypatch, widen):
    Session, project_id, emails = race_world
    outcomes = run_pair(Session, project_id, emails, monkeypatch, widen=widen)
    # the loser gets 409: PostgreSQL waits on the unique constraint ("already_allocated"); SQLite refuses
    # to upgrade a stale read snapshot to a write ("concurrent_change") or, when the loser's snapshot is
    # fresh, waits for the lock and fails on the constraint
    loser, winner = outcomes
    assert winner == "ok"
    assert loser == "already_allocated" or (loser == "concurrent_change" and not PG_URL)
    with Session() as s:
        assert s.scalar(select(func.count(Allocation.id))) == 1
        seed = s.scalar(select(Allocation.seed))
        # exactly the winner's items: no duplicates, nothing half-written by the loser
        assert s.scalar(select(func.count(QueueItem.id))) == 4 * 10 + 110 * 2
        assert s.scalar(select(func.count(func.distinct(QueueItem.public_id)))) == 4 * 10 + 110 * 2
        assert s.scalar(select(func.count(GoldenImage.id))) == 10
        assert (
            s.scalar(select(func.count(ProjectMember.id)).where(ProjectMember.role == "rater")) == 4
        )
        project = s.get(Project, project_id)
        expected = services.plan_allocation(
            dict(s.execute(text("SELECT id, case_id FROM images")).all()),
            [r for (r,) in s.execute(text("SELECT DISTINCT rater_id FROM queue_items"))],
            overlap=2,
            seed=seed,
            golden_size=10,
        )
        stored = {}
        for it in s.scalars(select(QueueItem).order_by(QueueItem.position)):
            stored.setdefault(it.rater_id, []).append(it.image_id)
        assert {k: tuple(v) for k, v in stored.items()} == expected.queues
        assert services.summary(s, project)["allocated"]
