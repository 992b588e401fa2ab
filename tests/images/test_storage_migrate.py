"""`labeler storage migrate --to URL`: a project's files (or all) copied between backends, verified
by SHA-256, resumable after an interruption, corrupt sources reported and never copied."""

from __future__ import annotations

import io
import uuid

import pytest
from PIL import Image as PILImage

from labeler.demo import MemorySource
from labeler.images import tiles
from labeler.images.models import Image
from labeler.images.services import import_images
from labeler.images.storage import AzureBlobStorage, storage_from_url


def _jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", (300, 200), (seed * 40 % 256, 90, 160)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture()
def two_projects(app, db, make_project):
    storage = app.extensions["labeler_storage"]
    out = []
    for n in (0, 1):
        project = make_project()
        summary = import_images(
            db,
            None,
            project,
            [MemorySource(f"p{n}-{i}.jpg", _jpeg(10 * n + i)) for i in range(3)],
            storage=storage,
            source_label="t",
            checkpoint=db.flush,
        )
        images = [db.get(Image, row["id"]) for row in summary.imported]
        out.append((project, images))
    tiles.ensure_pyramid(storage, out[0][1][0])
    db.commit()
    return out


@pytest.fixture()
def dest(app, azurite):
    cfg = {**app.config, **azurite.config()}
    return cfg["STORAGE_URL"], cfg


def _migrate(app, url, cfg, *args):
    app.config.update(
        AZURE_STORAGE_CONNECTION_STRING=cfg["AZURE_STORAGE_CONNECTION_STRING"],
        AZURE_STORAGE_RETRIES=1,
    )
    return app.test_cli_runner().invoke(args=["storage", "migrate", "--to", url, *args])


def test_project_migration_copies_its_files_and_resumes(app, db, two_projects, dest):
    url, cfg = dest
    src = app.extensions["labeler_storage"]
    (project, images), (_other, other_images) = two_projects
    result = _migrate(app, url, cfg, "--project", str(project.id))
    assert result.exit_code == 0, result.output
    dst = storage_from_url(url, cfg)
    assert isinstance(dst, AzureBlobStorage)
    want = {k for im in images for k in (im.original_key, im.display_key, im.thumb_key)}
    want |= set(src.iter_keys(tiles._prefix(images[0].sha256)))
    assert set(dst.iter_keys()) == want  # this project's files only
    for key in want:
        assert b"".join(dst.stream(key)) == b"".join(src.stream(key))
    assert f"copied {len(want)} files, 0 were already there" in result.output
    assert f"LABELER_STORAGE_URL={url}" in result.output
    assert other_images[0].original_key not in set(dst.iter_keys())

    # resumable: a file lost and another replaced by other bytes at the destination
    lost, bad = images[1].thumb_key, images[2].display_key
    dst.delete(lost)
    dst.put(bad, b"not the display copy")
    again = _migrate(app, url, cfg, "--project", project.name)
    assert again.exit_code == 0, again.output
    assert f"copied 2 files, {len(want) - 2} were already there" in again.output
    assert b"".join(dst.stream(bad)) == b"".join(src.stream(bad))
    assert dst.exists(lost)


def test_an_interrupted_migration_finishes_on_the_next_run(
    app, db, two_projects, dest, monkeypatch
):
    url, cfg = dest
    calls = {"n": 0}
    real = AzureBlobStorage.put_stream

    def dies_on_the_fourth(self, key, fh):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # the operator's Ctrl-C, mid-copy
        return real(self, key, fh)

    monkeypatch.setattr(AzureBlobStorage, "put_stream", dies_on_the_fourth)
    first = _migrate(app, url, cfg)
    assert first.exit_code != 0
    monkeypatch.setattr(AzureBlobStorage, "put_stream", real)
    dst = storage_from_url(url, cfg)
    assert len(list(dst.iter_keys())) == 3  # three whole files; the fourth never appeared
    second = _migrate(app, url, cfg)
    assert second.exit_code == 0, second.output
    src = app.extensions["labeler_storage"]
    total = len(list(src.iter_keys()))
    assert f"copied {total - 3} files, 3 were already there" in second.output
    assert sorted(dst.iter_keys()) == sorted(src.iter_keys())


def test_a_corrupt_original_is_reported_not_copied(app, db, two_projects, dest):
    url, cfg = dest
    (project, images), _ = two_projects
    src = app.extensions["labeler_storage"]
    src.put(images[0].original_key, b"bit rot")
    result = _migrate(app, url, cfg, "--project", str(project.id))
    assert result.exit_code == 1
    assert f"{images[0].original_key}: failed: the source file's SHA-256" in result.output
    assert f"not the recorded {images[0].sha256}" in result.output
    assert not storage_from_url(url, cfg).exists(images[0].original_key)


def test_back_from_azure_to_a_local_folder(app, db, two_projects, dest, tmp_path):
    url, cfg = dest
    assert _migrate(app, url, cfg).exit_code == 0
    # now serve from Azure and migrate everything back into a new folder
    app.extensions["labeler_storage"] = storage_from_url(url, cfg)
    back = tmp_path / f"back-{uuid.uuid4().hex[:6]}"
    result = _migrate(app, f"file://{back}", cfg)
    assert result.exit_code == 0, result.output
    src = storage_from_url(url, cfg)
    local = storage_from_url(f"file://{back}", cfg)
    assert sorted(local.iter_keys()) == sorted(src.iter_keys())
    assert "0 failed" in result.output


def test_bad_destinations_are_clear_errors(app, dest):
    _url, cfg = dest
    for to, words in [
        ("s3://bucket", "must start with file:// or azure://"),
        (f"file://{app.config['STORAGE_PATH']}", "already uses"),
    ]:
        result = _migrate(app, to, cfg)
        assert result.exit_code == 1 and words in result.output, result.output
