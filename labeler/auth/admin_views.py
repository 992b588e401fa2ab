"""Administration of accounts: invite by e-mail, set roles, deactivate (admins only)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from ..db import get_session
from ..errors import NotFound, ValidationError, on_form_error
from .login import keep_session
from .models import Role, User
from .permissions import role_required
from .services import add_user, parse_roles, set_active, set_roles

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _page(error: str | None = None, status: int = 200):
    users = get_session().scalars(select(User).order_by(User.email)).all()
    return render_template(
        "admin/user_list.html", users=users, roles=list(Role), error=error
    ), status


def _user(user_id: int) -> User:
    user = get_session().get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    return user


def _keep_own_session(user: User) -> None:
    """The change ended the user's sessions; an admin editing their own account stays signed in here."""
    if user.id == current_user.id:
        keep_session(user)


def _roles_from_form() -> set[Role]:
    return parse_roles(request.form.getlist("role"))


@bp.get("/users")
@role_required(Role.admin)
def user_list():
    return _page()


@bp.post("/users")
@role_required(Role.admin)
def user_invite():
    """Invite an account by e-mail/UPN; it is bound to the Microsoft account at first sign-in."""
    db = get_session()
    on_form_error(lambda exc: _page(exc.message, exc.status))
    roles = _roles_from_form()
    if not roles:
        raise ValidationError("Choose at least one role.")
    user = add_user(
        db, current_user, request.form.get("email", ""), request.form.get("name", ""), roles
    )
    flash(f"Invited {user.email}.")
    return redirect(url_for("admin.user_list"))


@bp.post("/users/<int:user_id>/roles")
@role_required(Role.admin)
def user_roles(user_id: int):
    db = get_session()
    on_form_error(lambda exc: _page(exc.message, exc.status))
    user = _user(user_id)
    set_roles(db, current_user, user, _roles_from_form())
    _keep_own_session(user)
    flash(f"Roles of {user.email} saved.")
    return redirect(url_for("admin.user_list"))


@bp.post("/users/<int:user_id>/active")
@role_required(Role.admin)
def user_active(user_id: int):
    """Deactivate (refused at once, also in open sessions and for API tokens) or reactivate."""
    db = get_session()
    wanted = request.form.get("active")
    on_form_error(lambda exc: _page(exc.message, exc.status))
    if wanted not in {"0", "1"}:
        raise ValidationError("Say whether the account is to be active (1) or deactivated (0).")
    user = _user(user_id)
    set_active(db, current_user, user, wanted == "1")
    _keep_own_session(user)
    flash(f"{user.email} {'reactivated' if user.active else 'deactivated'}.")
    return redirect(url_for("admin.user_list"))
