"""JSON API v1: session (with CSRF) or bearer-token authentication, JSON errors, an OpenAPI document."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

from . import openapi, projects  # noqa: E402,F401  (routes register on import)
from . import labeling  # noqa: E402,F401  (labels, skips, ICD-10 search)
from . import allocation  # noqa: E402,F401  (allocation, rater queue, items)
from . import reports  # noqa: E402,F401  (agreement, exports, adjudications)
from . import training  # noqa: E402,F401  (models, training runs, predict)
