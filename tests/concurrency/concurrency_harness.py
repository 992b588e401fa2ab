"""Shared by the concurrency tests: image rows without files, and the HTTP scenario (submitters,
rebalances, double submits, connection kills) with the checks that must hold when it ends."""

from __future__ import annotations

import secrets

from labeler.images.models import Image
from labeler.images.storage import content_key


def image_row(project_id: int) -> Image:
    sha = secrets.token_hex(32)
    return Image(
        project_id=project_id,
        sha256=sha,
        filename=f"{sha[:8]}.jpg",
        width=8,
        height=8,
        format="JPEG",
        byte_size=1,
        display_key=content_key("display", sha, "jpg"),
        thumb_key=content_key("thumbs", sha, "jpg"),
        original_key=content_key("originals", sha, "jpg"),
    )
