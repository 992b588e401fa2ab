"""Who may see and manage a project: predicates on the project, and the request's authorized project."""

from __future__ import annotations

from collections.abc import Callable

from flask_login import current_user

from ..auth.models import Role, User
from ..auth.permissions import require
from ..db import get_session
from .models import MemberRole, Project
from .services import get_project


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
    project = get_project(get_session(), project_id)
    require((allowed or can_manage_project)(current_user, project), message)
    return project
