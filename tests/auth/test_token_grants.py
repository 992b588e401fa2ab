"""Bearer tokens on the hot path's views (queue next, display image, label save): once this process
has checked a token in full, the next minute's requests check it inside the view's first read
(labeler/auth/token_grants.py), never by a memory of it: a revoked token, a deactivated account or a
taken role is refused by the very next request, and nothing is answered under a token not checked."""

# ruff: noqa: F811  (fixtures imported from labeling_fixtures are used as arguments)
from __future__ import annotations

import sys
import uuid
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "labeling"))
from helpers import recorded_statements, route_answer
from labeling_fixtures import dispatched, make_item, rater_queue  # noqa: F401  (fixtures)

from labeler.auth.models import ApiToken, Role
from labeler.db import utcnow


def full_checks(statements: list[str]) -> int:
    """The token's own query (its full check): the token joined with its user and roles."""
    return sum("AS token_id" in s for s in statements)


def checked_reads(statements: list[str]) -> int:
    """Statements carrying the token's check (TOKEN_STILL_VALID), in a view's read or alone."""
    return sum("api_tokens.revoked_at IS NULL" in s for s in statements)


@pytest.fixture()
def hot(app, connection, rater_queue):
    client, headers = app.test_client(), {"Authorization": f"Bearer {rater_queue.raw}"}
    with recorded_statements(connection) as seen:
        # the first request of a token in this process checks it in full (any view)
        assert client.get("/api/v1/icd10?q=acne", headers=headers).status_code == 200
        assert full_checks(seen) == 1
        seen.clear()
        yield SimpleNamespace(
            client=client,
            headers=headers,
            seen=seen,
            next_url=f"/api/v1/projects/{rater_queue.project.id}/queue/next",
            **vars(rater_queue),
        )


def _label_of(db, item):
    from labeler.labeling.models import Label

    db.expire_all()
    return db.scalar(
        select(func.count(Label.id)).where(
            Label.rater_id == item.rater_id, Label.image_id == item.image_id
        )
    )


def _body():
    return {"decision": "no_skin", "base_version": 0, "submission_id": uuid.uuid4().hex}


def test_the_hot_views_check_the_token_in_their_first_read(hot, db):
    client, headers, seen = hot.client, hot.headers, hot.seen
    item = client.get(hot.next_url, headers=headers).json["item"]
    image = client.get(item["image_url"], headers=headers)
    assert image.status_code == 200 and image.data.startswith(b"\xff\xd8")
    image.close()
    saved = client.put(f"/api/v1/items/{item['id']}/label", json=_body(), headers=headers)
    assert saved.status_code == 200 and saved.json["version"] == 1
    assert full_checks(seen) == 0, seen
    # each view's first read carried the check (PostgreSQL: the submit's queue lock comes first)
    firsts = [s for s in seen if "api_tokens" in s]
    assert len(firsts) == 3, seen
    # a view that is not marked still checks the token in full, on every request
    seen.clear()
    assert client.get(f"/api/v1/items/{item['id']}/label", headers=headers).status_code == 200
    assert full_checks(seen) == 1


def test_a_revoked_token_is_refused_by_the_next_request_of_every_hot_view(hot, db):
    from labeler.auth.services import revoke_token

    client, headers = hot.client, hot.headers
    item = client.get(hot.next_url, headers=headers).json["item"]
    revoke_token(db, hot.rater, hot.token.id)
    db.flush()
    for method, url, kw in (
        ("GET", hot.next_url, {}),
        ("GET", item["image_url"], {}),
        ("PUT", f"/api/v1/items/{item['id']}/label", {"json": _body()}),
        ("PUT", f"/api/v1/items/{item['id']}/label?next=1", {"json": _body()}),
    ):
        resp = client.open(url, method=method, headers=headers, **kw)
        assert resp.status_code == 401, (url, resp.get_data(as_text=True))
        assert resp.json["error"]["code"] == "token_revoked"
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert _label_of(db, hot.items[0]) == 0


