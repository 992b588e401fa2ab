"""All models, imported in one place for Alembic and the tests."""

from .allocation.models import Allocation, GoldenImage, ItemStatus, QueueItem
from .assist.models import ReaderStudy, StudyReading, Suggestion, SuggestionJob
from .audit.models import AuditEvent
from .auth.models import ApiToken, Role, User, UserRole
from .db import Base
from .guidelines.models import Guideline, ReferenceImage
from .images.models import Image, ImportBatch, ImportJob
from .labeling.models import Adjudication, ItemFlag, Label, LabelRevision
from .projects.models import MemberRole, Project, ProjectMember, Protocol
from .training.models import TrainingRun
from .webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent

__all__ = [
    "Adjudication",
    "Allocation",
    "ApiToken",
    "AuditEvent",
    "Base",
    "GoldenImage",
    "Guideline",
    "Image",
    "ImportBatch",
    "ImportJob",
    "ItemFlag",
    "ItemStatus",
    "Label",
    "LabelRevision",
    "MemberRole",
    "Project",
    "ProjectMember",
    "Protocol",
    "QueueItem",
    "ReaderStudy",
    "ReferenceImage",
    "Role",
    "StudyReading",
    "Suggestion",
    "SuggestionJob",
    "TrainingRun",
    "User",
    "UserRole",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
]
