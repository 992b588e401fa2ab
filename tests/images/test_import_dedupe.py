"""Dedupe before decoding: an upload whose bytes are already in the project is recognised by its
content hash with one indexed read, without decoding it or loading every hash of the project."""

from __future__ import annotations

import io
import re

from PIL import Image as PILImage
from sqlalchemy import event

from labeler.demo import MemorySource
from labeler.images import services
from labeler.images.services import import_images


def _jpeg(shade: int) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", (64, 48), (shade % 256, 90, 7)).save(buf, "JPEG", comment=f"photo {shade}")
    return buf.getvalue()


def _import(app, db, project, sources):
    return import_images(
        db,
        None,
        project,
        sources,
        storage=app.extensions["labeler_storage"],
        source_label="t",
        checkpoint=db.flush,
    )


def test_a_known_upload_is_a_duplicate_without_decoding(app, db, make_project, monkeypatch):
    project = make_project()
    first = _import(app, db, project, [MemorySource(f"{i}.jpg", _jpeg(i)) for i in range(30)])
    assert len(first.imported) == 30

    decoded = []
    real = services.process_image
    monkeypatch.setattr(
        services,
        "process_image",
        lambda data, name, **kw: decoded.append(name) or real(data, name, **kw),
    )
    statements: list[str] = []
    record = lambda *a: statements.append(a[2])
    event.listen(db.connection(), "before_cursor_execute", record)
    try:
        again = _import(app, db, project, [MemorySource("again.jpg", _jpeg(3))])
    finally:
        event.remove(db.connection(), "before_cursor_execute", record)
    assert [d["filename"] for d in again.duplicates] == ["again.jpg"] and not again.imported
    assert decoded == []  # recognised by its hash before any decoding
    every_hash = re.compile(
        r"SELECT images\.sha256\s+FROM images\s+WHERE images\.project_id = \S+\s*$"
    )
    hash_reads = [s for s in statements if every_hash.match(s)]
    assert hash_reads == [], hash_reads  # one indexed read of the id, not every hash of the project

    # within one import too, and a new image next to a known one is decoded and imported
    mixed = _import(
        app,
        db,
        project,
        [MemorySource("new.jpg", _jpeg(200)), MemorySource("twice.jpg", _jpeg(200))]
        + [MemorySource("old.jpg", _jpeg(5))],
    )
    assert [d["filename"] for d in mixed.imported] == ["new.jpg"]
    assert sorted(d["filename"] for d in mixed.duplicates) == ["old.jpg", "twice.jpg"]
    assert decoded == ["new.jpg"]


def test_a_long_import_reads_the_hashes_once_at_its_first_checkpoint(app, db, make_project):
    """After the first checkpoint no statement runs between checkpoints (on SQLite a transaction
    would hold the write lock while images are decoded); duplicates are still found."""
    project = make_project()
    _import(app, db, project, [MemorySource("seed.jpg", _jpeg(250))])
    per_image: list[int] = []
    statements: list[str] = []
    record = lambda *a: statements.append(a[2])
    event.listen(db.connection(), "before_cursor_execute", record)

    def sources():
        for i in range(services.CHECKPOINT_EVERY * 2 + 5):
            per_image.append(len(statements))
            yield MemorySource(f"{i}.jpg", _jpeg(i))
        yield MemorySource("seed-again.jpg", _jpeg(250))

    try:
        summary = _import(app, db, project, sources())
    finally:
        event.remove(db.connection(), "before_cursor_execute", record)
    assert len(summary.imported) == services.CHECKPOINT_EVERY * 2 + 5
    assert [d["filename"] for d in summary.duplicates] == ["seed-again.jpg"]
    # between the first checkpoint's commit and the second checkpoint: no statement at all
    after_first = per_image[services.CHECKPOINT_EVERY + 1 : services.CHECKPOINT_EVERY * 2]
    assert len(set(after_first)) == 1, after_first


def test_an_image_repeated_before_its_rows_are_inserted_is_a_duplicate(app, db, make_project):
    """The lookup runs on the connection (no autoflush): this import's own images, not inserted
    until its checkpoint, are recognised from its own hashes, with no lookup of their own."""
    project = make_project()
    _import(app, db, project, [MemorySource("seed.jpg", _jpeg(240))])
    statements: list[str] = []
    record = lambda *a: statements.append(a[2])
    event.listen(db.connection(), "before_cursor_execute", record)
    try:
        summary = _import(
            app,
            db,
            project,
            [
                MemorySource("a.jpg", _jpeg(241)),
                MemorySource("b.jpg", _jpeg(242)),
                MemorySource("a-again.jpg", _jpeg(241)),
                MemorySource("seed-again.jpg", _jpeg(240)),
            ],
        )
    finally:
        event.remove(db.connection(), "before_cursor_execute", record)
    assert [d["filename"] for d in summary.imported] == ["a.jpg", "b.jpg"]
    assert [d["filename"] for d in summary.duplicates] == ["a-again.jpg", "seed-again.jpg"]
    lookup = re.compile(r"WHERE images\.project_id = .+ AND images\.sha256")
    lookups = [i for i, s in enumerate(statements) if lookup.search(s)]
    assert len(lookups) == 3  # a, b and seed-again: none for a-again
    first_insert = next(i for i, s in enumerate(statements) if s.startswith("INSERT INTO images"))
    assert max(lookups) < first_insert  # this import's rows went in once, at its checkpoint
