"""Projects, their protocol settings and members."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Enum, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .. import protocols
from ..auth.models import User
from ..db import Base, utcnow
from .settings import DEFAULT_SEVERITY_SCALE, default_settings

__all__ = [
    "DEFAULT_SEVERITY_SCALE",
    "MemberRole",
    "Project",
    "ProjectMember",
    "Protocol",
    "default_settings",
]


# one member per registered protocol (labeler/protocols/): quality, severity, skin_type. Stored as
# text (a non-native enum of length 16, no CHECK constraint), so a new protocol needs no migration.
Protocol = enum.Enum(  # type: ignore[misc]
    "Protocol", [(name, name) for name in protocols.names()], type=str, module=__name__
)


class MemberRole(str, enum.Enum):
    lead = "lead"
    rater = "rater"


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    protocol: Mapped[Protocol] = mapped_column(
        Enum(Protocol, native_enum=False, length=16, validate_strings=True)
    )
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # the events any active webhook endpoint of the project listens to (kept by labeler/webhooks/
    # services.py): labeler.events.emit reads it from the loaded project, so an event nobody
    # listens to costs no statement
    webhook_events: Mapped[list[Any] | None] = mapped_column()

    members: Mapped[list[ProjectMember]] = relationship(
        back_populates="project", cascade="all, delete-orphan"
    )

    def member_ids(self, role: MemberRole) -> set[int]:
        return {m.user_id for m in self.members if m.role is role}


class ProjectMember(Base):
    __tablename__ = "project_members"
    __table_args__ = (UniqueConstraint("project_id", "user_id", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[MemberRole] = mapped_column(
        Enum(MemberRole, native_enum=False, length=16, validate_strings=True)
    )

    project: Mapped[Project] = relationship(back_populates="members")
    user: Mapped[User] = relationship()
