"""Webhooks against hostile input and hostile receivers: malformed URLs refused in words (never 500),
IPv6 forms that lead to an IPv4 address judged by that address, numeric host forms, the connection
pinned to the checked address, non-ASCII paths, a receiver that trickles its answer or sends a huge
one, an unexpected failure recorded as a failed attempt, and cross-project ids."""

# ruff: noqa: F811  (fixtures imported from webhook_fixtures are used as arguments)
from __future__ import annotations

import ipaddress
import socket
import threading
import time

import pytest
from sqlalchemy import select
from webhook_fixtures import (  # noqa: F401  (fixtures)
    drain,
    endpoint_factory,
    loopback_allowed,
    receiver,
)

from labeler.events import emit
from labeler.webhooks import delivery as delivery_module
from labeler.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery
from labeler.webhooks.targets import Target, TargetRefused, address_problem, check_url, resolve


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://[::1", "not a valid URL"),  # unclosed IPv6 bracket: urlsplit raises
        ("http://[::1/x", "not a valid URL"),
        ("https://example.org:0/", "port"),  # was silently sent to port 443
    ],
)
def test_malformed_urls_are_refused_in_words(url, words):
    with pytest.raises(TargetRefused) as err:
        check_url(url)
    assert words in err.value.message and err.value.status == 422


def test_malformed_urls_are_refused_on_the_page_and_the_api(app, make_user, make_project, login_as):
    lead = make_user(None, "lead")
    project = make_project(lead)
    client = login_as(lead)
    page = client.post(
        f"/projects/{project.id}/webhooks",
        data={"url": "http://[::1", "events": "label.submitted", "csrf_token": client.csrf},
    )
    assert page.status_code == 422 and "not a valid URL" in page.get_data(as_text=True)
    api = client.post(
        f"/api/v1/projects/{project.id}/webhooks",
        json={"url": "http://[::1", "events": ["label.submitted"]},
        headers={"X-CSRFToken": client.csrf},
    )
    assert api.status_code == 422 and api.json["error"]["message"] == (
        "the webhook URL is not a valid URL"
    )


@pytest.mark.parametrize(
    "address",
    [
        "::7f00:1",  # IPv4-compatible ::127.0.0.1
        "::a9fe:a9fe",  # ::169.254.169.254
        "64:ff9b::7f00:1",  # NAT64 (RFC 6052) to 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 to the cloud metadata service
        "64:ff9b::a00:5",  # NAT64 to 10.0.0.5
        "64:ff9b:1::a00:5",  # local-use NAT64 (RFC 8215)
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "2002:c0a8:101::",  # 6to4 of 192.168.1.1
    ],
)
def test_ipv6_forms_of_non_public_ipv4_addresses_are_refused(address):
    problem = address_problem(ipaddress.ip_address(address), ())
    assert problem is not None and "." in problem.split(" ", 1)[0]  # names the IPv4 address


def test_ipv6_forms_of_public_ipv4_addresses_pass_and_allowed_networks_apply():
    assert address_problem(ipaddress.ip_address("64:ff9b::5db8:d822"), ()) is None  # 93.184.216.34
    assert address_problem(ipaddress.ip_address("2606:4700::1111"), ()) is None  # plain public v6
    allowed = (ipaddress.ip_network("10.0.0.0/8"),)
    assert address_problem(ipaddress.ip_address("64:ff9b::a00:5"), allowed) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",  # decimal 127.0.0.1
        "http://0177.0.0.1/",  # octal
        "http://0x7f.1/",  # hexadecimal, short form
        "http://127.1/",
        "http://0/",  # 0.0.0.0
        "http://[::ffff:7f00:1]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[::]/",
    ],
)
def test_numeric_host_forms_are_judged_by_the_address_they_reach(url):
    with pytest.raises(TargetRefused):
        resolve(url, ())


def test_the_connection_goes_to_the_checked_address_not_a_new_lookup(receiver, monkeypatch):
    real = socket.getaddrinfo

    def rebound(host, *args, **kwargs):  # DNS rebinding: a lookup now would answer another address
        ipaddress.ip_address(host)  # only the checked address literal may be "looked up"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebound)
    target = Target("http", "hooks.example.org", receiver.port, "/pinned", ("127.0.0.1",))
    assert delivery_module.post(target, b"{}", {}, timeout=5) == 200
    request = receiver.requests[0]
    assert request["path"] == "/pinned" and request["headers"]["host"].startswith("hooks.example")


def _one_delivery(app, db, make_user, make_project, endpoint_factory, url):
    lead = make_user(None, "lead")
    project = make_project(lead)
    endpoint, _secret = endpoint_factory(project, url, actor=lead)
    emit(db, "label.submitted", project.id, {"version": 1})
    db.flush()
    return project, endpoint


def _delivery_and_log(db, endpoint):
    db.expire_all()
    delivery = db.scalar(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
    log = list(db.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery.id)))
    return delivery, log


def test_a_non_ascii_path_is_sent_percent_encoded(
    app, db, make_user, make_project, endpoint_factory, receiver
):
    _project, endpoint = _one_delivery(
        app, db, make_user, make_project, endpoint_factory, receiver.url("/h\u00e9?q=\u00fc")
    )
    assert drain(app) == 1
    delivery, _log = _delivery_and_log(db, endpoint)
    assert delivery.status is DeliveryStatus.succeeded
    assert receiver.requests[0]["path"] == "/h%C3%A9?q=%C3%BC"


