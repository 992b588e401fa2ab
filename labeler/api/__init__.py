"""JSON API v1: session (with CSRF) or bearer-token authentication, JSON errors, an OpenAPI document."""

from . import (  # noqa: F401  (routes register on import)
    allocation,
    assist,
    cases,
    guidelines,
    labeling,
    openapi,
    projects,
    reports,
    training,
    webhooks,
)
from .blueprint import bp

__all__ = ["bp"]
