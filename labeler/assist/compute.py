"""Computing suggestions: a background job predicts every image of a project with one model version
and stores each answer (``suggestions``, keyed by image and model). Never in a request.

``start_job`` queues a job (the page, the API and the CLI); after the caller commits,
``launch_job`` sends it to Celery (LABELER_CELERY_BROKER_URL) or starts
``python -m labeler.assist.compute JOB_ID`` as a detached process; ``run_job`` is the body every
path runs (``labeler assist suggest --wait`` calls it in the foreground). A job computes only the
images that have no suggestion of that model yet, so running it again after an import completes it
(with pre-labeling on, every import queues one for its new images: jobs.queue_for_new_images).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session, sessionmaker

from .. import create_app, ml
from ..db import database, utcnow
from ..errors import LabelerError, NotFound
from ..images.models import Image
from ..images.services import ImportHook, register_import_hook
from ..jobs.queue import broker_url, send_suggestions
from ..jobs.spawn import spawn
from ..projects.models import Project
from ..projects.settings import read_settings
from ..training.model_store import model_folder
from ..training.paths import run_dir
from ..training.prescreen import loaded_model
from .jobs import start_job
from .models import JobStatus, Suggestion, SuggestionJob
from .suggestions import answer_from_prediction

log = logging.getLogger(__name__)
COMMIT_EVERY = 20  # images per transaction: progress shows, and a crash loses little


def launch_job(config: Mapping[str, Any], job_id: int) -> None:
    """After the job is committed: Celery when a broker is configured, else a local process."""
    if broker_url(config):
        send_suggestions(config, job_id)
        return
    if not config.get("ML_SPAWN_WORKER", True):
        return
    log_path = run_dir(config, f"suggestions-{job_id}") / "worker.log"
    spawn("labeler.assist.compute", [job_id], config, log_path)


def _set(factory: sessionmaker, job_id: int, **values: Any) -> None:
    with factory() as s:
        s.execute(update(SuggestionJob).where(SuggestionJob.id == job_id).values(**values))
        s.commit()


def run_job(
    factory: sessionmaker, config: Mapping[str, Any], storage: Any, job_id: int
) -> SuggestionJob:
    """Claim a queued job (once), predict every image still without this model's suggestion, store
    each answer (or why there is none), and record the outcome. Commits in its own sessions."""
    with factory() as s:
        claimed = s.execute(
            update(SuggestionJob)
            .where(SuggestionJob.id == job_id, SuggestionJob.status == JobStatus.queued)
            .values(status=JobStatus.running)
        ).rowcount
        s.commit()
        job = s.get(SuggestionJob, job_id)
        if job is None:
            raise NotFound(f"no suggestion job {job_id}")
        if not claimed:
            return job
        project_id, model_id = job.project_id, job.model_id
    try:
        model = loaded_model(model_folder(config, model_id, storage))
        with factory() as s:
            have = select(Suggestion.image_id).where(Suggestion.model_id == model_id)
            todo = list(
                s.execute(
                    select(Image.id, Image.display_key)
                    .where(Image.project_id == project_id, Image.id.not_in(have))
                    .order_by(Image.id)
                )
            )
        _set(factory, job_id, total=len(todo))
        for start in range(0, len(todo), COMMIT_EVERY):
            with factory() as s:
                for image_id, key in todo[start : start + COMMIT_EVERY]:
                    s.add(_predict(model, storage, image_id, key, project_id))
                s.execute(
                    update(SuggestionJob)
                    .where(SuggestionJob.id == job_id)
                    .values(done=min(start + COMMIT_EVERY, len(todo)))
                )
                s.commit()
        _set(factory, job_id, status=JobStatus.succeeded, finished_at=utcnow())
    except (LabelerError, OSError) as exc:
        reason = exc.message if isinstance(exc, LabelerError) else str(exc)
        log.warning("suggestion job %s failed: %s", job_id, reason)
        _set(factory, job_id, status=JobStatus.failed, error=reason, finished_at=utcnow())
    with factory() as s:
        return s.get(SuggestionJob, job_id)


def _predict(model: Any, storage: Any, image_id: int, key: str, project_id: int) -> Suggestion:
    row = Suggestion(image_id=image_id, model_id=model.id, project_id=project_id)
    try:
        with storage.open(key) as fh:
            row.answer = answer_from_prediction(ml.predict(model, fh.read(), cams=False))
    except FileNotFoundError:
        row.error = "the image file is missing from storage"
    except LabelerError as exc:
        row.error = exc.message
    return row


def main(argv: list[str] | None = None) -> int:
    """Entry point of the local worker process: ``python -m labeler.assist.compute JOB_ID``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m labeler.assist.compute JOB_ID", file=sys.stderr)
        return 2
    app = create_app()
    with app.app_context():
        job = run_job(
            database(app).session_factory,
            app.config,
            app.extensions["labeler_storage"],
            int(args[0]),
        )
    log.info("suggestion job %s %s", job.id, job.status.value)
    return 0 if job.status is JobStatus.succeeded else 1


def queue_for_new_images(
    session: Session,
    config: Mapping[str, Any],
    project: Project,
    image_ids: list[int],
    _storage: Any,
) -> dict[str, Any]:
    """Import hook: with pre-labeling on, a job computes the new images' suggestions with the
    project's suggestion model, started once the import has committed (a job computes only the
    images without a suggestion of that model). Until it finishes the new images show "no
    suggestion", golden and fold items alike. A model that can no longer be used skips, in words."""
    model_id = read_settings(project.settings).suggestions_model_id
    if not model_id or not image_ids:
        return {"status": "off"}
    try:
        job = start_job(session, config, None, project, model_id)
    except LabelerError as exc:  # the import stands; the lead can start a job on the page
        return {"status": "skipped", "reason": exc.message}
    job_id = job.id

    def launch(_session: Session) -> None:
        try:
            launch_job(config, job_id)
        except Exception:  # the job stays queued: the page or `labeler assist suggest` runs it
            log.exception("suggestion job %s of project %s not started", job_id, project.id)

    event.listen(session, "after_commit", launch, once=True)
    return {"status": "queued", "job": job_id, "images": len(image_ids)}


def describe_queued(result: dict[str, Any]) -> str | None:
    """The suggestion job's words in an import's summary line."""
    if result.get("status") == "queued":
        return f"the model's suggestions for {result['images']} new images are being computed"
    if result.get("status") == "skipped":
        return f"suggestions not computed: {result['reason']}"
    return None


def init_app(_app: Any) -> None:
    """Compute the suggestions of every import's images while pre-labeling is on."""
    register_import_hook(ImportHook("suggestions", queue_for_new_images, describe_queued))


if __name__ == "__main__":
    sys.exit(main())
