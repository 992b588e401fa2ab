"""Deep-zoom tile pyramids: geometry, pixels, EXIF, the import hook and the rater's tile routes."""

# ruff: noqa: F811  (fixtures imported from labeling_fixtures are used as arguments)
from __future__ import annotations

import io
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "labeling"))
from labeling_fixtures import make_item  # noqa: F401  (fixture)

from labeler.demo import MemorySource
from labeler.images import tiles
from labeler.images.models import Image
from labeler.images.services import import_images, run_import_hooks


def _photo(w: int, h: int, *, orientation: int | None = None, artist: str | None = None) -> bytes:
    """A JPEG with a gradient (so that tiles differ) and optional EXIF."""
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None]
    rgb = np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], axis=-1).astype(np.uint8)
    im = PILImage.fromarray(rgb)
    exif = PILImage.Exif()
    if orientation:
        exif[0x0112] = orientation
    if artist:
        exif[0x013B] = artist
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


def test_cut_tiles_follows_deep_zoom_geometry():
    im = PILImage.new("RGB", (1000, 700), (10, 20, 30))
    got = {(lv, c, r): t for lv, c, r, t in tiles.cut_tiles(im)}
    pyramid = tiles.Pyramid(1000, 700)
    assert pyramid.top == 10  # 2^10 = 1024 >= 1000
    for level in range(pyramid.top + 1):
        w, h = pyramid.level_size(level)
        cols, rows = math.ceil(w / 256), math.ceil(h / 256)
        keys = {(c, r) for lv, c, r in got if lv == level}
        assert keys == {(c, r) for c in range(cols) for r in range(rows)}, level
    assert pyramid.level_size(0) == (1, 1) and pyramid.level_size(9) == (500, 350)
    # the first tile has overlap on its right and bottom only; an inner one on every side
    assert PILImage.open(io.BytesIO(got[(10, 0, 0)])).size == (257, 257)
    assert PILImage.open(io.BytesIO(got[(10, 1, 1)])).size == (258, 258)
    assert PILImage.open(io.BytesIO(got[(10, 3, 2)])).size == (1000 - 767, 700 - 511)
    assert not pyramid.has_tile(10, 4, 0) and not pyramid.has_tile(11, 0, 0)
    assert not pyramid.has_tile(-1, 0, 0) and pyramid.has_tile(10, 3, 2)


def test_pyramid_is_upright_and_carries_no_exif(app, db, make_project):
    storage = app.extensions["labeler_storage"]
    project = make_project()
    data = _photo(600, 400, orientation=6, artist="Patient Jane Doe")  # 6: rotate 90 clockwise
    summary = import_images(
        db,
        None,
        project,
        [MemorySource("p.jpg", data)],
        storage=storage,
        source_label="t",
        checkpoint=db.flush,
    )
    image = db.get(Image, summary.imported[0]["id"])
    assert (image.width, image.height) == (400, 600)
    pyramid = tiles.ensure_pyramid(storage, image)
    assert tiles.has_pyramid(storage, image)
    top = pyramid.top
    with storage.open(tiles.tile_key(image, top, 0, 0)) as fh:
        raw = fh.read()
    assert b"Jane Doe" not in raw and b"Exif" not in raw
    tile = PILImage.open(io.BytesIO(raw))
    assert not tile.getexif()
    # the upright original's top-left corner, within JPEG error
    upright = PILImage.open(io.BytesIO(data))
    upright = upright.transpose(PILImage.Transpose.ROTATE_270).convert("RGB")
    want = np.asarray(upright.crop((0, 0, 257, 257)), np.float32)
    assert np.abs(np.asarray(tile, np.float32) - want).mean() < 3
    # the whole set is there and nothing names the source
    keys = list(storage.iter_keys("tiles"))
    with storage.open(tiles._marker_key(image)) as fh:
        marker = json.loads(fh.read())
    assert sum(1 for k in keys if k.endswith(".jpg")) == marker["tiles"] > 1


