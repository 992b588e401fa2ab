"""All models, imported in one place for Alembic and the tests."""

from .allocation.models import Allocation, GoldenImage, ItemStatus, QueueItem
from .audit.models import AuditEvent
from .auth.models import ApiToken, Role, User, UserRole
from .db import Base
from .images.models import Image, ImportBatch
from .labeling.models import Adjudication, Label, LabelRevision
from .projects.models import MemberRole, Project, ProjectMember, Protocol
from .training.models import TrainingRun

__all__ = [
    "Adjudication",
    "Allocation",
    "ApiToken",
    "AuditEvent",
    "Base",
    "GoldenImage",
    "Image",
    "ImportBatch",
    "ItemStatus",
    "Label",
    "LabelRevision",
    "MemberRole",
    "Project",
    "ProjectMember",
    "Protocol",
    "QueueItem",
    "Role",
    "TrainingRun",
    "User",
    "UserRole",
]
