"""Images reach raters and leads through the app on every storage backend (local, Azure Blob on
Azurite): streamed with byte ranges, authorized per request, never a blob URL or SAS link."""

# ruff: noqa: F811  (fixtures imported from labeling_fixtures are used as arguments)
from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import pytest
from helpers import make_config
from PIL import Image as PILImage

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "labeling"))
from labeling_fixtures import make_item  # noqa: F401  (fixture)

from labeler import create_app
from labeler.demo import MemorySource
from labeler.images import tiles
from labeler.images.journal import sweep_unreferenced
from labeler.images.models import Image
from labeler.images.services import import_images
from labeler.images.storage import AzureBlobStorage, LocalStorage


@pytest.fixture(params=["local", "azure"])
def app(request, tmp_path, database_url, connection):
    """The app on each backend (overrides the shared fixture of the same name)."""
    extra = {}
    if request.param == "azure":
        extra = request.getfixturevalue("azurite").config()
    application = create_app(make_config(tmp_path, database_url, **extra))
    storage = application.extensions["labeler_storage"]
    if request.param == "azure":
        assert isinstance(storage, AzureBlobStorage)
        storage.create_container()
    else:
        assert isinstance(storage, LocalStorage)
    application.extensions["labeler_db"].bind(connection)
    yield application
    application.extensions["labeler_db"].engine.dispose()


def _photo(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    PILImage.effect_noise((w, h), 60).convert("RGB").save(buf, "JPEG", quality=95)
    return buf.getvalue()


@pytest.fixture()
def served(app, db, make_user, make_project, make_item, login_as):
    storage = app.extensions["labeler_storage"]
    lead = make_user(None, "lead")
    project = make_project(lead)
    summary = import_images(
        db,
        None,
        project,
        [MemorySource("p.jpg", _photo(900, 700))],
        storage=storage,
        source_label="t",
        checkpoint=db.flush,
    )
    image = db.get(Image, summary.imported[0]["id"])
    rater = make_user(None, "rater")
    item = make_item(rater, project, image=image)
    return storage, image, item, rater, lead


def _no_blob_address(resp, image, app) -> None:
    """Nothing in the answer names the blob: no hash, no container, no storage host."""
    skip = {"content-security-policy", "set-cookie"}  # the CSP allows blob: images; the session
    text = " ".join(f"{k}: {v}" for k, v in resp.headers.items() if k.lower() not in skip)
    assert image.sha256 not in text and "blob" not in text.lower()
    assert "127.0.0.1:" not in text and "sig=" not in text
    assert resp.status_code not in (301, 302, 303, 307, 308)


def test_rater_image_is_streamed_with_ranges_and_no_identity(app, served, login_as):
    storage, image, item, rater, _lead = served
    stored = b"".join(storage.stream(image.display_key))
    client = login_as(rater)
    url = f"/api/v1/items/{item.public_id}/image"
    resp = client.get(url, buffered=False)
    assert resp.status_code == 200 and resp.is_streamed  # pieces from the store, not one buffer
    assert resp.get_data() == stored and resp.content_length == len(stored)
    resp.close()
    assert resp.headers["Cache-Control"] == "private, no-store"
    assert resp.headers["Accept-Ranges"] == "bytes"
    for header in ("ETag", "Last-Modified", "Content-Disposition"):
        assert header not in resp.headers
    _no_blob_address(resp, image, app)
    part = client.get(url, headers={"Range": "bytes=100-355"})
    assert part.status_code == 206 and part.data == stored[100:356]
    assert part.headers["Content-Range"] == f"bytes 100-355/{len(stored)}"
    tail = client.get(url, headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.data == stored[-50:]
    beyond = client.get(url, headers={"Range": f"bytes={len(stored) + 10}-"})
    assert beyond.status_code == 416
    # a conditional range the app cannot match (raters get no ETag): the whole image, as HTTP says
    cond = client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"x"'})
    assert cond.status_code == 200 and cond.data == stored


def test_another_raters_item_image_is_a_404(app, served, login_as, make_user):
    _storage, _image, item, _rater, _lead = served
    other = login_as(make_user(None, "rater"))
    assert other.get(f"/api/v1/items/{item.public_id}/image").status_code == 404


def test_missing_display_blob_is_a_clear_404(app, served, login_as):
    storage, image, item, rater, _lead = served
    storage.delete(image.display_key)
    resp = login_as(rater).get(f"/api/v1/items/{item.public_id}/image")
    assert resp.status_code == 404 and "missing from storage" in resp.json["error"]["message"]


def test_tiles_are_built_and_served_from_the_store(app, served, login_as):
    storage, image, item, rater, _lead = served
    client = login_as(rater)
    # until the tiles job has run, the rater's request builds nothing: the display copy stays
    assert client.get(f"/api/v1/items/{item.public_id}/tiles").json["tile_source"] is None
    assert not tiles.has_pyramid(storage, image)
    tiles.ensure_pyramid(storage, image)  # what the job does after the import
    assert client.get(f"/api/v1/items/{item.public_id}/tiles").json["tile_source"]
    top = tiles.Pyramid(image.width, image.height).top
    tile = client.get(f"/api/v1/items/{item.public_id}/tiles/{top}/1_1.jpg")
    assert tile.status_code == 200 and tile.mimetype == "image/jpeg"
    assert tile.data == b"".join(storage.stream(tiles.tile_key(image, top, 1, 1)))
    assert "ETag" not in tile.headers
    _no_blob_address(tile, image, app)


def test_lead_downloads_the_original_with_ranges(app, served, login_as):
    storage, image, _item, _rater, lead = served
    original = b"".join(storage.stream(image.original_key))
    client = login_as(lead)
    resp = client.get(f"/images/{image.id}/original")
    assert resp.status_code == 200 and resp.data == original
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    part = client.get(f"/images/{image.id}/original", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.data == original[:100]
    etag = resp.headers["ETag"]
    again = client.get(f"/images/{image.id}/original", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    rater = login_as(_rater)
    assert rater.get(f"/images/{image.id}/original").status_code == 403


def test_sweep_deletes_old_unreferenced_import_files_only(app, db, served):
    """A store without a journal (Azure) recovers from a dead import by listing: files no image
    row refers to go once they are older than the grace period; referenced and young ones stay."""
    storage, image, _item, _rater, _lead = served
    db.commit()
    orphan = "originals/ab/cd/" + "ab" * 32 + ".jpg"
    storage.put(orphan, b"left by a dead import")
    storage.put("reference/aa/bb/x.jpg", b"not an import file")
    before = time.time()
    assert storage.modified(orphan) >= before - 5
    assert sweep_unreferenced(db, storage, older_than_s=3600) == 0  # young: a live import's
    assert storage.exists(orphan)
    assert sweep_unreferenced(db, storage, older_than_s=-60) == 1
    assert not storage.exists(orphan)
    for key in (image.original_key, image.display_key, image.thumb_key, "reference/aa/bb/x.jpg"):
        assert storage.exists(key)