def test_import_hook_builds_the_pyramid(app, db, make_project):
    storage = app.extensions["labeler_storage"]
    project = make_project()
    summary = import_images(
        db,
        None,
        project,
        [MemorySource("a.jpg", _photo(300, 200))],
        storage=storage,
        source_label="t",
        checkpoint=db.flush,
    )
    run_import_hooks(db, app.config, project, summary, storage)
    image = db.get(Image, summary.imported[0]["id"])
    assert summary.after_import["tiles"] == {"built": 1, "failed": []}
    assert tiles.has_pyramid(storage, image)


@pytest.fixture()
def tiled_item(app, db, make_user, make_project, make_item, login_as):
    storage = app.extensions["labeler_storage"]
    project = make_project()
    summary = import_images(
        db,
        None,
        project,
        [MemorySource("z.jpg", _photo(1200, 900))],
        storage=storage,
        source_label="t",
        checkpoint=db.flush,
    )
    image = db.get(Image, summary.imported[0]["id"])
    tiles.ensure_pyramid(storage, image)  # what the tiles job does after the import
    rater = make_user(None, "rater")
    item = make_item(rater, project, image=image)
    return login_as(rater), item, image, project


def test_rater_gets_the_description_and_tiles_of_their_own_item(app, tiled_item):
    client, item, image, _project = tiled_item
    resp = client.get(f"/api/v1/items/{item.public_id}/tiles")
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "private, no-store"
    src = resp.json["tile_source"]["Image"]
    assert src["Url"] == f"/api/v1/items/{item.public_id}/tiles/"
    assert src["Size"] == {"Width": "1200", "Height": "900"} and src["TileSize"] == "256"
    assert image.sha256 not in resp.text and image.filename not in resp.text
    top = tiles.Pyramid(1200, 900).top
    tile = client.get(f"{src['Url']}{top}/4_3.jpg")
    assert tile.status_code == 200 and tile.mimetype == "image/jpeg"
    assert tile.headers["Cache-Control"] == "private, no-store"
    for header in ("ETag", "Last-Modified", "Content-Disposition"):
        assert header not in tile.headers
    assert PILImage.open(io.BytesIO(tile.data)).size == (1200 - 1023, 900 - 767)
    assert client.get(f"{src['Url']}{top}/5_0.jpg").status_code == 404
    assert client.get(f"{src['Url']}{top + 1}/0_0.jpg").status_code == 404


def test_tiles_of_another_raters_item_look_like_no_item(tiled_item, make_user, make_item, login_as):
    _client, item, image, project = tiled_item
    other = make_user(None, "rater")
    own = make_item(other, project, image=image)  # the same image in the other rater's queue
    client = login_as(other)
    assert client.get(f"/api/v1/items/{item.public_id}/tiles").status_code == 404
    assert client.get(f"/api/v1/items/{item.public_id}/tiles/0/0_0.jpg").status_code == 404
    assert client.get("/api/v1/items/nosuchitem/tiles/0/0_0.jpg").status_code == 404
    # the same picture reaches each rater under their own, unrelated URL
    mine = client.get(f"/api/v1/items/{own.public_id}/tiles").json["tile_source"]["Image"]["Url"]
    assert item.public_id not in mine and own.public_id in mine


def test_a_lead_has_no_rater_tile_route(tiled_item, make_user, login_as):
    _client, item, _image, _project = tiled_item
    lead = login_as(make_user(None, "lead"))
    assert lead.get(f"/api/v1/items/{item.public_id}/tiles").status_code == 403


def test_a_missing_tile_is_a_clear_404(app, db, tiled_item):
    client, item, image, _project = tiled_item
    top = tiles.Pyramid(image.width, image.height).top
    app.extensions["labeler_storage"].delete(tiles.tile_key(image, top, 0, 0))
    resp = client.get(f"/api/v1/items/{item.public_id}/tiles/{top}/0_0.jpg")
    assert resp.status_code == 404 and "missing" in resp.json["error"]["message"]


