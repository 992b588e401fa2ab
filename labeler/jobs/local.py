"""A local worker process for one job, when no Celery broker is configured (``make run``):

    python -m labeler.jobs.local import JOB_ID
    python -m labeler.jobs.local tiles PROJECT_ID IMAGE_ID [IMAGE_ID ...]

It runs the same task bodies a Celery worker runs (labeler/jobs/worker.py), with the app built from
the LABELER_* environment its starter passed on (labeler/jobs/spawn.py); a follow-up job (the tiles
after an import) gets a local worker process of its own.
"""

from __future__ import annotations

import logging
import sys

from .. import create_app
from ..db import database
from ..images.import_jobs import execute_import_job
from ..images.tiles import build_pyramids_job

log = logging.getLogger(__name__)
USAGE = "usage: python -m labeler.jobs.local (import JOB_ID | tiles PROJECT_ID IMAGE_ID...)"


def main(argv: list[str] | None = None) -> int:
    """Entry point of a local worker process."""
    args = sys.argv[1:] if argv is None else argv
    if (
        len(args) < 2
        or not all(a.isdigit() for a in args[1:])
        or args[0] not in ("import", "tiles")
    ):
        print(USAGE, file=sys.stderr)
        return 2
    app = create_app()
    with app.app_context():
        # on SQLite the import's transactions take the write lock up front (read-then-write)
        factory = database(app).write_session_factory
        storage = app.extensions["labeler_storage"]
        if args[0] == "import":
            job = execute_import_job(factory, app.config, storage, int(args[1]))
            log.info("import job %s %s", job.id, job.status.value)
            return 0 if job.status.value == "succeeded" else 1
        result = build_pyramids_job(factory, app.config, storage, [int(a) for a in args[2:]])
        log.info("tiles of project %s: %s", args[1], result)
        return 1 if result.get("failed") else 0


if __name__ == "__main__":
    sys.exit(main())
