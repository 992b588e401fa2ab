"""The admin's users page: invite by e-mail, set roles, deactivate (CSRF forms, admins only)."""

from __future__ import annotations

from helpers import login
from sqlalchemy import select

from labeler.audit.models import AuditEvent
from labeler.auth.models import Role, User


def _by_email(db, email: str) -> User | None:
    db.expire_all()
    return db.scalar(select(User).where(User.email == email))


def test_admin_invites_a_user(db, make_user, login_as):
    client = login_as(make_user("boss@example.test", "admin"))

    resp = client.post(
        "/admin/users",
        data={
            "csrf_token": client.csrf,
            "email": " New.Rater@Example.test ",
            "name": "New Rater",
            "role": ["rater", "lead"],
        },
    )

    assert resp.status_code == 302 and resp.headers["Location"] == "/admin/users"
    invited = _by_email(db, "new.rater@example.test")
    assert invited is not None and invited.oid is None and invited.active
    assert invited.roles == {Role.rater, Role.lead}
    page = client.get("/admin/users").get_data(as_text=True)
    assert "new.rater@example.test" in page and "invited, not signed in yet" in page
    assert db.scalar(select(AuditEvent).where(AuditEvent.action == "user.add")) is not None


def test_invite_needs_a_role_and_a_valid_unique_email(db, make_user, login_as):
    client = login_as(make_user("boss@example.test", "admin"))
    no_role = client.post(
        "/admin/users", data={"csrf_token": client.csrf, "email": "x@example.test"}
    )
    assert no_role.status_code == 422 and "at least one role" in no_role.get_data(as_text=True)
    bad = client.post(
        "/admin/users", data={"csrf_token": client.csrf, "email": "not-an-email", "role": "rater"}
    )
    assert bad.status_code == 422
    dup = client.post(
        "/admin/users",
        data={"csrf_token": client.csrf, "email": "boss@example.test", "role": "rater"},
    )
    assert dup.status_code == 409
    assert _by_email(db, "x@example.test") is None


def test_admin_sets_roles_and_deactivates(db, make_user, login_as):
    admin = make_user("boss@example.test", "admin")
    rater = make_user("rater@example.test", "rater")
    client = login_as(admin)

    resp = client.post(
        f"/admin/users/{rater.id}/roles", data={"csrf_token": client.csrf, "role": ["lead"]}
    )
    assert resp.status_code == 302
    assert _by_email(db, "rater@example.test").roles == {Role.lead}

    resp = client.post(
        f"/admin/users/{rater.id}/active", data={"csrf_token": client.csrf, "active": "0"}
    )
    assert resp.status_code == 302
    assert not _by_email(db, "rater@example.test").active
    resp = client.post(
        f"/admin/users/{rater.id}/active", data={"csrf_token": client.csrf, "active": "1"}
    )
    assert _by_email(db, "rater@example.test").active


def test_deactivated_user_is_signed_out_at_their_next_request(app, db, make_user, login_as):
    admin = make_user("boss@example.test", "admin")
    rater = make_user("rater@example.test", "rater")
    rater_client = login_as(rater)
    assert rater_client.get("/").status_code == 200

    admin_client = app.test_client()
    login(admin_client, admin)
    admin_client.post(
        f"/admin/users/{rater.id}/active", data={"csrf_token": admin_client.csrf, "active": "0"}
    )

    resp = rater_client.get("/")
    assert resp.status_code == 302 and "/auth/login" in resp.headers["Location"]


def test_admin_cannot_lock_themselves_out(db, make_user, login_as):
    admin = make_user("boss@example.test", "admin")
    client = login_as(admin)
    resp = client.post(
        f"/admin/users/{admin.id}/active", data={"csrf_token": client.csrf, "active": "0"}
    )
    assert resp.status_code == 403
    resp = client.post(
        f"/admin/users/{admin.id}/roles", data={"csrf_token": client.csrf, "role": "rater"}
    )
    assert resp.status_code == 403
    me = _by_email(db, "boss@example.test")
    assert me.active and me.roles == {Role.admin}


def test_forms_need_the_csrf_token(db, make_user, login_as):
    admin = make_user("boss@example.test", "admin")
    rater = make_user("rater@example.test", "rater")
    client = login_as(admin)
    assert (
        client.post("/admin/users", data={"email": "x@example.test", "role": "rater"}).status_code
        == 400
    )
    assert client.post(f"/admin/users/{rater.id}/active", data={"active": "0"}).status_code == 400
    assert _by_email(db, "rater@example.test").active


def test_non_admins_get_403(make_user, login_as):
    client = login_as(make_user("lead@example.test", "lead", "rater"))
    assert client.get("/admin/users").status_code == 403
    assert "Users</a>" not in client.get("/").get_data(as_text=True)


def test_unknown_user(make_user, login_as):
    client = login_as(make_user("boss@example.test", "admin"))
    resp = client.post(
        "/admin/users/999999/active", data={"csrf_token": client.csrf, "active": "0"}
    )
    assert resp.status_code == 404
