"""Project members by e-mail: list, add (inviting unknown addresses), remove (raters through allocation).

Services take the session and an explicit actor, flush and never commit; the members page, the API and
the CLI call them. A rater added to an allocated project gets a queue, and a rater with a queue is taken
off through allocation's rules (``add_rater``/``remove_rater``: nothing labeled moves).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..allocation import services as allocation
from ..allocation.models import QueueItem
from ..auth.models import Role, User
from ..auth.services import add_user, find_user_by_email, normalize_email, set_roles
from ..errors import Conflict, NotFound, ValidationError
from ..labeling.models import Label
from .models import MemberRole, Project, ProjectMember
from .services import add_member, remove_member

ROLE_NAMES = {MemberRole.lead: "lead", MemberRole.rater: "rater"}


def parse_member_role(value: Any) -> MemberRole:
    try:
        return MemberRole(str(value or "").strip().lower())
    except ValueError:
        raise ValidationError(
            f"the role in a project is 'lead' or 'rater' (got {value!r})", field="role"
        ) from None


@dataclass
class Member:
    """One person in a project, with their roles there."""

    user: User
    roles: list[MemberRole] = field(default_factory=list)
    queue_items: int = 0
    labels: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user.id,
            "email": self.user.email,
            "name": self.user.name,
            "roles": [r.value for r in self.roles],
            "signed_in_before": self.user.oid is not None,
            "active": self.user.active,
            "queue_items": self.queue_items,
            "labels": self.labels,
        }


def list_members(session: Session, project: Project) -> list[Member]:
    """The project's members by e-mail, each with their roles, queue size and label count."""
    rows = session.execute(
        select(ProjectMember, User)
        .join(User, User.id == ProjectMember.user_id)
        .where(ProjectMember.project_id == project.id)
        .order_by(User.email, ProjectMember.role)
    ).all()
    queues = dict(
        session.execute(
            select(QueueItem.rater_id, func.count(QueueItem.id))
            .where(QueueItem.project_id == project.id)
            .group_by(QueueItem.rater_id)
        ).all()
    )
    labels = dict(
        session.execute(
            select(Label.rater_id, func.count(Label.id))
            .where(Label.project_id == project.id)
            .group_by(Label.rater_id)
        ).all()
    )
    members: dict[int, Member] = {}
    for member, user in rows:
        entry = members.setdefault(
            user.id, Member(user, [], queues.get(user.id, 0), labels.get(user.id, 0))
        )
        entry.roles.append(member.role)
    for entry in members.values():
        entry.roles.sort(key=lambda r: r.value)
    return list(members.values())


def member_raters(session: Session, project: Project) -> list[User]:
    """The project's raters (members with the rater role, active accounts), by e-mail: whom the
    allocation page offers."""
    return list(
        session.scalars(
            select(User)
            .join(ProjectMember, ProjectMember.user_id == User.id)
            .where(
                ProjectMember.project_id == project.id,
                ProjectMember.role == MemberRole.rater,
                User.active.is_(True),
            )
            .order_by(User.email)
        )
    )


def _has_queue(session: Session, project: Project, user: User) -> bool:
    return (
        session.scalar(
            select(QueueItem.id)
            .where(QueueItem.project_id == project.id, QueueItem.rater_id == user.id)
            .limit(1)
        )
        is not None
    )


def add_project_member(
    session: Session,
    actor: User | None,
    project: Project,
    email: str,
    role: MemberRole | str,
    *,
    name: str = "",
) -> dict[str, Any]:
    """Make the person with this e-mail a lead or rater of the project (audited).

    An unknown address is invited with the matching account role (as on the admin Users page); a
    known account without that role gets it. A rater added to an allocated project gets a queue by
    allocation's add-rater rules (the golden set and a fair share of unlabeled work).
    """
    role = role if isinstance(role, MemberRole) else parse_member_role(role)
    email = normalize_email(email)
    try:
        with session.begin_nested():
            return _add(session, actor, project, email, role, name)
    except IntegrityError:  # the same person added (or invited) by someone else at this moment
        raise Conflict(
            f"{email} was added at this very moment by someone else; reload the members list",
            code="concurrent_change",
        ) from None


