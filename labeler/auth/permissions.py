"""Coarse role checks by decorator, object checks by predicates, one require() that aborts."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TypeVar

from flask import abort
from flask_login import current_user

from ..projects.models import MemberRole, Project
from .models import Role, User

F = TypeVar("F", bound=Callable)


def role_required(*roles: Role) -> Callable[[F], F]:
    """The signed-in user must hold one of the roles (401/redirect when signed out, 403 otherwise)."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                from flask import current_app

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


def can_view_project(user: User, project: Project) -> bool:
    """Admins see every project; leads see projects they lead; raters see projects they label."""
    if user.has_role(Role.admin):
        return True
    return user.id in project.member_ids(MemberRole.lead) or user.id in project.member_ids(
        MemberRole.rater
    )


def can_manage_project(user: User, project: Project) -> bool:
    """Leads of the project (and admins) import, read dashboards, export and train."""
    if user.has_role(Role.admin):
        return True
    return user.has_role(Role.lead) and user.id in project.member_ids(MemberRole.lead)


def can_allocate(user: User, project: Project) -> bool:
    """Admins create and change allocations; a project's lead may as well."""
    return user.has_role(Role.admin) or can_manage_project(user, project)


def authorized_project(
    project_id: int,
    allowed: Callable[[User, Project], bool] | None = None,
    message: str = "Only the project's leads and admins may do this.",
) -> Project:
    """The request's project: 404 if it does not exist, 403 unless `allowed(current_user, project)`."""
    from ..db import get_session
    from ..projects.services import get_project

    project = get_project(get_session(), project_id)
    require((allowed or can_manage_project)(current_user, project), message)
    return project