class _Hostile:
    """A raw TCP receiver on loopback; `answer(conn)` writes whatever it likes."""

    def __init__(self, answer):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.answer = answer
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        try:
            conn.settimeout(5)
            conn.recv(65536)
            self.answer(conn, self.stop)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.stop.set()
        self.thread.join()
        self.listener.close()


def _trickle(conn, stop):
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    while not stop.is_set():  # one byte of a header every 50 ms: each read is within the timeout
        conn.sendall(b"a")
        time.sleep(0.05)


def _huge(conn, stop):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n")
    chunk = b"x" * 65536
    while not stop.is_set():
        conn.sendall(chunk)


def test_a_receiver_that_trickles_its_answer_is_cut_off_at_the_timeout(
    app, db, make_user, make_project, endpoint_factory
):
    hostile = _Hostile(_trickle)
    try:
        app.config.update(WEBHOOK_TIMEOUT_S=0.5, WEBHOOK_MAX_ATTEMPTS=1)
        _project, endpoint = _one_delivery(
            app, db, make_user, make_project, endpoint_factory, f"http://127.0.0.1:{hostile.port}/"
        )
        started = time.monotonic()
        drain(app)
        assert time.monotonic() - started < 5  # before: until the receiver stopped (never)
        delivery, log = _delivery_and_log(db, endpoint)
        assert delivery.status is DeliveryStatus.failed
        assert "did not answer within 0.5 s" in delivery.last_error
        assert log[0].duration_ms < 3000
    finally:
        hostile.close()


def test_a_huge_answer_is_read_only_in_part(app, db, make_user, make_project, endpoint_factory):
    hostile = _Hostile(_huge)
    try:
        _project, endpoint = _one_delivery(
            app, db, make_user, make_project, endpoint_factory, f"http://127.0.0.1:{hostile.port}/"
        )
        drain(app)
        delivery, log = _delivery_and_log(db, endpoint)
        assert delivery.status is DeliveryStatus.succeeded and delivery.last_status_code == 200
        assert log[0].duration_ms < 3000
    finally:
        hostile.close()


def test_an_unexpected_failure_is_recorded_and_retries_stay_bounded(
    app, db, make_user, make_project, endpoint_factory, receiver, monkeypatch
):
    def broken(*_args, **_kwargs):
        raise ValueError("something nobody expected")

    monkeypatch.setattr(delivery_module, "post", broken)
    _project, endpoint = _one_delivery(
        app, db, make_user, make_project, endpoint_factory, receiver.url()
    )
    assert drain(app) == 4  # WEBHOOK_MAX_ATTEMPTS is 4 here: before, the claim stayed open forever
    delivery, log = _delivery_and_log(db, endpoint)
    assert delivery.status is DeliveryStatus.failed and delivery.attempts == 4
    assert [a.error for a in log] == ["the attempt failed (ValueError)"] * 4


def test_another_projects_ids_are_not_found_under_ones_own_project(
    app, db, make_user, make_project, login_as, endpoint_factory, receiver
):
    lead_a, lead_b = make_user(None, "lead"), make_user(None, "lead")
    project_a, project_b = make_project(lead_a), make_project(lead_b)
    endpoint, _secret = endpoint_factory(project_a, receiver.url(), actor=lead_a)
    emit(db, "label.submitted", project_a.id, {"version": 1})
    db.flush()
    delivery = db.scalar(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
    client = login_as(lead_b)
    own = f"/projects/{project_b.id}/webhooks"
    assert client.get(f"{own}/{endpoint.id}").status_code == 404
    form = {"csrf_token": client.csrf}
    assert client.post(f"{own}/{endpoint.id}/delete", data=form).status_code == 404
    assert client.post(f"{own}/deliveries/{delivery.id}/redeliver", data=form).status_code == 404
    page = client.get(own).get_data(as_text=True)
    assert receiver.url() not in page
    db.expire_all()
    assert db.get(type(endpoint), endpoint.id) is not None
    assert db.get(WebhookDelivery, delivery.id).attempts == 0


def test_redelivery_waits_while_an_attempt_is_on_the_wire(
    app, db, make_user, make_project, endpoint_factory, receiver, login_as
):
    """Redeliver made a claimed delivery due at once, so a second sender could send the same event
    while the first was still sending: refused (409) until the attempt is logged."""
    lead = make_user(None, "lead")
    project = make_project(lead)
    endpoint, _secret = endpoint_factory(project, receiver.url(), actor=lead)
    emit(db, "label.submitted", project.id, {"version": 1})
    db.flush()
    delivery = db.scalar(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
    client = login_as(lead)
    url = f"/api/v1/webhook-deliveries/{delivery.id}/redeliver"
    headers = {"X-CSRFToken": client.csrf}
    assert client.post(url, headers=headers).status_code == 202  # pending, never tried: send now
    factory = app.extensions["labeler_db"].session_factory
    assert delivery_module._claim(factory, delivery.id, lease_s=60) == 1  # a sender has it
    busy = client.post(url, headers=headers)
    assert busy.status_code == 409 and "being sent right now" in busy.json["error"]["message"]
    db.expire_all()
    assert delivery_module._claim(factory, delivery.id, lease_s=60) is None  # still leased
    # the lease ended without a log (the sender died): not on the wire any more
    db.execute(
        WebhookDelivery.__table__.update()
        .where(WebhookDelivery.id == delivery.id)
        .values(next_attempt_at=WebhookDelivery.created_at)
    )
    assert client.post(url, headers=headers).status_code == 202
    assert drain(app) == 1
    db.expire_all()
    assert db.get(WebhookDelivery, delivery.id).status is DeliveryStatus.succeeded
    assert client.post(url, headers=headers).status_code == 202  # finished: may be sent again
