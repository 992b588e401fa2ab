"""One attempt of a delivery: claim it, sign the body (Standard Webhooks), POST it, log the answer.

The same body runs on a Celery worker and in the local dispatcher thread (dispatch.py). An attempt is
claimed with one conditional UPDATE that moves the delivery's due time past the attempt's timeout (a
lease): two senders never send the same attempt, and a sender that dies mid-attempt leaves the
delivery due again once the lease ends. Failed attempts are retried with exponential back-off
(WEBHOOK_RETRY_BASE_S, doubling) until WEBHOOK_MAX_ATTEMPTS; redirects are never followed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import logging
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from ..db import utcnow
from .models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from .targets import Target, TargetRefused, parse_networks, resolve

log = logging.getLogger(__name__)
SECRET_PREFIX = "whsec_"
USER_AGENT = "labeler-webhooks/1"
MAX_RESPONSE_READ = 64 * 1024  # the receiver's answer is read this far, then the connection closes
MAX_BACKOFF_S = 6 * 3600


def new_secret() -> str:
    """A Standard Webhooks secret: whsec_ + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature header: "v1," + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}"))."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def event_body(event: WebhookEvent) -> bytes:
    """The JSON body of an event (the same bytes at every attempt)."""
    envelope = {
        "type": event.name,
        "timestamp": event.created_at.isoformat(),
        "data": event.payload,
    }
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()


def settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The delivery settings from the app config, with their defaults."""
    return {
        "timeout": float(config.get("WEBHOOK_TIMEOUT_S") or 10),
        "max_attempts": int(config.get("WEBHOOK_MAX_ATTEMPTS") or 8),
        "base": float(config.get("WEBHOOK_RETRY_BASE_S") or 30),
        "allowed": parse_networks(config.get("WEBHOOK_ALLOWED_NETWORKS") or ()),
    }


def backoff_s(attempts: int, base: float) -> float:
    """Seconds before attempt `attempts + 1`: base, 2 base, 4 base, ... (capped at 6 h)."""
    return min(base * 2 ** max(attempts - 1, 0), MAX_BACKOFF_S)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to an address already checked, not to whatever the host name resolves to now."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def _cut(conn: http.client.HTTPConnection, fired: threading.Event) -> None:
    """The attempt's time is up: shut its socket, so that a read blocked on a receiver that answers
    byte by byte (each read within the per-read timeout) returns now."""
    fired.set()
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def post(target: Target, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
    """POST the body to the first checked address that connects; the response's status code.

    `timeout` bounds the whole attempt (connect, send, the answer's headers and the first 64 KB of its
    body), not only each read: a receiver that trickles its answer is cut off at the deadline."""
    error: OSError | None = None
    deadline = time.monotonic() + timeout
    for address in target.addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        cls = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
        conn = cls(target.host, target.port, address, remaining)
        fired = threading.Event()
        watchdog = threading.Timer(remaining, _cut, (conn, fired))
        watchdog.daemon = True
        watchdog.start()
        try:
            conn.request("POST", target.path, body=body, headers=dict(headers))
            resp = conn.getresponse()
            resp.read(MAX_RESPONSE_READ)
            if fired.is_set():
                raise TimeoutError(f"the receiver did not answer within {timeout:g} s")
            return resp.status
        except (ConnectionRefusedError, TimeoutError) as exc:
            error = exc
            if isinstance(exc, TimeoutError) and conn.sock is not None:
                raise  # connected, then the receiver was too slow: not another address's fault
        except (OSError, http.client.HTTPException):
            if fired.is_set():
                raise TimeoutError(f"the receiver did not answer within {timeout:g} s") from None
            raise
        finally:
            watchdog.cancel()
            conn.close()
    raise error or TimeoutError(f"the receiver did not answer within {timeout:g} s")


def _claim(factory: sessionmaker, delivery_id: int, lease_s: float) -> int | None:
    """Take the delivery's next attempt if it is due; its attempt number, or None."""
    now = utcnow()
    with factory() as s:
        number = s.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.status == DeliveryStatus.pending,
                WebhookDelivery.next_attempt_at <= now,
            )
            .values(
                attempts=WebhookDelivery.attempts + 1,
                last_attempt_at=now,
                next_attempt_at=now + timedelta(seconds=lease_s),
            )
            .returning(WebhookDelivery.attempts)
        ).scalar()
        s.commit()
    return number


@dataclass(frozen=True)
class Outcome:
    sent: bool  # this call made an attempt (False: not due, finished, or another sender has it)
    retry_in: float | None = None  # seconds until the next attempt; None: nothing more to do


