"""Deep-zoom (DZI) tile pyramids of the originals, so raters can zoom past the 2048 px display copy.

A pyramid is built from the stored original: decoded once, turned upright by its EXIF orientation,
flattened to RGB and cut into 256 px JPEG tiles with a 1 px overlap, level by level (each level a
2x2 box reduction of the one above, as Deep Zoom defines it: level ``top`` is the full image, level
0 is 1x1). The tiles carry no EXIF. They are stored under the image's content hash (never in a URL:
raters reach them through their own opaque item ids) and a ``pyramid.json`` written last marks a
complete pyramid, so a pyramid interrupted half-way is simply built again.

Pyramids are built by a job after every import (images.services registers ``queue_pyramids`` as an
import hook): a Celery task (``labeler.tiles``) when a broker is configured, else a local worker
process (``python -m labeler.jobs.local tiles ...``), never in the upload's request. Every image is
built the same way, golden or not, and a rater's request never builds one: until an image's pyramid
exists its tile description says so (the viewer keeps the display copy), so no image's first zoom
is slower than another's. ``labeler images tiles`` builds the pyramids images imported before this
existed lack.
"""

from __future__ import annotations

import io
import json
import logging
import math
import threading
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image as PILImage
from PIL import ImageOps
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from ..jobs.queue import broker_url, local_mode, send_tiles
from ..jobs.spawn import spawn
from .models import Image
from .processing import _BUDGET, DEFAULT_LIMITS
from .storage import Storage

log = logging.getLogger(__name__)

TILE_SIZE = 256
OVERLAP = 1
QUALITY = 85
FORMAT = "jpg"
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


@dataclass(frozen=True)
class Pyramid:
    """The geometry of one image's pyramid (what the viewer needs, nothing that names the image)."""

    width: int
    height: int

    @property
    def top(self) -> int:
        return max(math.ceil(math.log2(max(self.width, self.height, 1))), 0)

    def level_size(self, level: int) -> tuple[int, int]:
        scale = 2 ** (self.top - level)
        return math.ceil(self.width / scale), math.ceil(self.height / scale)

    def has_tile(self, level: int, col: int, row: int) -> bool:
        if not 0 <= level <= self.top or col < 0 or row < 0:
            return False
        w, h = self.level_size(level)
        return col < math.ceil(w / TILE_SIZE) and row < math.ceil(h / TILE_SIZE)

    def tile_source(self, url: str) -> dict[str, Any]:
        """The DZI description OpenSeadragon takes inline; tiles are ``url + level/col_row.jpg``."""
        return {
            "Image": {
                "xmlns": "http://schemas.microsoft.com/deepzoom/2008",
                "Url": url,
                "Format": FORMAT,
                "Overlap": str(OVERLAP),
                "TileSize": str(TILE_SIZE),
                "Size": {"Width": str(self.width), "Height": str(self.height)},
            }
        }


def _prefix(sha256: str) -> str:
    return f"tiles/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def tile_key(image: Image, level: int, col: int, row: int) -> str:
    return f"{_prefix(image.sha256)}/{level}/{col}_{row}.{FORMAT}"


def _marker_key(image: Image) -> str:
    return f"{_prefix(image.sha256)}/pyramid.json"


