"""Coarse role checks by decorator, object checks by predicates, one require() that aborts."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TypeVar

from flask import abort, current_app
from flask_login import current_user

from .models import Role

F = TypeVar("F", bound=Callable)


def role_required(*roles: Role) -> Callable[[F], F]:
    """The signed-in user must hold one of the roles (401/redirect when signed out, 403 otherwise)."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()
            if not current_user.has_role(*roles):
                abort(403, "Your account does not have the role needed for this page.")
            return view(*args, **kwargs)

        wrapped.required_roles = roles  # read by the route-matrix test
        return wrapped  # type: ignore[return-value]

    return decorator


signed_in = role_required(Role.rater, Role.lead, Role.admin)
"""Any signed-in user holding at least one role."""


def require(allowed: bool, message: str = "You are not allowed to do this.") -> None:
    """Abort with 403 unless the predicate held."""
    if not allowed:
        abort(403, message)
