"""Image import: one service for the CLI, the upload page and the API.

Crash safety (labeler.images.journal): every key an import is about to write is first listed in a
journal file; the files are written (atomically, content-addressed), then the rows are committed by
the caller's checkpoint, then the journal is removed. A journal left behind by a dead import is
replayed by `recover_interrupted_imports` (run before every import and by `labeler images
recover`): it deletes the listed files that no committed row and no live import refers to. So no
row exists without its files, and no file survives without its row.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from ..audit.services import record_event
from ..auth.models import User
from ..errors import LabelerError, ValidationError
from ..metrics.breakdowns import parse_fitzpatrick
from ..projects.models import Project
from . import tiles
from .journal import Journal, recover_interrupted_imports
from .models import Image, ImportBatch
from .processing import DEFAULT_LIMITS, ImageLimits, ImageRejected, process_image
from .sources import iter_uploads
from .storage import LocalStorage, Storage, content_key

_KNOWN_IMAGE = select(Image.id).where(
    Image.project_id == bindparam("project"), Image.sha256 == bindparam("sha")
)
log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 25
MANIFEST_COLUMNS = {"filename", "case_id", "body_site", "fitzpatrick"}


@dataclass
class ImportSummary:
    batch_id: int | None = None
    imported: list[dict] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    after_import: dict[str, dict] = field(
        default_factory=dict
    )  # each import hook's result, by name
    notes: list[str] = field(default_factory=list)  # what the hooks want said in the summary line

    def as_dict(self) -> dict:
        return {
            "batch_id": self.batch_id,
            "imported": self.imported,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            **self.after_import,
        }

    def line(self) -> str:
        line = f"{len(self.imported)} imported, {len(self.duplicates)} duplicates, {len(self.rejected)} rejected"
        return "; ".join([line, *self.notes])


@dataclass(frozen=True)
class ImportHook:
    """A step run right after every import of a project's images (registered by other features).

    ``run(session, config, project, image_ids, storage)`` looks at the new images, may flush, never
    commits, and returns a JSON-able result reported in the summary under ``name``; ``describe(result)``
    says it in a few words for the summary line (or None). A hook must not fail the import.
    """

    name: str
    run: Callable[[Session, Mapping[str, Any], Project, list[int], Storage], dict[str, Any]]
    describe: Callable[[dict[str, Any]], str | None] = lambda _result: None


IMPORT_HOOKS: dict[str, ImportHook] = {
    # deep-zoom tiles of every new image, built by a job after the import is committed, the same
    # way for every image, so that no image's first zoom is slower than another's
    "tiles": ImportHook("tiles", tiles.queue_pyramids, tiles.describe),
}


def register_import_hook(hook: ImportHook) -> None:
    """Run `hook` after every import (called once at app setup; registering again replaces it)."""
    IMPORT_HOOKS[hook.name] = hook


def run_import_hooks(
    session: Session,
    config: Mapping[str, Any],
    project: Project,
    summary: ImportSummary,
    storage: Storage,
) -> None:
    """The step right after an import: each registered hook sees the images it added."""
    ids = [row["id"] for row in summary.imported if row.get("id")]
    for hook in IMPORT_HOOKS.values():
        result = hook.run(session, config, project, ids, storage)
        summary.after_import[hook.name] = result
        note = hook.describe(result)
        if note:
            summary.notes.append(note)


class ImportInterrupted(LabelerError):
    """An import failed after some of its checkpoints were committed: says exactly what was saved."""

    status, code = 500, "import_interrupted"

    def __init__(
        self, batch_id: int, saved: list[dict], stopped_at: str | None, cause: Exception
    ) -> None:
        if isinstance(cause, LabelerError):
            self.status, self.code, why = cause.status, cause.code, cause.message
        elif isinstance(cause, OSError):
            why = "the server could not store the files"
        else:
            why = "of an error on our side"
        where = f"at '{stopped_at}'" if stopped_at else "while saving its last images"
        last = saved[-1]["filename"]
        count = "1 image was" if len(saved) == 1 else f"{len(saved)} images were"
        super().__init__(
            f"The import stopped {where} because {why}. {count} saved, up to and including "
            f"'{last}'; nothing after '{last}' was saved. Upload the files again: the saved "
            "images will be skipped as already in the project.",
            saved={
                "batch_id": batch_id,
                "images": len(saved),
                "filenames": [row["filename"] for row in saved],
            },
        )


def read_manifest(data: bytes | str) -> dict[str, dict]:
    """Parse a metadata CSV (filename, case_id, body_site, fitzpatrick, any other column -> meta)."""
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "filename" not in reader.fieldnames:
        raise ValidationError("the manifest must be a CSV with a 'filename' column")
    rows: dict[str, dict] = {}
    for lineno, row in enumerate(reader, start=2):
        name = (row.get("filename") or "").strip()
        if not name:
            raise ValidationError(f"manifest line {lineno}: empty filename")
        fitz = (row.get("fitzpatrick") or "").strip()
        if fitz and parse_fitzpatrick(fitz) is None:
            raise ValidationError(
                f"manifest line {lineno}: Fitzpatrick type must be I-VI or 1-6 "
                f"(or written like 'type III'), not {fitz!r}"
            )
        rows[name] = {
            "case_id": (row.get("case_id") or "").strip() or None,
            "body_site": (row.get("body_site") or "").strip() or None,
            "fitzpatrick": parse_fitzpatrick(fitz),
            "meta": {
                k: v
                for k, v in row.items()
                if k and k not in MANIFEST_COLUMNS and v not in (None, "")
            },
        }
    return rows


def _manifest_row(manifest: dict[str, dict], name: str) -> dict:
    return manifest.get(name) or manifest.get(os.path.basename(name)) or {}


def import_images(
    session: Session,
    actor: User | None,
    project: Project,
    sources: Iterable,
    *,
    storage: Storage,
    source_label: str,
    manifest: dict[str, dict] | None = None,
    limits: ImageLimits = DEFAULT_LIMITS,
    checkpoint: Callable[[], None],
    progress: Callable[[str], None] | None = None,
    batch: ImportBatch | None = None,
    journal: Any = None,
    checkpoint_every_s: float | None = None,
) -> ImportSummary:
    """Import files (objects with .name and .read()) into a project: dedupe, derive, store, record.

    `checkpoint` is the caller's commit. An import is the one long-running write: it is called every
    CHECKPOINT_EVERY images and at the end, so a long import keeps what it finished and the journal
    is dropped only after the last commit. The service itself never commits. An import job
    (labeler/images/import_jobs.py) passes its own ``batch``, a ``journal`` kept in the blob store
    (a store other than a local folder has no journal of its own) and ``checkpoint_every_s``: it
    checkpoints at least that often too, since its checkpoints are its worker's heartbeat.
    """
    manifest = manifest or {}
    recover_interrupted_imports(session, storage)
    known = _KnownHashes(session, project.id)
    last_checkpoint_commit = checkpoint  # the final one: no image follows it
    checkpoint = known.loaded_before(checkpoint)
    if batch is None:
        batch = ImportBatch(
            project_id=project.id,
            created_by_id=actor.id if actor else None,
            source=source_label[:500],
        )
        session.add(batch)
        session.flush()
    summary = ImportSummary(batch_id=batch.id)
    if journal is None and isinstance(storage, LocalStorage):
        journal = Journal(storage.root)
    last_checkpoint = time.monotonic()
    pending = saved = 0  # saved: images committed by the caller's checkpoints
    rows: list[dict[str, Any]] = []  # the images since the last checkpoint, inserted at the next
    ok = False
    name = None
    try:
        for src in sources:
            name = src.name
            result = None
            try:
                data = src.read()
                # the same bytes as an image of the project: a duplicate, recognised before decoding
                # (those bytes passed every check when they were imported)
                sha256 = hashlib.sha256(data).hexdigest() if data else None
                if sha256 is not None and known.has(sha256):
                    summary.duplicates.append({"filename": name, "sha256": sha256})
                else:
                    result = process_image(data, name, limits=limits)
            except ImageRejected as exc:
                summary.rejected.append({"filename": name, "error": exc.reason})
            if result is None:  # a duplicate or a refused file: nothing to store
                _tick(progress, name)
                if _due(checkpoint_every_s, last_checkpoint):
                    _flush_batch(session, batch, summary, rows, checkpoint, storage)
                    saved, pending = len(summary.imported), 0
                    last_checkpoint = time.monotonic()
                continue
            keys = _store(storage, journal, data, result)
            meta = _manifest_row(manifest, name)
            rows.append(
                {
                    "project_id": project.id,
                    "import_batch_id": batch.id,
                    "sha256": result.sha256,
                    "filename": name[:500],
                    "width": result.width,
                    "height": result.height,
                    "format": result.format,
                    "byte_size": len(data),
                    "original_key": keys[0],
                    "display_key": keys[1],
                    "thumb_key": keys[2],
                    "case_id": meta.get("case_id"),
                    "body_site": meta.get("body_site"),
                    "fitzpatrick": meta.get("fitzpatrick"),
                    "meta": meta.get("meta") or {},
                }
            )
            known.add(result.sha256)
            summary.imported.append({"filename": name, "sha256": result.sha256})
            pending += 1
            _tick(progress, name)
            if pending >= CHECKPOINT_EVERY or _due(checkpoint_every_s, last_checkpoint):
                _flush_batch(session, batch, summary, rows, checkpoint, storage)
                saved, pending = len(summary.imported), 0
                last_checkpoint = time.monotonic()
        name = None
        record_event(
            session,
            actor,
            "images.import",
            "import_batch",
            batch.id,
            project_id=project.id,
            source=source_label,
            imported=len(summary.imported),
            duplicates=len(summary.duplicates),
            rejected=len(summary.rejected),
        )
        _flush_batch(session, batch, summary, rows, last_checkpoint_commit, storage)
        ok = True
    except Exception as exc:
        if not saved:
            raise  # nothing was committed: the caller's rollback leaves no trace
        log.exception("import into project %s stopped after %d saved images", project.id, saved)
        raise ImportInterrupted(batch.id, summary.imported[:saved], name, exc) from exc
    finally:
        if journal is not None:
            journal.finish() if ok else journal.abandon()
    ids = dict(
        session.execute(
            select(Image.sha256, Image.id).where(Image.import_batch_id == batch.id)
        ).all()
    )
    for row in summary.imported:
        row["id"] = ids.get(row["sha256"])
    return summary


def import_uploads(
    session: Session,
    actor: User,
    project: Project,
    files: list[tuple[str, BinaryIO]],
    *,
    storage: Storage,
    config: Mapping[str, Any],
    source_label: str,
    checkpoint: Callable[[], None],
    limits: ImageLimits = DEFAULT_LIMITS,
) -> ImportSummary:
    """Import uploaded files (images or zips, as (name, stream) pairs) for the page and the API."""
    summary = import_images(
        session,
        actor,
        project,
        iter_uploads(files, limits=limits),
        storage=storage,
        source_label=source_label,
        checkpoint=checkpoint,
    )
    run_import_hooks(session, config, project, summary, storage)
    return summary


def _due(every_s: float | None, last: float) -> bool:
    """True when a time-based checkpoint is due (import jobs: the checkpoint is the heartbeat)."""
    return every_s is not None and time.monotonic() - last >= every_s


def _tick(progress: Callable[[str], None] | None, name: str) -> None:
    if progress is not None:
        progress(name)


class _KnownHashes:
    """The content hashes already in the project, for dedupe before decoding.

    Until the import's first checkpoint, one indexed read per image (the unique (project_id, sha256)
    key): an upload of one file no longer loads every hash of the project (1.5-1.9 ms per HTTP upload
    into 2,000 images). At the first checkpoint, before its commit, they are read all at once, so a
    long import sends no statement between checkpoints: no transaction (on SQLite, its write lock)
    is held while the next images are decoded.
    """

    def __init__(self, session: Session, project_id: int) -> None:
        self.session, self.project_id = session, project_id
        self.hashes: set[str] = set()  # this import's own, then (once loaded) the project's
        self.loaded = False

    def has(self, sha256: str) -> bool:
        if sha256 in self.hashes or self.loaded:
            return sha256 in self.hashes
        # on the session's connection (Core: no autoflush, no ORM result machinery; a third of the
        # ORM call's CPU). This import's own rows, inserted only at its checkpoints, are in hashes.
        params = {"project": self.project_id, "sha": sha256}
        return self.session.connection().execute(_KNOWN_IMAGE, params).first() is not None

    def add(self, sha256: str) -> None:
        self.hashes.add(sha256)

    def loaded_before(self, checkpoint: Callable[[], None]) -> Callable[[], None]:
        def load_then_commit() -> None:
            if not self.loaded:
                self.hashes.update(
                    self.session.scalars(
                        select(Image.sha256).where(Image.project_id == self.project_id)
                    )
                )
                self.loaded = True
            checkpoint()

        return load_then_commit


def _flush_batch(
    session: Session,
    batch: ImportBatch,
    summary: ImportSummary,
    rows: list[dict[str, Any]],
    checkpoint,
    storage,
) -> None:
    """Insert the images since the last checkpoint, then commit (the caller's checkpoint).

    The rows go in as one bulk INSERT (executemany / insertmanyvalues), not one ORM object each
    through the unit of work: nothing needs the objects (ids are read back at the end of the
    import), and it costs a fraction of a flush. ``rows`` is emptied only once they are inserted.
    """
    storage.make_durable()  # every file a row is about to refer to is on disk before the commit
    batch.imported_count = len(summary.imported)
    batch.duplicate_count = len(summary.duplicates)
    batch.rejected = list(summary.rejected)
    if rows:
        session.execute(insert(Image), rows)
        rows.clear()
    session.flush()
    checkpoint()


def _store(storage: Storage, journal: Journal | None, data: bytes, result) -> tuple[str, str, str]:
    ext = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "TIFF": "tif"}.get(result.format, "bin")
    disp_ext = "png" if result.display_mime == "image/png" else "jpg"
    keys = (
        content_key("originals", result.sha256, ext),
        content_key("display", result.sha256, disp_ext),
        content_key("thumbs", result.sha256, "jpg"),
    )
    # Listed first, then written or found, with recovery held off (see .journal). durable=False: one
    # sync per checkpoint (before the commit) instead of six fsyncs per image.
    with journal.writing(keys) if journal is not None else nullcontext():
        storage.put(keys[0], data, durable=False)
        storage.put(keys[1], result.display_bytes, durable=False)
        storage.put(keys[2], result.thumb_bytes, durable=False)
    return keys
