"""Deliveries to a real HTTP receiver on loopback: retries with back-off, the delivery log, signatures
checked with the reference library, redirects not followed, SSRF checked again at each attempt."""

# ruff: noqa: F811  (fixtures imported from webhook_fixtures are used as arguments)
from __future__ import annotations

import itertools
import json

from sqlalchemy import select
from standardwebhooks.webhooks import Webhook
from webhook_fixtures import (  # noqa: F401  (fixtures)
    Receiver,
    drain,
    endpoint_factory,
    loopback_allowed,
    receiver,
)

from labeler.events import emit
from labeler.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery


def _setup(db, make_user, make_project, endpoint_factory, url):
    lead = make_user(None, "lead")
    project = make_project(lead)
    endpoint, secret = endpoint_factory(project, url, actor=lead)
    return project, endpoint, secret


def _delivery(db, endpoint):
    db.expire_all()
    return db.scalar(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))


def _attempts(db, delivery):
    return list(
        db.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == delivery.id)
            .order_by(WebhookAttempt.number)
        )
    )


def test_a_receiver_that_fails_twice_gets_three_attempts_and_the_last_succeeds(
    app, db, make_user, make_project, endpoint_factory, receiver
):
    project, endpoint, secret = _setup(
        db, make_user, make_project, endpoint_factory, receiver.url()
    )
    event = emit(db, "label.submitted", project.id, {"version": 1})
    db.flush()
    receiver.statuses = [500, 503]
    assert drain(app) == 3
    delivery = _delivery(db, endpoint)
    assert delivery.status is DeliveryStatus.succeeded and delivery.attempts == 3
    assert delivery.last_status_code == 200 and delivery.last_error is None
    log = _attempts(db, delivery)
    assert [(a.number, a.status_code, a.ok) for a in log] == [
        (1, 500, False),
        (2, 503, False),
        (3, 200, True),
    ]
    assert log[0].error == "the receiver answered 500"
    # back-off: each retry waited at least its delay (0.01 s, then 0.02 s)
    gaps = [(b.started_at - a.started_at).total_seconds() for a, b in itertools.pairwise(log)]
    assert gaps[0] >= 0.01 and gaps[1] >= 0.02
    # every attempt: the same message id and body, each signed for its own timestamp
    assert len(receiver.requests) == 3
    ids = {r["headers"]["webhook-id"] for r in receiver.requests}
    assert ids == {event.msg_id}
    for request in receiver.requests:
        payload = Webhook(secret).verify(request["body"], request["headers"])
        assert payload["type"] == "label.submitted"
        assert payload["data"] == {"project_id": project.id, "version": 1}
        assert request["path"] == "/hook"
        assert request["headers"]["content-type"] == "application/json"
    assert len({r["body"] for r in receiver.requests}) == 1


def test_a_delivery_gives_up_after_its_attempts_and_can_be_sent_again_by_hand(
    app, db, make_user, make_project, endpoint_factory, receiver, login_as
):
    lead = make_user(None, "lead")
    project = make_project(lead)
    endpoint, _secret = endpoint_factory(project, receiver.url(), actor=lead)
    emit(db, "label.submitted", project.id, {"version": 1})
    db.flush()
    receiver.statuses = [500] * 4  # WEBHOOK_MAX_ATTEMPTS is 4 here
    assert drain(app) == 4
    delivery = _delivery(db, endpoint)
    assert delivery.status is DeliveryStatus.failed and delivery.attempts == 4
    assert delivery.finished_at is not None and delivery.next_attempt_at is None
    # the lead sends it again from the API (session + CSRF): a fresh budget, the log kept
    client = login_as(lead)
    url = f"/api/v1/webhook-deliveries/{delivery.id}/redeliver"
    assert client.post(url).status_code == 400  # no CSRF token
    resp = client.post(url, headers={"X-CSRFToken": client.csrf})
    assert resp.status_code == 202 and resp.json["status"] == "pending"
    assert drain(app) == 1
    delivery = _delivery(db, endpoint)
    assert delivery.status is DeliveryStatus.succeeded and delivery.attempts == 5
    log = client.get(f"/api/v1/webhooks/{endpoint.id}/deliveries").json["deliveries"]
    assert [a["status_code"] for a in log[0]["log"]] == [500, 500, 500, 500, 200]
    assert log[0]["status"] == "succeeded" and log[0]["attempts"] == 5


