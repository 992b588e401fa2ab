"""JSON API v1: session (with CSRF) or bearer-token authentication, JSON errors, an OpenAPI document."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

from . import (  # noqa: F401  (routes register on import)
    allocation,
    labeling,
    openapi,
    projects,
    reports,
    training,
)