def _add(
    session: Session, actor: User | None, project: Project, email: str, role: MemberRole, name: str
) -> dict[str, Any]:
    account_role = Role.lead if role is MemberRole.lead else Role.rater
    user = find_user_by_email(session, email)
    invited = user is None
    if user is None:
        user = add_user(session, actor, email, name, {account_role})
    elif not user.active:
        raise ValidationError(
            f"the account {email} is deactivated; an admin can reactivate it on the Users page",
            field="email",
        )
    if user.id in project.member_ids(role):
        raise Conflict(f"{email} is already a {role.value} of this project", code="already_member")
    granted = not invited and not user.has_role(account_role)
    if granted:  # ends the person's open sessions (auth's rule): they sign in again
        set_roles(session, actor, user, user.roles | {account_role})
    queue = None
    if role is MemberRole.rater and allocation.current_allocation(session, project) is not None:
        queue = allocation.add_rater(session, actor, project, user)
    else:
        add_member(session, actor, project, user, role)
    return {
        "email": email,
        "role": role.value,
        "invited": invited,
        "granted_role": granted,
        "queue": queue,
    }


def removal_preview(session: Session, project: Project, user: User) -> dict[str, int]:
    """What removing a rater would do: labeled items stay with them, unlabeled items move."""
    items = session.scalar(
        select(func.count(QueueItem.id)).where(
            QueueItem.project_id == project.id, QueueItem.rater_id == user.id
        )
    )
    labeled = session.scalar(
        select(func.count(Label.id)).where(
            Label.project_id == project.id, Label.rater_id == user.id
        )
    )
    moving = max(int(items or 0) - int(labeled or 0), 0)
    if moving and allocation.current_allocation(session, project) is not None:
        # allocation's own plan: golden items (every rater holds those images) and labeled ones stay
        moving = allocation.preview_rater_change(session, project, user, remove=True)["moves"]
    return {"labels_kept": int(labeled or 0), "items_moving": moving}


def member_user(session: Session, project: Project, email: str, role: MemberRole) -> User:
    """The member with this e-mail and role, or NotFound."""
    email = normalize_email(email)
    user = find_user_by_email(session, email)
    if user is None or user.id not in project.member_ids(role):
        raise NotFound(f"{email} is not a {role.value} of this project")
    return user


def remove_project_member(
    session: Session,
    actor: User | None,
    project: Project,
    email: str,
    role: MemberRole | str,
    *,
    confirm: bool = False,
) -> dict[str, Any]:
    """Take a lead or rater role in the project away (audited); labels always stay.

    Removing a rater needs ``confirm``: one with a queue goes through allocation's remove-rater rules
    (their unlabeled work moves to the other raters, nothing labeled moves). A lead cannot remove
    themselves while they are the project's only lead.
    """
    role = role if isinstance(role, MemberRole) else parse_member_role(role)
    user = member_user(session, project, email, role)
    if role is MemberRole.lead:
        if (
            actor is not None
            and actor.id == user.id
            and not actor.has_role(Role.admin)
            and project.member_ids(MemberRole.lead) == {user.id}
        ):
            raise Conflict(
                "you are the project's only lead: add another lead first, or ask an admin",
                code="last_lead",
            )
        remove_member(session, actor, project, user, role)
        return {"email": user.email, "role": role.value, "queue": None}
    if not confirm:
        preview = removal_preview(session, project, user)
        raise ValidationError(
            f"removing {user.email} as a rater keeps their {preview['labels_kept']} labels and "
            f"moves their {preview['items_moving']} unlabeled items to the other raters: "
            "confirm to go ahead",
            code="confirm_needed",
            field="confirm",
            **preview,
        )
    queue = None
    if allocation.current_allocation(session, project) is not None and _has_queue(
        session, project, user
    ):
        queue = allocation.remove_rater(session, actor, project, user)
    else:
        remove_member(session, actor, project, user, role)
    return {"email": user.email, "role": role.value, "queue": queue}
