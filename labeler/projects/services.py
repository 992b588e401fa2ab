"""Creating projects, listing what a user may see, and project membership."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..audit.services import record_event
from ..auth.models import Role, User
from ..errors import Conflict, Forbidden, NotFound, ValidationError
from .models import MemberRole, Project, ProjectMember, Protocol, default_settings


def parse_protocol(value: str | None) -> Protocol:
    try:
        return Protocol((value or "").strip().lower())
    except ValueError:
        raise ValidationError("protocol must be 'quality' or 'severity'") from None


def create_project(
    session: Session, actor: User | None, name: str, protocol: Protocol | str
) -> Project:
    """Create a project; its creator (a lead) becomes one of its leads."""
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise ValidationError("a project needs a name of 1 to 200 characters")
    if actor is not None and not actor.has_role(Role.lead, Role.admin):
        raise Forbidden("only leads and admins create projects")
    protocol = protocol if isinstance(protocol, Protocol) else parse_protocol(protocol)
    if session.scalar(select(Project.id).where(func.lower(Project.name) == name.lower())):
        raise Conflict(f"a project named {name!r} already exists")
    project = Project(
        name=name,
        protocol=protocol,
        settings=default_settings(protocol),
        created_by_id=actor.id if actor else None,
    )
    session.add(project)
    session.flush()
    if actor is not None and actor.has_role(Role.lead):
        add_member(session, actor, project, actor, MemberRole.lead)
    record_event(
        session,
        actor,
        "project.create",
        "project",
        project.id,
        project_id=project.id,
        name=name,
        protocol=protocol.value,
    )
    return project


def add_member(
    session: Session, actor: User | None, project: Project, user: User, role: MemberRole
) -> None:
    """Make a user a lead or rater of a project (idempotent, audited)."""
    if user.id in project.member_ids(role):
        return
    if role is MemberRole.lead and not user.has_role(Role.lead, Role.admin):
        raise ValidationError(f"{user.email} does not hold the lead role")
    if role is MemberRole.rater and not user.has_role(Role.rater):
        raise ValidationError(f"{user.email} does not hold the rater role")
    project.members.append(ProjectMember(user_id=user.id, role=role))
    session.flush()
    record_event(
        session,
        actor,
        "project.member_add",
        "project",
        project.id,
        project_id=project.id,
        user_id=user.id,
        role=role.value,
    )


def remove_member(
    session: Session, actor: User | None, project: Project, user: User, role: MemberRole
) -> None:
    """Take a user's lead or rater role in a project away (idempotent, audited); their labels stay."""
    member = next((m for m in project.members if m.user_id == user.id and m.role is role), None)
    if member is None:
        return
    project.members.remove(member)
    session.flush()
    record_event(
        session,
        actor,
        "project.member_remove",
        "project",
        project.id,
        project_id=project.id,
        user_id=user.id,
        role=role.value,
    )


def visible_projects(session: Session, user: User) -> list[Project]:
    """Projects the user may open: all for admins, otherwise those they lead or label."""
    stmt = select(Project).order_by(Project.name)
    if not user.has_role(Role.admin):
        stmt = stmt.where(
            Project.id.in_(select(ProjectMember.project_id).where(ProjectMember.user_id == user.id))
        )
    return list(session.scalars(stmt))


def get_project(session: Session, project_id: int) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"no project with id {project_id}")
    return project


def find_project(session: Session, ref: str) -> Project:
    """A project by id or by exact name (CLI)."""
    if ref.isdigit():
        return get_project(session, int(ref))
    project = session.scalar(select(Project).where(Project.name == ref))
    if project is None:
        raise NotFound(f"no project named {ref!r}")
    return project
