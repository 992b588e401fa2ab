"""Every route, built from the app's URL map: signed out, and with each role.

A new route that is neither public nor guarded by role_required/signed_in fails here, so no route
can be forgotten.
"""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image as PILImage

from labeler.auth.services import create_token
from labeler.demo import MemorySource
from labeler.images.services import import_images
from labeler.projects.models import MemberRole
from labeler.projects.services import add_member

PUBLIC = {
    "static",
    "auth.login",
    "auth.dev_login",
    "auth.sso_start",
    "auth.sso_redirect",
    "auth.logout",
    "api.openapi_json",
}
ROLES = ("rater", "lead", "admin")


@pytest.fixture()
def world(app, db, make_user, make_project):
    """One user per role, a project they all belong to, an image, a token each."""
    users = {role: make_user(f"{role}@matrix.test", role) for role in ROLES}
    project = make_project(users["lead"])
    add_member(db, None, project, users["rater"], MemberRole.rater)
    buf = io.BytesIO()
    PILImage.new("RGB", (32, 32), (200, 150, 120)).save(buf, "JPEG")
    summary = import_images(
        db,
        None,
        project,
        [MemorySource("m.jpg", buf.getvalue())],
        storage=app.extensions["labeler_storage"],
        source_label="t",
        checkpoint=db.flush,
    )
    tokens = {}
    for role, user in users.items():
        _auth, raw = create_token(db, user, user, "matrix")
        target, _raw = create_token(
            db, user, user, "to revoke"
        )  # the revoke route must not revoke `raw`
        tokens[role] = (target, raw)
    extra = _allocation_args(db, project, users["rater"])
    db.flush()
    args = {
        "project_id": project.id,
        "image_id": summary.imported[0]["id"],
        "kind": "thumb",
        **extra,
        "user_id": users["rater"].id,  # admin pages act on the rater, never on the caller
        "model_id": "quality-20260101T000000-abcdef",
        "run_id": 999999,
        "endpoint_id": 999999,  # a webhook
        "delivery_id": 999999,  # a webhook delivery
        "job_id": 999999,  # an import job
        "flag_id": 999999,  # a rater's flag
        "study_id": 999999,  # a reader study
        "reading_id": "matrixreading01",  # a reader-study reading
        "ref_id": 999999,  # a reference image
        "level": 0,  # a deep-zoom tile
        "col": 0,
        "row": 0,
    }  # unknown: 404 past the role check
    return users, tokens, args


def _allocation_args(db, project, rater) -> dict:
    """Route arguments that need a queue item, once the allocation feature provides items."""
    try:
        from labeler.allocation.models import QueueItem
        from labeler.images.models import Image
    except ImportError:  # pragma: no cover
        return {}
    image = db.query(Image).filter_by(project_id=project.id).first()
    item = QueueItem(
        public_id="matrixitem0001",
        project_id=project.id,
        rater_id=rater.id,
        image_id=image.id,
        position=0,
    )
    db.add(item)
    return {"public_id": item.public_id, "item_id": item.public_id}


def _rules(app):
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method


def _url(rule, args, token_id):
    values = {}
    for name in rule.arguments:
        if name == "token_id":
            values[name] = token_id
        elif name in args:
            values[name] = args[name]
        else:
            pytest.fail(
                f"route {rule.rule} takes <{name}>: add a value for it to the matrix fixture"
            )
    url = rule.rule
    for name, value in values.items():
        url = re.sub(r"<(?:[^:<>]+(?:\([^)]*\))?:)?" + name + ">", str(value), url)
    return url


def test_every_route_is_public_or_guarded(app):
    for rule, _method in _rules(app):
        view = app.view_functions[rule.endpoint]
        if rule.endpoint in PUBLIC:
            continue
        assert getattr(view, "required_roles", None), (
            f"{rule.endpoint} ({rule.rule}) is neither public nor guarded by role_required/signed_in"
        )


def test_signed_out_requests_are_refused(app, client, world):
    _users, tokens, args = world
    for rule, method in _rules(app):
        if rule.endpoint in PUBLIC:
            continue
        url = _url(rule, args, tokens["lead"][0].id)
        resp = client.open(url, method=method)
        resp.close()
        if rule.rule.startswith("/api/"):
            assert resp.status_code in (400, 401), f"{method} {url}: {resp.status_code}"
            if (
                resp.status_code == 400
            ):  # a write without CSRF token is refused before anything else
                assert "CSRF" in resp.json["error"]["message"]
        elif method == "GET":
            assert resp.status_code == 302 and "/auth/login" in resp.headers["Location"], (
                f"{method} {url}"
            )
        else:
            assert resp.status_code in (302, 400), f"{method} {url}: {resp.status_code}"


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_403_where_the_role_does_not_fit(app, client, world, role):
    _users, tokens, args = world
    token, raw = tokens[role]
    checked = 0
    for rule, method in _rules(app):
        if rule.endpoint in PUBLIC:
            continue
        required = {r.value for r in app.view_functions[rule.endpoint].required_roles}
        url = _url(rule, args, token.id)
        resp = client.open(url, method=method, headers={"Authorization": f"Bearer {raw}"})
        resp.close()  # file responses hold an open file until closed
        if role in required:
            assert resp.status_code not in (401, 403), f"{role} {method} {url}: {resp.status_code}"
            assert resp.status_code < 500, f"{role} {method} {url}: {resp.status_code}"
        else:
            assert resp.status_code == 403, (
                f"{role} {method} {url}: expected 403, got {resp.status_code}"
            )
        checked += 1
    assert checked > 10