def test_nothing_is_answered_before_the_token_was_checked(hot, db):
    """A revoked token whose request would fail before any checked statement (a malformed body,
    another rater's item) gets 401, not the 422 or 404 an unchecked answer would have given."""
    from labeler.auth.services import revoke_token

    client, headers = hot.client, hot.headers
    item = client.get(hot.next_url, headers=headers).json["item"]
    url = f"/api/v1/items/{item['id']}/label"
    bad = client.put(url, data="{not json", headers={**headers, "Content-Type": "application/json"})
    assert bad.status_code == 400  # checked in full first (the answer came before any statement)
    stranger = item["image_url"].replace(item["id"], "x" * len(item["id"]))
    assert client.get(stranger, headers=headers).status_code == 404
    revoke_token(db, hot.rater, hot.token.id)
    db.flush()
    bad = client.put(url, data="{not json", headers={**headers, "Content-Type": "application/json"})
    assert bad.status_code == 401 and bad.json["error"]["code"] == "token_revoked"
    assert client.get(stranger, headers=headers).status_code == 401


def test_deactivation_and_a_taken_role_are_refused_at_once(hot, db):
    from labeler.auth.services import set_active, set_roles

    client, headers = hot.client, hot.headers
    item = client.get(hot.next_url, headers=headers).json["item"]
    set_active(db, None, hot.rater, False)
    db.flush()
    refused = client.get(item["image_url"], headers=headers)
    assert refused.status_code == 401 and refused.json["error"]["code"] == "account_deactivated"
    set_active(db, None, hot.rater, True)
    db.flush()
    image = client.get(item["image_url"], headers=headers)
    assert image.status_code == 200
    image.close()
    # the rater role taken (the account keeps the lead role): saving a label needs it
    set_roles(db, None, hot.rater, {Role.lead})
    db.flush()
    refused = client.put(f"/api/v1/items/{item['id']}/label", json=_body(), headers=headers)
    assert refused.status_code == 403
    assert _label_of(db, hot.items[0]) == 0


def test_a_new_session_generation_is_checked_in_full_once_then_trusted_again(hot, db):
    """Signing out in a browser bumps the user's generation: the token still works; the next
    request checks it in full, the following ones in their first read again."""
    from labeler.auth.services import end_sessions

    client, headers, seen = hot.client, hot.headers, hot.seen
    end_sessions(db, hot.rater)
    db.flush()
    seen.clear()
    assert client.get(hot.next_url, headers=headers).status_code == 200
    assert full_checks(seen) == 1  # the checked statement found nothing, then the full check
    seen.clear()
    assert client.get(hot.next_url, headers=headers).status_code == 200
    assert full_checks(seen) == 0


def test_expiry_and_the_last_use_stamp_are_decided_by_the_full_check(hot, db, monkeypatch):
    from labeler.auth import login, services

    client, headers, seen = hot.client, hot.headers, hot.seen
    db.expire_all()
    stamped = db.get(ApiToken, hot.token.id).last_used_at
    later = utcnow() + timedelta(minutes=2)
    monkeypatch.setattr(login, "utcnow", lambda: later)
    monkeypatch.setattr(services, "utcnow", lambda: later)
    assert client.get(hot.next_url, headers=headers).status_code == 200
    assert full_checks(seen) == 1  # a minute passed: checked in full, and stamped
    db.expire_all()
    assert db.get(ApiToken, hot.token.id).last_used_at > stamped
    expired = hot.token.expires_at_utc + timedelta(seconds=1)
    monkeypatch.setattr(login, "utcnow", lambda: expired)
    monkeypatch.setattr(services, "utcnow", lambda: expired)
    refused = client.get(hot.next_url, headers=headers)
    assert refused.status_code == 401 and refused.json["error"]["code"] == "token_expired"


