"""Deep zoom in Chromium: the display copy paints first, OpenSeadragon's tiles of the original take
over on zoom (sharp, no-store, on the rater's own item URL), and the two figures of issue 15:
time-to-sharp at 4x on a 12 MP photo and submit-to-next-painted, printed by the slow test
(`pytest -s -m slow tests/labeling/test_deep_zoom_browser.py`)."""

from __future__ import annotations

import io
import re
import statistics
from pathlib import Path

import numpy as np
import pytest
from browser_support.fixtures import axe_scan, sign_in
from browser_support.labeling_queue import queue_project, wait_ready
from PIL import Image as PILImage

from labeler.auth.models import Role
from labeler.auth.services import add_user
from labeler.demo import MemorySource
from labeler.images import tiles
from labeler.images.services import import_images, run_import_hooks
from labeler.labeling.views import OPENSEADRAGON
from labeler.projects.models import MemberRole
from labeler.projects.services import add_member, create_project

pytestmark = pytest.mark.browser
RATER = "zoomer@zoom.test"


def fine_photo(w: int, h: int, seed: int) -> bytes:
    """A photo whose detail is finer than the display copy can hold: a 2 px grey checkerboard over
    a colour gradient (the display copy, halved, turns the checkerboard into flat grey)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([xx / w * 160 + 40, yy / h * 160 + 40, rng.uniform(60, 180) + 0 * xx], axis=-1)
    checker = (((xx // 2) + (yy // 2)) % 2)[..., None] * 70 - 35
    buf = io.BytesIO()
    PILImage.fromarray(np.clip(base + checker, 0, 255).astype(np.uint8)).save(
        buf, "JPEG", quality=90, subsampling=0
    )
    return buf.getvalue()


def zoom_world(server, sizes: list[tuple[int, int]]) -> list[str]:
    """A quality project with these photos (tiles built by the import hook) queued for one rater."""
    if not (Path(server.app.static_folder) / OPENSEADRAGON).is_file():
        pytest.fail("OpenSeadragon is not installed: run `make vendor`", pytrace=False)
    storage = server.app.extensions["labeler_storage"]
    with server.session() as s:
        rater = add_user(s, None, RATER, "Zoe Zoomer", [Role.rater])
        project = create_project(s, None, "Deep zoom study", "quality")
        add_member(s, None, project, rater, MemberRole.rater)
        sources = [MemorySource(f"z{i}.jpg", fine_photo(w, h, i)) for i, (w, h) in enumerate(sizes)]
        summary = import_images(
            s, None, project, sources, storage=storage, source_label="t", checkpoint=s.flush
        )
        run_import_hooks(s, server.app.config, project, summary, storage)
        assert summary.after_import["tiles"]["built"] == len(sizes)
        ids = queue_project(s, project, rater, "zoom")
        return ids


# Zoom the Viewer by `factor` around the stage centre (as the + key does) and resolve, in ms, once
# OpenSeadragon reports the view fully drawn from tiles.
ZOOM_AND_WAIT_SHARP = """async (factor) => {
  const v = window.labelingViewer, d = window.labelingDeepZoom;
  const t0 = performance.now();
  v.zoomBy(factor);
  await d.whenSharp();
  return performance.now() - t0;
}"""

# The spread (standard deviation) of the grey levels in the centre 32x32 px of the deep-zoom canvas.
CENTRE_DETAIL = """() => {
  const c = document.querySelector('#stage .deep-zoom canvas');
  const g = c.getContext('2d', { willReadFrequently: true });
  const px = g.getImageData(Math.floor(c.width / 2) - 16, Math.floor(c.height / 2) - 16, 32, 32).data;
  const grey = [];
  for (let i = 0; i < px.length; i += 4) grey.push((px[i] + px[i + 1] + px[i + 2]) / 3);
  const mean = grey.reduce((a, b) => a + b, 0) / grey.length;
  return Math.sqrt(grey.reduce((a, b) => a + (b - mean) ** 2, 0) / grey.length);
}"""


def tile_responses(page) -> list:
    seen = []
    page.on("response", lambda r: seen.append(r) if "/tiles/" in r.url else None)
    return seen


def test_deep_zoom_takes_over_on_zoom_with_sharp_blinded_tiles(live_server, browser_page):
    page = browser_page
    q = zoom_world(live_server, [(2600, 1950), (900, 700)])
    sign_in(page, live_server, RATER)
    seen = tile_responses(page)
    page.goto(f"{live_server.url}/items/{q[0]}")
    wait_ready(page, q[0])
    # first paint: the display copy alone; after it, the tiles are opened but none is fetched
    page.wait_for_function("() => document.getElementById('stage').dataset.deepZoom === 'on'")
    assert not [r for r in seen if r.url.endswith(".jpg")]
    assert page.is_hidden("#stage .deep-zoom")
    ms = page.evaluate(ZOOM_AND_WAIT_SHARP, 6)
    assert page.get_attribute("#stage", "data-deep-zoom") == "on"
    assert page.is_visible("#stage .deep-zoom")
    detail = page.evaluate(CENTRE_DETAIL)
    # the 2 px checkerboard is drawn (+-35 grey levels): the original's pixels, not the display
    # copy's flat grey (a spread of a few levels)
    assert detail > 20, detail
    top = tiles.Pyramid(2600, 1950).top
    levels = {
        int(re.search(r"/tiles/(\d+)/", r.url).group(1)) for r in seen if r.url.endswith(".jpg")
    }
    assert top in levels, levels
    for r in seen:
        assert r.status == 200, r.url
        assert f"/api/v1/items/{q[0]}/tiles" in r.url
        assert r.headers["cache-control"] == "private, no-store"
        assert "etag" not in r.headers and "content-disposition" not in r.headers
    # 1:1 is one screen pixel per pixel of the original (not of the 2048 px display copy)
    page.keyboard.press("z")
    assert float(page.get_attribute("#stage", "data-scale")) == pytest.approx(2600 / 2048, rel=1e-3)
    assert page.inner_text("#zoom-level") == "100%"
    # fit again: the display copy alone; the next item starts from its display copy too
    page.keyboard.press("w")
    assert page.is_hidden("#stage .deep-zoom")
    page.keyboard.press("h")
    page.keyboard.press("Enter")
    wait_ready(page, q[1])
    assert page.is_hidden("#stage .deep-zoom")
    # requests, not responses: a tile of the first item asked for before it was left may still
    # arrive now (CI saw one); none may be asked for once the next item is shown
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/tiles/" in r.url else None)
    page.evaluate(ZOOM_AND_WAIT_SHARP, 3)
    assert asked and all(f"/items/{q[1]}/tiles" in url for url in asked), asked
    print(f"\ndeep zoom: 6x on a 2600x1950 photo sharp in {ms:.0f} ms")


@pytest.mark.slow
def test_figures_time_to_sharp_12mp_and_submit_to_next_painted(live_server, browser_page):
    """Prints the two figures against issue 15's goals (p95 submit-to-next < 50 ms, 4x sharp
    < 300 ms on loopback). A shared CI host's load moves them, so the asserts are loose bounds that
    only a broken path misses; the printed figures are what to compare with the goals."""
    page = browser_page
    n = 21
    q = zoom_world(live_server, [(4000, 3000)] * n)
    sign_in(page, live_server, RATER)
    page.goto(f"{live_server.url}/items/{q[0]}")
    wait_ready(page, q[0])
    page.wait_for_function("() => Boolean(window.OpenSeadragon)")
    sharp = []
    for i in range(1, n):
        if i <= 10:  # time-to-sharp at 4x on this 12 MP photo (first zoom: description + tiles)
            page.wait_for_timeout(150)
            sharp.append(page.evaluate(ZOOM_AND_WAIT_SHARP, 4))
            page.keyboard.press("w")
        page.wait_for_timeout(150)  # a rater looks before answering; the next image prefetches
        page.keyboard.press("h")
        page.keyboard.press("Enter")
        wait_ready(page, q[i])
    page.wait_for_timeout(100)
    painted = sorted(t["painted"] for t in page.evaluate("window.labelingTimings"))
    p95 = painted[max(0, round(0.95 * len(painted)) - 1)]
    print(
        f"\n12 MP (4000x3000) photos, viewport 1400x900, Chromium headless, loopback:"
        f"\n  time-to-sharp at 4x (ms): median {statistics.median(sharp):.0f}, "
        f"max {max(sharp):.0f} over {len(sharp)} photos: {', '.join(f'{t:.0f}' for t in sharp)}"
        f"\n  submit-to-next-painted (ms): p50 {statistics.median(painted):.0f}, p95 {p95:.0f} "
        f"over {len(painted)} submits"
    )
    goals = f"goals: sharp median < 300 ms {'met' if statistics.median(sharp) < 300 else 'MISSED'}"
    print(f"  {goals}, submit-to-next p95 < 50 ms {'met' if p95 < 50 else 'MISSED'}")
    assert len(painted) == n - 1
    assert statistics.median(sharp) < 3000 and p95 < 1000


def test_zoomed_in_page_has_no_serious_accessibility_violations(live_server, axe_page):
    page = axe_page
    q = zoom_world(live_server, [(1600, 1200)])
    sign_in(page, live_server, RATER)
    page.goto(f"{live_server.url}/items/{q[0]}")
    wait_ready(page, q[0])
    page.evaluate(ZOOM_AND_WAIT_SHARP, 4)
    assert page.is_visible("#stage .deep-zoom")
    violations = axe_scan(page)
    assert not violations, [(v["id"], [n["target"] for n in v["nodes"]]) for v in violations]