def deliver_once(factory: sessionmaker, config: Mapping[str, Any], delivery_id: int) -> Outcome:
    """Send one attempt of a due delivery and record it in the delivery log."""
    opts = settings(config)
    # the lease: longer than the attempt can take (the timeout applies per connect and per read)
    number = _claim(factory, delivery_id, lease_s=4 * opts["timeout"] + 30)
    if number is None:
        return Outcome(sent=False)
    with factory() as s:
        delivery = s.get(WebhookDelivery, delivery_id)
        if delivery is None:  # its endpoint was removed since the claim (the deliveries go with it)
            return Outcome(sent=False)
        endpoint = s.get(WebhookEndpoint, delivery.endpoint_id)
        event = s.get(WebhookEvent, delivery.event_id)
        url, secret, active = endpoint.url, endpoint.secret, endpoint.active
        limit = delivery.attempt_limit or opts["max_attempts"]
        msg_id, body = event.msg_id, event_body(event)
    started, clock = utcnow(), time.monotonic()
    code: int | None = None
    error: str | None = None
    if not active:
        error = "the endpoint is disabled"
    else:
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, msg_id, timestamp, body),
        }
        try:
            target = resolve(url, opts["allowed"])  # again at each attempt: DNS may have changed
            code = post(target, body, headers, opts["timeout"])
            if not 200 <= code < 300:
                error = (
                    f"the receiver answered {code} (a redirect, not followed)"
                    if 300 <= code < 400
                    else f"the receiver answered {code}"
                )
        except TargetRefused as exc:
            error = f"refused: {exc.message}"
        except (OSError, http.client.HTTPException) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except Exception as exc:  # recorded as a failed attempt: a delivery never stays claimed
            log.exception("webhook delivery %s attempt %s failed unexpectedly", delivery_id, number)
            error = f"the attempt failed ({type(exc).__name__})"
    ok = error is None
    duration = int((time.monotonic() - clock) * 1000)
    retry_in = None if ok or number >= limit or not active else backoff_s(number, opts["base"])
    now = utcnow()
    try:
        with factory() as s:
            s.add(
                WebhookAttempt(
                    delivery_id=delivery_id,
                    number=number,
                    started_at=started,
                    duration_ms=duration,
                    status_code=code,
                    error=error[:500] if error else None,
                    ok=ok,
                )
            )
            values: dict[str, Any] = {
                "last_status_code": code,
                "last_error": error[:500] if error else None,
            }
            if retry_in is None:
                values.update(
                    status=DeliveryStatus.succeeded if ok else DeliveryStatus.failed,
                    next_attempt_at=None,
                    finished_at=now,
                )
            else:
                values["next_attempt_at"] = now + timedelta(seconds=retry_in)
            s.execute(
                update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(**values)
            )
            s.commit()
    except IntegrityError:  # the endpoint, and this delivery with it, was removed meanwhile
        log.info("webhook delivery %s was removed during its attempt %s", delivery_id, number)
        return Outcome(sent=True)
    log.info(
        "webhook delivery %s attempt %s: %s%s",
        delivery_id,
        number,
        "delivered" if ok else error,
        f"; next attempt in {retry_in:g} s" if retry_in is not None else "",
    )
    return Outcome(sent=True, retry_in=retry_in)


def due_deliveries(factory: sessionmaker, limit: int = 100) -> list[int]:
    """Ids of pending deliveries whose attempt is due now, oldest first."""
    with factory() as s:
        return list(
            s.scalars(
                select(WebhookDelivery.id)
                .where(
                    WebhookDelivery.status == DeliveryStatus.pending,
                    WebhookDelivery.next_attempt_at <= utcnow(),
                )
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                .limit(limit)
            )
        )


def next_due_in(factory: sessionmaker) -> float | None:
    """Seconds until the earliest pending delivery is due (0 if one is due now), None if none is pending."""
    with factory() as s:
        due = s.scalar(
            select(WebhookDelivery.next_attempt_at)
            .where(WebhookDelivery.status == DeliveryStatus.pending)
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(1)
        )
    if due is None:
        return None
    if due.tzinfo is None:  # SQLite hands back naive UTC
        due = due.replace(tzinfo=utcnow().tzinfo)
    return max((due - utcnow()).total_seconds(), 0.0)


def deliver_due(factory: sessionmaker, config: Mapping[str, Any], limit: int = 100) -> int:
    """Send one attempt of every delivery due now; how many attempts were sent."""
    return sum(deliver_once(factory, config, i).sent for i in due_deliveries(factory, limit))