def test_redirects_are_not_followed(app, db, make_user, make_project, endpoint_factory, receiver):
    elsewhere = Receiver()
    try:
        _project, endpoint, _secret = _setup(
            db, make_user, make_project, endpoint_factory, receiver.url()
        )
        emit(db, "label.submitted", _project.id, {"version": 1})
        db.flush()
        receiver.statuses = [307, 302, 301, 308]
        receiver.redirect_to = elsewhere.url()
        drain(app)
        delivery = _delivery(db, endpoint)
        assert delivery.status is DeliveryStatus.failed
        assert "redirect, not followed" in delivery.last_error
        assert elsewhere.requests == []
    finally:
        elsewhere.close()


def test_the_target_is_checked_again_at_each_attempt(
    app, db, make_user, make_project, endpoint_factory, receiver
):
    """Registered while loopback was allowed; the setting changes (as DNS could): refused, nothing sent."""
    project, endpoint, _secret = _setup(
        db, make_user, make_project, endpoint_factory, receiver.url()
    )
    emit(db, "label.submitted", project.id, {"version": 1})
    db.flush()
    app.config["WEBHOOK_ALLOWED_NETWORKS"] = ()
    drain(app)
    delivery = _delivery(db, endpoint)
    assert delivery.status is DeliveryStatus.failed
    assert delivery.last_error.startswith("refused:") and "loopback" in delivery.last_error
    assert receiver.requests == []


def test_a_slow_receiver_times_out(app, db, make_user, make_project, endpoint_factory):
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts, never answers
    port = listener.getsockname()[1]
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        app.config.update(WEBHOOK_TIMEOUT_S=0.3, WEBHOOK_MAX_ATTEMPTS=1)
        project, endpoint, _secret = _setup(
            db, make_user, make_project, endpoint_factory, f"http://127.0.0.1:{port}/slow"
        )
        emit(db, "label.submitted", project.id, {"version": 1})
        db.flush()
        drain(app)
        delivery = _delivery(db, endpoint)
        assert delivery.status is DeliveryStatus.failed
        assert "timed out" in delivery.last_error or "Timeout" in delivery.last_error
        assert _attempts(db, delivery)[0].duration_ms < 3000
    finally:
        stop.set()
        thread.join()
        for sock in held:
            sock.close()
        listener.close()


def test_the_body_is_the_event_envelope(
    app, db, make_user, make_project, endpoint_factory, receiver
):
    project, _endpoint, _secret = _setup(
        db, make_user, make_project, endpoint_factory, receiver.url()
    )
    emit(db, "label.submitted", project.id, {"version": 2, "project": {"items_done": 1}})
    db.flush()
    drain(app)
    body = json.loads(receiver.requests[0]["body"])
    assert set(body) == {"type", "timestamp", "data"}
    assert body["data"] == {"project_id": project.id, "version": 2, "project": {"items_done": 1}}


def test_an_attempt_is_claimed_once_and_a_removed_endpoint_ends_it_quietly(
    app, db, make_user, make_project, endpoint_factory, receiver, monkeypatch
):
    from labeler.webhooks import delivery as delivery_module

    project, endpoint, _secret = _setup(
        db, make_user, make_project, endpoint_factory, receiver.url()
    )
    emit(db, "label.submitted", project.id, {"version": 1})
    db.flush()
    factory = app.extensions["labeler_db"].session_factory
    delivery_id = _delivery(db, endpoint).id
    # two senders racing for the same due attempt: one gets attempt 1, the other nothing
    assert delivery_module._claim(factory, delivery_id, lease_s=60) == 1
    assert delivery_module._claim(factory, delivery_id, lease_s=60) is None
    assert delivery_module.deliver_once(factory, app.config, delivery_id).sent is False
    # due again (the lease ended); the lead removes the webhook while the attempt is on the wire
    db.execute(
        WebhookDelivery.__table__.update()
        .where(WebhookDelivery.id == delivery_id)
        .values(next_attempt_at=WebhookDelivery.created_at)
    )
    real_post = delivery_module.post

    def post_then_remove(*args, **kwargs):
        code = real_post(*args, **kwargs)
        with factory() as s:
            s.delete(s.get(type(endpoint), endpoint.id))
            s.commit()
        return code

    monkeypatch.setattr(delivery_module, "post", post_then_remove)
    outcome = delivery_module.deliver_once(factory, app.config, delivery_id)
    assert outcome.sent is True and outcome.retry_in is None
    assert len(receiver.requests) == 1
    db.expire_all()
    assert db.get(WebhookDelivery, delivery_id) is None
    # its log went with it (the attempt's row was refused, not left pointing at nothing)
    assert (
        db.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id)).all()
        == []
    )
