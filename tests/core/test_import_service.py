"""Import service: dedupe, hostile files per-file, manifest metadata, crash safety."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlalchemy import create_engine, func, select

from labeler.audit.models import AuditEvent
from labeler.demo import MemorySource
from labeler.errors import ValidationError
from labeler.images.models import Image, ImportBatch
from labeler.images.services import import_images, read_manifest
from labeler.images.sources import iter_source


def jpeg(seed: int, size=(320, 240), exif=None) -> bytes:
    im = PILImage.new("RGB", size, (seed % 256, (seed * 7) % 256, (seed * 13) % 256))
    im.putpixel((0, 0), (seed % 251, 1, 2))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90, **({"exif": exif} if exif else {}))
    return buf.getvalue()


@pytest.fixture()
def storage(app):
    return app.extensions["labeler_storage"]


def run_import(db, project, sources, storage, **kw):
    return import_images(
        db, None, project, sources, storage=storage, source_label="test", checkpoint=db.flush, **kw
    )


def test_import_dedupes_and_reports(db, make_project, storage):
    project = make_project()
    first = run_import(db, project, [MemorySource(f"a{i}.jpg", jpeg(i)) for i in range(5)], storage)
    assert len(first.imported) == 5 and not first.duplicates and not first.rejected
    again = run_import(db, project, [MemorySource(f"b{i}.jpg", jpeg(i)) for i in range(6)], storage)
    assert [d["filename"] for d in again.duplicates] == [f"b{i}.jpg" for i in range(5)]
    assert len(again.imported) == 1
    assert db.scalar(select(func.count(Image.id)).where(Image.project_id == project.id)) == 6
    # the same image twice in one batch is one image
    third = run_import(
        db, project, [MemorySource("c.jpg", jpeg(99)), MemorySource("d.jpg", jpeg(99))], storage
    )
    assert len(third.imported) == 1 and len(third.duplicates) == 1
    batch = db.get(ImportBatch, third.batch_id)
    assert (batch.imported_count, batch.duplicate_count) == (1, 1)
    assert (
        db.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "images.import"))
        == 3
    )


def test_files_on_disk_and_exif_stripped(db, make_project, storage):
    project = make_project()
    exif = PILImage.Exif()
    exif[0x010F] = "PhoneMaker"
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0)}  # GPS IFD
    summary = run_import(db, project, [MemorySource("gps.jpg", jpeg(1, exif=exif))], storage)
    image = db.get(Image, summary.imported[0]["id"])
    original = storage.path(image.original_key).read_bytes()
    assert b"PhoneMaker" in original  # leads keep the original bytes
    for key in (image.display_key, image.thumb_key):
        served = storage.path(key).read_bytes()
        assert b"PhoneMaker" not in served
        assert not PILImage.open(io.BytesIO(served)).getexif()


def test_hostile_files_rejected_rest_imported(db, make_project, storage):
    project = make_project()
    good = jpeg(1)
    sources = [
        MemorySource("ok.jpg", good),
        MemorySource("notes.jpg", b"this is not an image"),
        MemorySource("cut.jpg", jpeg(2, size=(800, 600))[:600]),
        MemorySource("photo.png", jpeg(3)),
        MemorySource("empty.jpg", b""),
    ]
    summary = run_import(db, project, sources, storage)
    assert [r["filename"] for r in summary.imported] == ["ok.jpg"]
    reasons = {r["filename"]: r["error"] for r in summary.rejected}
    assert set(reasons) == {"notes.jpg", "cut.jpg", "photo.png", "empty.jpg"}
    assert all(reasons.values())
    assert "png" in reasons["photo.png"].lower() or "extension" in reasons["photo.png"].lower()
    assert db.scalar(select(func.count(Image.id)).where(Image.project_id == project.id)) == 1


def test_manifest_metadata(db, make_project, storage, tmp_path):
    folder = tmp_path / "batch"
    (folder / "sub").mkdir(parents=True)
    (folder / "one.jpg").write_bytes(jpeg(1))
    (folder / "sub" / "two.jpg").write_bytes(jpeg(2))
    manifest = read_manifest(
        b"filename,case_id,body_site,fitzpatrick,camera\none.jpg,P1,cheek,IV,phone\n"
        b"sub/two.jpg,P1,forehead,2,\n"
    )
    project = make_project()
    summary = run_import(db, project, list(iter_source(folder)), storage, manifest=manifest)
    rows = {
        im.filename: im for im in db.scalars(select(Image).where(Image.project_id == project.id))
    }
    assert len(summary.imported) == 2
    assert rows["one.jpg"].case_id == "P1" and rows["one.jpg"].fitzpatrick == 4
    assert rows["one.jpg"].meta == {"camera": "phone"}
    assert rows["sub/two.jpg"].body_site == "forehead" and rows["sub/two.jpg"].fitzpatrick == 2


@pytest.mark.parametrize(
    "text", [b"name,case\nx,1\n", b"filename,fitzpatrick\nx.jpg,VII\n", b"filename\n,\n"]
)
def test_bad_manifest(text):
    with pytest.raises(ValidationError):
        read_manifest(text)


def test_manifest_fitzpatrick_written_in_words():
    rows = read_manifest(
        b"filename,fitzpatrick\na.jpg,type III\nb.jpg,Type 5\nc.jpg,vi\nd.jpg,\ne.jpg,2\n"
    )
    assert [rows[f"{c}.jpg"]["fitzpatrick"] for c in "abcde"] == [3, 5, 6, None, 2]


def test_zip_import(db, make_project, storage, tmp_path):
    path = tmp_path / "batch.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a.jpg", jpeg(1))
        zf.writestr("dir/b.jpg", jpeg(2))
        zf.writestr("../evil.jpg", jpeg(3))
    project = make_project()
    summary = run_import(db, project, iter_source(path), storage)
    names = sorted(r["filename"] for r in summary.imported)
    assert "a.jpg" in names and any(n.endswith("b.jpg") for n in names)
    assert not (tmp_path.parent / "evil.jpg").exists()


CRASHER = textwrap.dedent(
    """
    import io, os, sys
    from PIL import Image as PILImage
    from labeler import create_app
    from labeler.db import get_session
    from labeler.demo import MemorySource
    from labeler.images.services import import_images
    from labeler.migrate import upgrade
    from labeler.projects.services import create_project

    url, root, stop_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
    upgrade(url)
    app = create_app({"DATABASE_URL": url, "INSTANCE_PATH": root + "/instance", "STORAGE_PATH": root + "/files",
                      "LABELER_ENV": "test", "AUTH_MODE": "dev", "SECRET_KEY": "x"})

    def jpeg(i):
        buf = io.BytesIO()
        PILImage.new("RGB", (64, 48), (i % 256, i // 256, 7)).save(buf, "JPEG")
        return buf.getvalue()

    seen = 0
    def progress(_name):
        global seen
        seen += 1
        if seen == stop_after:
            os._exit(3)   # the process dies: no cleanup, no rollback handlers

    with app.app_context():
        s = get_session()
        p = create_project(s, None, "crash", "quality")
        s.commit()
        import_images(s, None, p, [MemorySource(f"i{i}.jpg", jpeg(i)) for i in range(60)],
                      storage=app.extensions["labeler_storage"], source_label="t", checkpoint=s.commit,
                      progress=progress)
    """
)


def _consistency(url: str, files_root: Path) -> tuple[set[str], set[str]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(select(Image.original_key, Image.display_key, Image.thumb_key)).all()
    engine.dispose()
    referenced = {k for row in rows for k in row}
    on_disk = {
        str(p.relative_to(files_root))
        for p in files_root.rglob("*")
        if p.is_file() and ".journal" not in p.parts
    }
    return referenced, on_disk


def test_crash_mid_import_leaves_no_orphans(tmp_path):
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    script = tmp_path / "crash.py"
    script.write_text(CRASHER)
    proc = subprocess.run(
        [sys.executable, str(script), url, str(tmp_path), "40"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 3, proc.stderr
    files = tmp_path / "files"
    referenced, on_disk = _consistency(url, files)
    assert len(referenced) == 25 * 3  # the first checkpoint was committed
    assert referenced <= on_disk  # no row without its files
    assert on_disk - referenced  # the crash left files of uncommitted images behind ...
    assert list((files / ".journal").glob("*.jsonl"))  # ... and the journal that lists them
    # the next import (or `labeler images recover`) removes them
    from labeler import create_app
    from labeler.db import get_session
    from labeler.images.journal import recover_interrupted_imports

    app = create_app(
        {
            "DATABASE_URL": url,
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "STORAGE_PATH": str(files),
            "LABELER_ENV": "test",
            "AUTH_MODE": "dev",
            "SECRET_KEY": "x",
        }
    )
    with app.app_context():
        removed = recover_interrupted_imports(get_session(), app.extensions["labeler_storage"])
    app.extensions["labeler_db"].engine.dispose()
    referenced, on_disk = _consistency(url, files)
    assert removed > 0
    assert referenced == on_disk  # no file without its row
    assert not list((files / ".journal").glob("*.jsonl"))


def test_files_are_made_durable_before_each_commit(db, make_project, tmp_path):
    """Every checkpoint (commit) comes after a sync of the files its rows refer to."""
    from labeler.images.storage import LocalStorage

    events: list[str] = []

    class Recording(LocalStorage):
        def put(self, key, data, *, durable=True):
            events.append("put-deferred" if not durable else "put-durable")
            super().put(key, data, durable=durable)

        def make_durable(self):
            events.append("sync")
            super().make_durable()

    project = make_project()
    sources = [MemorySource(f"s{i}.jpg", jpeg(i)) for i in range(30)]
    import_images(
        db,
        None,
        project,
        sources,
        storage=Recording(tmp_path / "files"),
        source_label="t",
        checkpoint=lambda: events.append("commit"),
    )
    assert "put-durable" not in events
    commits = [i for i, e in enumerate(events) if e == "commit"]
    assert len(commits) == 2  # after 25 images, and at the end
    for i in commits:
        assert events[i - 1] == "sync"
        assert "put-deferred" not in events[i - 1 : i]
    last_put = max(i for i, e in enumerate(events) if e == "put-deferred")
    assert events.index("sync", last_put) < commits[-1]


@pytest.mark.parametrize("via", ["page", "api"])
def test_upload_failing_after_a_checkpoint_says_what_was_saved(
    app, client, db, make_user, make_project, login_as, via
):
    """25 images are committed by the first checkpoint; the 28th cannot be stored."""
    from labeler.auth.services import create_token

    lead = make_user(None, "lead")
    project = make_project(lead)
    names = [f"p{i:02d}.jpg" for i in range(30)]
    files = {n: jpeg(i, size=(64 + i, 48)) for i, n in enumerate(names)}
    storage = app.extensions["labeler_storage"]
    real_put, originals = storage.put, []

    def failing_put(key, data, *, durable=True):
        if key.startswith("originals/"):
            originals.append(key)
            if len(originals) == 28:
                raise OSError(28, "No space left on device")
        real_put(key, data, durable=durable)

    storage.put = failing_put
    upload = {"files": [(io.BytesIO(data), name) for name, data in files.items()]}
    if via == "page":
        client = login_as(lead)
        resp = client.post(
            f"/projects/{project.id}/upload",
            data={**upload, "csrf_token": client.csrf},
            content_type="multipart/form-data",
        )
        text = resp.get_data(as_text=True)
    else:
        _token, raw = create_token(db, lead, lead, "test")
        db.flush()
        resp = client.post(
            f"/api/v1/projects/{project.id}/images",
            data=upload,
            headers={"Authorization": f"Bearer {raw}"},
            content_type="multipart/form-data",
        )
        error = resp.json["error"]
        assert error["code"] == "import_interrupted"
        assert error["saved"]["images"] == 25
        assert error["saved"]["filenames"] == names[:25]
        text = error["message"]
    assert resp.status_code == 500
    assert "nothing was saved" not in text.lower()
    assert "25 images were saved" in text
    assert "stopped at" in text and "p27.jpg" in text  # where it stopped
    assert "p24.jpg" in text  # the last one saved
    saved = db.scalars(select(Image).where(Image.project_id == project.id)).all()
    assert sorted(im.filename for im in saved) == names[:25]
    assert all(storage.exists(im.original_key) for im in saved)


def test_rows_are_inserted_before_each_checkpoint_with_ids_in_the_summary(
    db, make_project, storage
):
    """The images of a checkpoint go in (bulk) before its commit; the summary has their ids."""
    project = make_project()
    names = [f"k{i:02d}.jpg" for i in range(30)]
    counts: list[int] = []

    def checkpoint() -> None:  # what the caller's commit would make permanent
        counts.append(db.scalar(select(func.count(Image.id)).where(Image.project_id == project.id)))

    summary = import_images(
        db,
        None,
        project,
        [MemorySource(n, jpeg(i, size=(40 + i, 30))) for i, n in enumerate(names)],
        storage=storage,
        source_label="t",
        checkpoint=checkpoint,
    )
    assert counts == [25, 30]
    rows = {im.sha256: im for im in db.scalars(select(Image).where(Image.project_id == project.id))}
    assert [r["filename"] for r in summary.imported] == names
    for entry in summary.imported:
        image = rows[entry["sha256"]]
        assert entry["id"] == image.id
        assert (image.filename, image.import_batch_id) == (entry["filename"], summary.batch_id)
        assert image.meta == {} and image.created_at is not None
        assert image.width == 40 + names.index(entry["filename"])
        assert storage.exists(image.original_key) and storage.exists(image.thumb_key)
    assert len({r["id"] for r in summary.imported}) == 30


def test_interrupted_import_keeps_its_committed_checkpoints_only(db, make_project, storage):
    """A source failing after the first checkpoint: its 25 images are in; the two images read
    since then were never inserted (nothing is left pending for a later flush to write)."""
    from labeler.images.services import ImportInterrupted

    project = make_project()

    def sources():
        for i in range(27):
            yield MemorySource(f"q{i:02d}.jpg", jpeg(i, size=(50 + i, 30)))
        raise OSError(5, "the upload stream broke")

    with pytest.raises(ImportInterrupted) as info:
        run_import(db, project, sources(), storage)
    assert info.value.extra["saved"]["images"] == 25
    db.flush()
    saved = db.scalars(select(Image.filename).where(Image.project_id == project.id)).all()
    assert sorted(saved) == [f"q{i:02d}.jpg" for i in range(25)]
