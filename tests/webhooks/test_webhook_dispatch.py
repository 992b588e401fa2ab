"""Deliveries sent once their transaction commits, on a database whose rows are really committed:
by the local dispatcher thread (no broker, as `make run`), and by a real Celery worker with a real
Redis broker (both started by the fixtures of tests/training/celery_fixtures.py)."""

# ruff: noqa: F811  (fixtures imported from the fixture modules are used as arguments)
from __future__ import annotations

import itertools
import os
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select, text
from standardwebhooks.webhooks import Webhook
from webhook_fixtures import Receiver, receiver  # noqa: F401

# the Celery fixtures live with the training tests (not on sys.path when only this folder runs)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "training"))
from celery_fixtures import celery_workers, redis_url  # noqa: F401
from helpers import make_config

from labeler import create_app
from labeler.auth.models import Role
from labeler.auth.services import add_user
from labeler.db import make_engine
from labeler.events import PENDING, emit
from labeler.migrate import upgrade
from labeler.projects.services import create_project
from labeler.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery
from labeler.webhooks.services import create_endpoint

PG_URL = os.environ.get("LABELER_TEST_DATABASE_URL")
FAST = {
    "WEBHOOK_ALLOWED_NETWORKS": ("127.0.0.0/8",),
    "WEBHOOK_RETRY_BASE_S": 0.2,
    "WEBHOOK_TIMEOUT_S": 5,
}


@pytest.fixture()
def committed(tmp_path):
    """An app on a database of its own whose rows are committed (the tests' usual one never commits)."""
    admin = None
    if PG_URL:
        name = f"labeler_hooks_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        admin = make_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = PG_URL.rsplit("/", 1)[0] + "/" + name
    else:
        url = f"sqlite:///{tmp_path / 'hooks.db'}"
    upgrade(url)

    def build(**extra):
        app = create_app(make_config(tmp_path, url, **FAST, **extra))
        built.append(app)
        return app

    built: list = []
    yield build
    for app in built:
        dispatcher = app.extensions.get("labeler_webhooks")
        if dispatcher is not None and dispatcher.thread is not None:
            dispatcher.thread.join(timeout=10)
        app.extensions["labeler_db"].engine.dispose()
    if admin is not None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _project_with_webhook(app, url):
    factory = app.extensions["labeler_db"].session_factory
    with factory() as s:
        lead = add_user(s, None, f"lead-{uuid.uuid4().hex[:6]}@hooks.test", "Lead", {Role.lead})
        s.flush()
        project = create_project(s, lead, f"hooks-{uuid.uuid4().hex[:6]}", "quality")
        s.flush()
        endpoint, secret = create_endpoint(
            s, lead, project, url, ["label.submitted"], config=app.config
        )
        s.commit()
        return factory, project.id, endpoint.id, secret