def test_a_removed_rater_gets_a_plain_404_without_a_rerun(hot, db):
    """A checked read that finds no row runs the token's check alone: the token still passes, so the
    404 is the answer (no second attempt, no full check); nothing is written."""
    from labeler.projects.models import MemberRole
    from labeler.projects.services import remove_member

    client, headers, seen = hot.client, hot.headers, hot.seen
    item = client.get(hot.next_url, headers=headers).json["item"]
    remove_member(db, None, hot.project, hot.rater, MemberRole.rater)
    db.flush()
    seen.clear()
    assert client.get(item["image_url"], headers=headers).status_code == 404
    # the image layer below Flask (api/hot_image.py) finds no row and leaves the request to the
    # route: its checked read (the same statement), then the check alone
    assert full_checks(seen) == 0 and len(seen) == 3, seen
    assert seen[0] == seen[1] and checked_reads(seen[:1]) == 1
    assert checked_reads(seen[2:]) == 1 and "queue_items" not in seen[2]
    resp = client.put(f"/api/v1/items/{item['id']}/label", json=_body(), headers=headers)
    assert resp.status_code == 404
    assert _label_of(db, hot.items[0]) == 0


def test_an_empty_queue_is_answered_without_a_rerun(hot, db):
    client, headers, seen = hot.client, hot.headers, hot.seen
    for item in hot.items:
        url = f"/api/v1/items/{item.public_id}/label"
        assert client.put(url, json=_body(), headers=headers).status_code == 200
    seen.clear()
    resp = client.get(hot.next_url, headers=headers)
    assert resp.status_code == 200 and resp.json["item"] is None
    assert full_checks(seen) == 0, seen
    # pending (checked, no row), the check alone, skipped, is-a-rater: never the view twice
    assert checked_reads(seen) == 2, seen


def test_a_token_without_the_rater_role_gets_the_full_check_every_time(
    app, db, connection, make_user
):
    """Only a rater's token is taken on trust (the check requires the role): a lead's is checked in
    full by each request, and never by a checked read that must fail first."""
    from labeler.auth.login import GRANTS
    from labeler.auth.services import create_token, token_hash

    lead = make_user(None, "lead")
    _token, raw = create_token(db, None, lead, "script")
    db.flush()
    client, headers = app.test_client(), {"Authorization": f"Bearer {raw}"}
    with recorded_statements(connection) as seen:
        for _ in range(2):
            seen.clear()
            resp = client.get("/api/v1/projects/999999/queue/next", headers=headers)
            assert resp.status_code == 404
            assert full_checks(seen) == 1
            assert checked_reads(seen) == 0, "\n".join(seen)  # nothing taken on trust
    assert app.extensions[GRANTS].get(token_hash(raw)) is None


def test_options_is_not_answered_under_a_revoked_token(hot, db):
    from labeler.auth.services import revoke_token

    client, headers = hot.client, hot.headers
    assert client.options(hot.next_url, headers=headers).status_code == 200
    revoke_token(db, hot.rater, hot.token.id)
    db.flush()
    resp = client.options(hot.next_url, headers=headers)
    assert resp.status_code == 401 and resp.json["error"]["code"] == "token_revoked"


def test_a_database_failure_before_the_check_is_not_retried(hot, db, monkeypatch):
    """Only a refused token (or a 4xx answered before the check) runs the view again; a failure of
    the database is a plain 500, once."""
    from sqlalchemy.exc import OperationalError

    from labeler.api import allocation

    calls = []

    def failing(*_args, **_kwargs):
        calls.append(1)
        raise OperationalError("SELECT 1", {}, Exception("the database went away"))

    monkeypatch.setattr(allocation, "next_item_row", failing)
    app = hot.client.application
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)
    resp = hot.client.get(hot.next_url, headers=hot.headers)
    assert resp.status_code == 500
    assert len(calls) == 1


# -- the display image below Flask (labeler/api/hot_image.py) ----------------------------------------