def _lock_for(sha256: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(sha256, threading.Lock())


def cut_tiles(im: PILImage.Image) -> Iterator[tuple[int, int, int, bytes]]:
    """(level, col, row, JPEG bytes) of every tile of an upright RGB image, top level first."""
    pyramid = Pyramid(*im.size)
    level_img = im
    for level in range(pyramid.top, -1, -1):
        if level != pyramid.top:
            level_img = level_img.reduce(2)  # 2x2 box average; the size rounds up, as DZI requires
        lw, lh = level_img.size
        assert (lw, lh) == pyramid.level_size(level), (level, level_img.size)
        for col in range(math.ceil(lw / TILE_SIZE)):
            for row in range(math.ceil(lh / TILE_SIZE)):
                x0 = col * TILE_SIZE - (OVERLAP if col else 0)
                y0 = row * TILE_SIZE - (OVERLAP if row else 0)
                x1 = min((col + 1) * TILE_SIZE + OVERLAP, lw)
                y1 = min((row + 1) * TILE_SIZE + OVERLAP, lh)
                out = io.BytesIO()
                level_img.crop((x0, y0, x1, y1)).save(out, "JPEG", quality=QUALITY)
                yield level, col, row, out.getvalue()


def _upright_rgb(data: bytes) -> PILImage.Image:
    """The original as the rater sees it: EXIF orientation applied, alpha flattened on white."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        im = PILImage.open(io.BytesIO(data))
        im.load()
    im = ImageOps.exif_transpose(im) or im
    if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        flat = PILImage.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return im.convert("RGB") if im.mode != "RGB" else im


def has_pyramid(storage: Storage, image: Image) -> bool:
    return storage.exists(_marker_key(image))


def ensure_pyramid(storage: Storage, image: Image) -> Pyramid:
    """The image's pyramid, built from its original first if it is not stored yet."""
    pyramid = Pyramid(image.width, image.height)
    if has_pyramid(storage, image):
        return pyramid
    with _lock_for(image.sha256):  # one build per image in this process; others wait for it
        if has_pyramid(storage, image):
            return pyramid
        with storage.open(image.original_key) as fh:
            data = fh.read()
        # the decoded original, the first reduction and a tile in flight (the imports' shared budget)
        need = image.width * image.height * 4 * 2
        with _BUDGET.hold(
            min(need, DEFAULT_LIMITS.max_decode_bytes), DEFAULT_LIMITS.max_decode_bytes
        ):
            im = _upright_rgb(data)
            if im.size != (image.width, image.height):
                raise RuntimeError(
                    f"image {image.id}: original decodes to {im.size}, "
                    f"recorded {image.width}x{image.height}"
                )
            count = 0
            for level, col, row, tile in cut_tiles(im):
                storage.put(tile_key(image, level, col, row), tile, durable=False)
                count += 1
        storage.make_durable()
        marker = {"width": image.width, "height": image.height, "tiles": count}
        storage.put(_marker_key(image), json.dumps(marker).encode())
        log.info("built the tile pyramid of image %s (%d tiles)", image.id, count)
    return pyramid


def stored_pyramid(storage: Storage, image: Image) -> Pyramid | None:
    """The image's pyramid if it is built (a rater's request never builds one), else None."""
    return Pyramid(image.width, image.height) if has_pyramid(storage, image) else None


def queue_pyramids(
    session: Session,
    config: Mapping[str, Any],
    project: Any,
    image_ids: list[int],
    storage: Storage,
) -> dict[str, Any]:
    """Import hook: once the import is committed, a job builds the new images' pyramids (Celery
    with a broker, else a local worker process; LABELER_JOBS_LOCAL=inline builds them here)."""
    ids = sorted(int(i) for i in image_ids)
    if not config.get("TILES_AT_IMPORT", True):
        return {"built": 0, "skipped": "TILES_AT_IMPORT is off: `labeler images tiles` builds them"}
    if not ids:
        return {"built": 0, "failed": []}
    url, mode = broker_url(config), local_mode(config)
    if not url and mode == "inline":
        return build_pyramids(session, config, project, ids, storage)
    if not url and mode == "off":
        return {"status": "off", "images": len(ids)}
    project_id = project.id

    def send(_session: Session) -> None:
        try:
            if url:
                send_tiles(config, project_id, ids)
            else:
                folder = Path(config.get("INSTANCE_PATH") or ".") / "jobs"
                spawn(
                    "labeler.jobs.local",
                    ["tiles", str(project_id), *map(str, ids)],
                    config,
                    folder / f"tiles-{project_id}.log",
                )
        except Exception:  # the import stands; `labeler images tiles` builds what is missing
            log.exception("tiles of %s images of project %s not queued", len(ids), project_id)

    event.listen(session, "after_commit", send, once=True)
    return {"status": "queued", "images": len(ids)}


def build_pyramids_job(
    factory: sessionmaker, config: Mapping[str, Any], storage: Storage, image_ids: list[int]
) -> dict[str, Any]:
    """The tiles job's body (a Celery task or a local worker process): build each image's pyramid."""
    with factory() as s:
        return build_pyramids(s, config, None, image_ids, storage)


def build_pyramids(
    session: Session,
    config: Mapping[str, Any],
    project: Any,
    image_ids: list[int],
    storage: Storage,
) -> dict[str, Any]:
    """Build the images' pyramids now (in id order; one already built is kept)."""
    built, failed = 0, []
    for image in session.scalars(
        select(Image).where(Image.id.in_(image_ids)).order_by(Image.id)
    ).all():
        try:
            ensure_pyramid(storage, image)
            built += 1
        except (OSError, ValueError, RuntimeError) as e:  # the first zoom tries again
            log.warning("tile pyramid of image %s not built: %s", image.id, e)
            failed.append(image.id)
    return {"built": built, "failed": failed}


def describe(result: dict[str, Any]) -> str | None:
    """The import summary's note when some pyramids could not be built."""
    if result.get("failed"):
        return (
            f"{len(result['failed'])} images could not be prepared for full-resolution zoom; "
            "raters see the display copy of those images until an administrator prepares them again"
        )
    return None
