"""Sending deliveries once their transaction has committed: on Celery, or on a local thread.

create_app installs `init_app`: after a session of the app commits deliveries (labeler/events.py
notes their ids), they are sent

- with LABELER_CELERY_BROKER_URL: as Celery tasks (labeler.jobs.worker's `labeler.webhook_deliver`),
  each failed attempt sending the next with a countdown (exponential back-off);
- without: by one local dispatcher thread per process, which sends what is due, sleeps until the next
  retry is due, and stops when nothing is pending.

Both call delivery.deliver_once. A delivery whose send was lost (the broker down, the process ended)
stays pending in the database: `labeler webhooks deliver` sends every due one (run it from cron, or
with --wait). LABELER_WEBHOOK_DELIVERY=off leaves all sending to that command.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Mapping
from functools import partial
from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from ..config import ConfigError
from ..db import database
from ..events import PENDING
from ..jobs.queue import QUEUE, broker_url, celery_app
from .delivery import deliver_due, deliver_once, next_due_in
from .models import WebhookDelivery
from .targets import parse_networks

log = logging.getLogger(__name__)
WEBHOOK_TASK = "labeler.webhook_deliver"
IDLE_POLL_S = 30.0  # the local thread looks again at least this often while deliveries are pending


def init_app(app: Flask) -> None:
    """Send the deliveries a session of this app commits (the sessions that tests re-bind are left out:
    a test's transaction never commits, and the tests send deliveries themselves)."""
    try:
        parse_networks(app.config.get("WEBHOOK_ALLOWED_NETWORKS") or ())
    except ValueError as exc:
        raise ConfigError(f"LABELER_WEBHOOK_ALLOWED_NETWORKS: {exc}") from None
    if app.config.get("WEBHOOK_DELIVERY", "auto") not in ("auto", "off"):
        raise ConfigError("LABELER_WEBHOOK_DELIVERY must be 'auto' or 'off'")
    db = database(app)
    factories = {
        id(f): f for f in (db.session_factory, db.write_session_factory, db.read_session_factory)
    }
    for factory in factories.values():
        event.listen(factory, "after_commit", partial(_after_commit, app))
        event.listen(factory, "after_rollback", _forget)


def _forget(session: Session) -> None:
    session.info.pop(PENDING, None)


def _after_commit(app: Flask, session: Session) -> None:
    ids = session.info.pop(PENDING, None)
    if not ids or app.config.get("WEBHOOK_DELIVERY", "auto") == "off":
        return
    try:
        if broker_url(app.config):
            for delivery_id in ids:
                send_task(app.config, delivery_id)
        else:
            local_dispatcher(app).wake()
    except Exception:  # a broker that does not answer: the commit stands, the deliveries wait
        log.exception(
            "webhook deliveries %s were committed but not sent; `labeler webhooks deliver` sends them",
            ids,
        )


def send_task(
    config: Mapping[str, Any], delivery_id: int, countdown: float = 0, attempt: int = 0
) -> None:
    """Queue one attempt of a delivery on Celery (after `countdown` seconds)."""
    celery_app(broker_url(config)).send_task(
        WEBHOOK_TASK,
        args=[delivery_id],
        task_id=f"labeler-webhook-{delivery_id}-{attempt}",
        queue=QUEUE,
        countdown=countdown or None,
        retry=False,
    )


def run_task(app: Flask, delivery_id: int) -> dict[str, Any]:
    """The Celery task's body: one attempt, and the next one queued with its back-off when it failed."""
    factory = database(app).session_factory
    outcome = deliver_once(factory, app.config, delivery_id)
    if outcome.retry_in is not None:
        send_task(
            app.config,
            delivery_id,
            countdown=outcome.retry_in,
            attempt=_attempts(factory, delivery_id),
        )
    return {"delivery_id": delivery_id, "sent": outcome.sent, "retry_in": outcome.retry_in}


def _attempts(factory: sessionmaker, delivery_id: int) -> int:
    with factory() as s:
        return s.get(WebhookDelivery, delivery_id).attempts


class LocalDispatcher:
    """One thread per process that sends due deliveries until none is pending (no broker configured)."""

    def __init__(self, factory: sessionmaker, config: Mapping[str, Any]) -> None:
        self.factory, self.config = factory, config
        self.lock = threading.Lock()
        self.woken = threading.Event()
        self.thread: threading.Thread | None = None
        self.stopping = False
        # a short-lived process (a CLI command, a local training worker) lets the attempts under way
        # finish before it exits; retries not yet due stay pending for the next sender
        atexit.register(self.stop, float(config.get("WEBHOOK_TIMEOUT_S") or 10) * 2 + 5)

    def wake(self) -> None:
        with self.lock:
            self.woken.set()
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(
                    target=self._run, name="labeler-webhooks", daemon=True
                )
                self.thread.start()

    def _run(self) -> None:
        while True:
            self.woken.clear()
            try:
                deliver_due(self.factory, self.config)
                wait = next_due_in(self.factory)
            except Exception:  # a database hiccup: try again later rather than die silently
                log.exception("webhook dispatcher: sending due deliveries failed")
                wait = IDLE_POLL_S
            if self.stopping:
                return
            if wait is None:
                with self.lock:
                    if not self.woken.is_set():
                        self.thread = None
                        return
                continue
            self.woken.wait(min(wait, IDLE_POLL_S))

    def stop(self, timeout: float) -> None:
        """Send nothing more; wait up to `timeout` seconds for the attempts under way."""
        self.stopping = True
        self.woken.set()
        thread = self.thread
        if thread is not None and thread.is_alive():
            thread.join(timeout)


def local_dispatcher(app: Flask) -> LocalDispatcher:
    """The app's local dispatcher (made on first use)."""
    found = app.extensions.get("labeler_webhooks")
    if found is None:
        found = app.extensions["labeler_webhooks"] = LocalDispatcher(
            database(app).session_factory, app.config
        )
    return found
