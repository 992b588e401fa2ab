"""HTTP for reports, shared by the pages and the API: the request's project and streamed exports."""

from __future__ import annotations

from flask import Response, request, stream_with_context

from ..db import get_session
from ..projects.access import authorized_project
from ..projects.models import Project
from ..projects.services import get_project
from ..validation import clean_flag
from .export import MEDIA_TYPES, check_export_args, export_chunks, export_disposition


def managed_project(project_id: int) -> Project:
    """The request's project, for its leads and admins only."""
    return authorized_project(
        project_id, message="Only the project's leads and admins see its reports."
    )


def export_response(project: Project) -> Response:
    """Stream an export as a download (kind, format, revisions and flagged from the query string)."""
    kind, fmt = request.args.get("kind", "fused"), request.args.get("format", "csv")
    check_export_args(kind, fmt)
    revisions = request.args.get("revisions") in {"1", "true", "yes"}
    flagged = request.args.get("flagged") in {"1", "true", "yes"}  # only images raters flagged
    assisted = clean_flag(request.args.get("assisted"), "'assisted'", field="assisted")
    disposition = export_disposition(project, kind, fmt, revisions=revisions)
    project_id = project.id

    def generate():
        # The request's session is closed once the view returns; the stream reads with its own.
        db = get_session()
        yield from export_chunks(
            db,
            get_project(db, project_id),
            kind,
            fmt,
            revisions=revisions,
            flagged_only=flagged,
            assisted=assisted,
        )

    resp = Response(stream_with_context(generate()), mimetype=MEDIA_TYPES[fmt])
    resp.headers["Content-Disposition"] = disposition
    resp.headers["Cache-Control"] = "no-store"
    return resp
