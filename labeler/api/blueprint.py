"""The API's blueprint, apart from the package so the resource modules import it without a cycle."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")