@pytest.mark.parametrize("accel", [False, True], ids=["file", "x-accel-redirect"])
def test_the_display_image_is_answered_below_flask_as_the_route_answers_it(
    app, hot, dispatched, monkeypatch, accel
):
    client, headers, seen = hot.client, hot.headers, hot.seen
    monkeypatch.setitem(app.config, "X_ACCEL_REDIRECT", accel)
    item = client.get(hot.next_url, headers=headers).json["item"]  # served: its first showing
    routed = route_answer(app, monkeypatch, client, item["image_url"], headers)
    assert routed[0] == 200
    dispatched.clear()
    seen.clear()
    resp = client.get(item["image_url"], headers=headers)
    assert dispatched == [], "the image layer left the request to Flask"
    assert (resp.status_code, sorted(resp.headers.items()), resp.get_data()) == routed
    # one statement: the route's read with the token's check in it
    assert len(seen) == 1 and checked_reads(seen) == 1 and "queue_items" in seen[0], seen
    assert resp.headers["Cache-Control"] == "private, no-store"
    assert not {"ETag", "Last-Modified", "Content-Disposition"} & set(resp.headers.keys())
    assert resp.headers["Content-Security-Policy"] and resp.headers["X-Frame-Options"] == "DENY"
    if accel:
        assert resp.headers["X-Accel-Redirect"].startswith("/_labeler_files/") and not resp.data
    else:
        assert resp.data == b"\xff\xd8 not really a jpeg \xff\xd9"
        assert resp.headers["Content-Length"] == str(len(resp.data))


def test_what_the_image_layer_does_not_answer_goes_to_the_route(app, hot, db, dispatched):
    from labeler.allocation.models import QueueItem
    from labeler.images.models import Image

    client, headers = hot.client, hot.headers
    item = client.get(hot.next_url, headers=headers).json["item"]
    url = item["image_url"]
    dispatched.clear()
    ranged = client.get(url, headers={**headers, "Range": "bytes=0-3"})
    assert ranged.status_code == 206 and ranged.data == b"\xff\xd8 n"
    head = client.head(url, headers=headers)
    assert head.status_code == 200 and not head.data
    assert client.get(url).status_code == 401  # no token: the route refuses
    assert client.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert dispatched == [url] * 4
    # never shown yet: the route stamps its first showing
    unshown = hot.items[2]
    db.expire_all()
    assert db.get(QueueItem, unshown.id).shown_at is None
    dispatched.clear()
    unshown_url = url.replace(item["id"], unshown.public_id)
    shown = client.get(unshown_url, headers=headers)
    assert shown.status_code == 200 and shown.data.startswith(b"\xff\xd8")
    assert dispatched == [unshown_url]
    db.expire_all()
    assert db.get(QueueItem, unshown.id).shown_at is not None
    # its display copy gone from storage: the route's 404, not an empty 200
    app.extensions["labeler_storage"].delete(db.get(Image, unshown.image_id).display_key)
    dispatched.clear()
    missing = client.get(unshown_url, headers=headers)
    assert missing.status_code == 404 and "missing from storage" in missing.json["error"]["message"]
    assert dispatched == [unshown_url]


def _image_status(client, url, headers):
    """The image's status, its body read and the response closed (its file with it)."""
    resp = client.get(url, headers=headers)
    resp.get_data()
    resp.close()
    return resp.status_code


def test_the_image_layer_trusts_a_token_no_longer_than_the_full_check_does(
    hot, db, dispatched, monkeypatch
):
    """Expiry and the last-use stamp's minute are decided by the full check (the layer's statement
    checks neither): past them the image goes to the route, which checks in full."""
    from labeler.api import hot_image
    from labeler.auth import login, services

    client, headers, seen = hot.client, hot.headers, hot.seen
    item = client.get(hot.next_url, headers=headers).json["item"]
    dispatched.clear()
    assert _image_status(client, item["image_url"], headers) == 200
    assert dispatched == []  # trusted: answered below Flask

    def at(moment):
        for module in (login, services, hot_image):
            monkeypatch.setattr(module, "utcnow", lambda: moment)

    at(utcnow() + timedelta(minutes=2))  # the stamp is more than a minute old
    seen.clear()
    assert _image_status(client, item["image_url"], headers) == 200
    assert dispatched == [item["image_url"]] and full_checks(seen) == 1  # checked in full, stamped
    at(hot.token.expires_at_utc + timedelta(seconds=1))
    dispatched.clear()
    refused = client.get(item["image_url"], headers=headers)
    assert refused.status_code == 401 and refused.json["error"]["code"] == "token_expired"
    assert dispatched == [item["image_url"]]