def test_a_request_never_builds_tiles_and_every_item_answers_alike(
    app, db, make_user, make_project, make_item, login_as
):
    """Until the tiles job has run, every item (golden or not) answers the same null description
    and nothing is built, so no first zoom tells one image from another."""
    app.config["TILES_AT_IMPORT"] = False
    storage = app.extensions["labeler_storage"]
    project = make_project()
    summary = import_images(
        db,
        None,
        project,
        [MemorySource(f"{i}.jpg", _photo(700 + i, 500)) for i in range(2)],
        storage=storage,
        source_label="t",
        checkpoint=db.flush,
    )
    rater = make_user(None, "rater")
    images = [db.get(Image, row["id"]) for row in summary.imported]
    items = [make_item(rater, project, image=im) for im in images]
    client = login_as(rater)
    bodies = []
    for item in items:
        resp = client.get(f"/api/v1/items/{item.public_id}/tiles")
        assert resp.status_code == 200 and resp.headers["Cache-Control"] == "private, no-store"
        bodies.append(resp.get_data())
        assert client.get(f"/api/v1/items/{item.public_id}/tiles/0/0_0.jpg").status_code == 404
    assert bodies[0] == bodies[1] and b'"tile_source":null' in bodies[0].replace(b" ", b"")
    assert not any(tiles.has_pyramid(storage, im) for im in images)
    assert list(storage.iter_keys("tiles")) == []


def test_the_tiles_job_runs_after_the_commit(app, db, make_project, monkeypatch):
    """Without a broker the hook starts a local worker process once the import is committed (never
    in the request); with one it sends the Celery task."""
    storage = app.extensions["labeler_storage"]
    project = make_project()
    started = []
    monkeypatch.setattr(tiles, "spawn", lambda module, args, config, log: started.append(args))
    monkeypatch.setattr(
        tiles, "send_tiles", lambda config, pid, ids: started.append(("celery", pid, ids))
    )
    app.config["JOBS_LOCAL"] = "process"
    summary = import_images(
        db,
        None,
        project,
        [MemorySource("a.jpg", _photo(300, 200)), MemorySource("b.jpg", _photo(310, 200))],
        storage=storage,
        source_label="t",
        checkpoint=db.flush,
    )
    run_import_hooks(db, app.config, project, summary, storage)
    ids = sorted(row["id"] for row in summary.imported)
    assert summary.after_import["tiles"] == {"status": "queued", "images": 2}
    assert started == []  # nothing before the commit
    db.commit()
    assert started == [["tiles", str(project.id), *map(str, ids)]]
    assert not any(tiles.has_pyramid(storage, db.get(Image, i)) for i in ids)
    started.clear()
    app.config["CELERY_BROKER_URL"] = "redis://127.0.0.1:1/0"
    more = import_images(
        db,
        None,
        project,
        [MemorySource("c.jpg", _photo(320, 200))],
        storage=storage,
        source_label="t",
        checkpoint=db.flush,
    )
    run_import_hooks(db, app.config, project, more, storage)
    db.commit()
    assert started == [("celery", project.id, [more.imported[0]["id"]])]
    # the job's body, as the worker runs it
    result = tiles.build_pyramids_job(
        app.extensions["labeler_db"].session_factory, app.config, storage, ids
    )
    assert result == {"built": 2, "failed": []}
    assert all(tiles.has_pyramid(storage, db.get(Image, i)) for i in ids)


def test_cli_builds_the_tiles_images_lack(app, runner, db, tmp_path):
    app.config["TILES_AT_IMPORT"] = False  # as for images imported before deep zoom existed
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.jpg").write_bytes(_photo(300 + i, 200))
    assert runner.invoke(args=["projects", "create", "T", "--protocol", "quality"]).exit_code == 0
    assert runner.invoke(args=["images", "import", "T", str(folder)]).exit_code == 0
    storage = app.extensions["labeler_storage"]
    images = db.query(Image).all()
    assert len(images) == 3 and not any(tiles.has_pyramid(storage, im) for im in images)
    res = runner.invoke(args=["images", "tiles", "T"])
    assert res.exit_code == 0, res.output
    assert "tiles built for 3 images; 0 already had them; 0 failed" in res.output
    assert all(tiles.has_pyramid(storage, im) for im in images)
    again = runner.invoke(args=["images", "tiles"])
    assert "tiles built for 0 images; 3 already had them" in again.output
