"""Who may use a trained model."""

from __future__ import annotations

from ..auth.models import Role, User
from ..projects.access import can_manage_project
from ..projects.models import Project
from .models import TrainingRun


def can_use_model(user: User, run: TrainingRun | None, project: Project | None) -> bool:
    """Admins use any model; a project's leads use the models trained from that project."""
    if user.has_role(Role.admin):
        return True
    return run is not None and project is not None and can_manage_project(user, project)