def _wait_for(factory, endpoint_id, status, timeout=60, log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with factory() as s:
            delivery = s.scalar(
                select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
            )
            if delivery is not None and delivery.status is status:
                attempts = list(
                    s.scalars(
                        select(WebhookAttempt)
                        .where(WebhookAttempt.delivery_id == delivery.id)
                        .order_by(WebhookAttempt.number)
                    )
                )
                return delivery, attempts
        time.sleep(0.05)
    raise AssertionError(f"no {status.value} delivery after {timeout} s\n{log() if log else ''}")


def test_the_local_dispatcher_sends_after_commit_and_retries(committed, receiver):
    """No broker: the commit wakes one thread of the process, which sends and retries with back-off."""
    app = committed()
    factory, project_id, endpoint_id, secret = _project_with_webhook(app, receiver.url())
    receiver.statuses = [500, 502]
    # a rolled-back transaction: its event and delivery vanish and nothing is sent
    with factory() as s:
        emit(s, "label.submitted", project_id, {"version": 9})
        assert s.info[PENDING]
        s.rollback()
        assert PENDING not in s.info
    with factory() as s:
        emit(s, "label.submitted", project_id, {"version": 1})
        assert receiver.requests == []  # nothing leaves before the commit
        s.commit()
    delivery, attempts = _wait_for(factory, endpoint_id, DeliveryStatus.succeeded)
    assert [a.status_code for a in attempts] == [500, 502, 200] and delivery.attempts == 3
    assert len(receiver.requests) == 3
    for request in receiver.requests:
        assert Webhook(secret).verify(request["body"], request["headers"])["data"] == {
            "project_id": project_id,
            "version": 1,
        }


def test_delivery_off_leaves_sending_to_the_command(committed, receiver):
    app = committed(WEBHOOK_DELIVERY="off")
    factory, project_id, endpoint_id, _secret = _project_with_webhook(app, receiver.url())
    with factory() as s:
        emit(s, "label.submitted", project_id, {"version": 1})
        s.commit()
    time.sleep(0.3)
    assert receiver.requests == []
    out = app.test_cli_runner().invoke(args=["webhooks", "deliver", "--wait"])
    assert out.exit_code == 0 and "1 attempt sent" in out.output, out.output
    _wait_for(factory, endpoint_id, DeliveryStatus.succeeded, timeout=5)


@pytest.mark.slow
def test_a_celery_worker_delivers_with_retries(
    committed, receiver, redis_url, celery_workers, monkeypatch
):
    """LABELER_CELERY_BROKER_URL set: the commit sends a task; the worker's failed attempts queue the
    next ones with their back-off (countdown); the third attempt succeeds."""
    app = committed(CELERY_BROKER_URL=redis_url)
    for key, value in FAST.items():
        monkeypatch.setenv(
            f"LABELER_{key}", ",".join(value) if isinstance(value, tuple) else str(value)
        )
    worker = celery_workers(app.config, "hooks")
    factory, project_id, endpoint_id, secret = _project_with_webhook(app, receiver.url())
    receiver.statuses = [500, 503]
    with factory() as s:
        emit(s, "label.submitted", project_id, {"version": 1})
        s.commit()
    _delivery, attempts = _wait_for(factory, endpoint_id, DeliveryStatus.succeeded, log=worker.text)
    assert [a.status_code for a in attempts] == [500, 503, 200]
    gaps = [(b.started_at - a.started_at).total_seconds() for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4  # the back-off doubles
    assert "labeler.webhook_deliver" in worker.text()
    assert {r["headers"]["webhook-id"] for r in receiver.requests} == {
        receiver.requests[0]["headers"]["webhook-id"]
    }
    assert Webhook(secret).verify(receiver.requests[-1]["body"], receiver.requests[-1]["headers"])
    assert app.extensions.get("labeler_webhooks") is None  # no local thread when a broker is set


def test_two_leads_adding_webhooks_at_once_keep_both_events(committed, receiver):
    """projects.webhook_events is the union of both endpoints' events, whichever commits last."""
    import threading

    from labeler.projects.models import Project

    app = committed()
    factory, project_id, _endpoint_id, _secret = _project_with_webhook(app, receiver.url())
    writes = app.extensions["labeler_db"].write_session_factory
    first_added = threading.Event()
    errors: list[BaseException] = []

    def add(events, hold):
        try:
            with writes() as s:
                project = s.get(Project, project_id)
                create_endpoint(s, None, project, receiver.url(), events, config=app.config)
                if hold:
                    first_added.set()
                    time.sleep(0.5)  # the other lead's request arrives meanwhile
                s.commit()
        except Exception as exc:  # noqa: BLE001 (reported below, in the test's thread)
            errors.append(exc)

    first = threading.Thread(target=add, args=(["tie.adjudicated"], True))
    first.start()
    first_added.wait(10)
    second = threading.Thread(target=add, args=(["training_run.finished"], False))
    second.start()
    first.join(20)
    second.join(20)
    assert errors == []
    with factory() as s:
        assert s.get(Project, project_id).webhook_events == [
            "label.submitted",
            "training_run.finished",
            "tie.adjudicated",
        ]
