"""The capture page and the upload page's check in Chromium, with the quality model run by
onnxruntime-web in the page (camera replaced by files through set_input_files).

A 3-photo case is checked (a blurred photo flagged in words, retaken), accepted and uploaded as one
case; nothing is posted before the user presses Upload; the page keeps working, and says why, when
the project has no model or the model cannot be loaded; the lead's upload page warns per file; a
photo taken with the camera (getUserMedia fed from a file) is checked and uploaded.
"""
# ruff: noqa: F811  (fixtures imported from capture_fixtures are used as arguments)

from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path

import pytest
from browser_support.fixtures import CHROMIUM, CHROMIUM_ARGS, axe_scan, sign_in
from browser_support.live import serve
from capture_fixtures import ml_root, quality_model, skin_photo, trained_run  # noqa: F401
from PIL import Image as PILImage
from playwright.sync_api import expect
from sqlalchemy import select

from labeler.auth.models import Role
from labeler.auth.services import add_user
from labeler.images.models import Image
from labeler.projects.services import create_project

pytestmark = pytest.mark.browser
LEAD = "lead@capture.test"
BROKEN = "quality-20260101T000000-badbad"
DONE = re.compile(r"^(ok|warn|error)$")  # a verdict is shown
LOAD_MS = 90_000  # the first session compiles 14 MB of WebAssembly on a busy 2-core machine


@pytest.fixture()
def server(tmp_path, quality_model):
    """A live app whose ML folder holds the session's quality model and a broken copy of it."""
    models = tmp_path / "ml" / "models"
    shutil.copytree(quality_model.path, models / quality_model.id)
    shutil.copytree(quality_model.path, models / BROKEN)
    (models / BROKEN / "model.onnx").write_bytes(b"not an onnx model" * 100)
    with serve(
        tmp_path,
        os.environ.get("LABELER_TEST_DATABASE_URL"),
        ML_DIR=str(tmp_path / "ml"),
        ML_SPAWN_WORKER=False,
    ) as live:
        with live.session() as s:
            lead = add_user(s, None, LEAD, "Lena Lead", {Role.lead})
            s.flush()
            ids = {}
            for name, model_id in (
                ("with", quality_model.id),
                ("without", None),
                ("broken", BROKEN),
            ):
                project = create_project(s, lead, f"Capture {name}", "quality")
                s.flush()
                if model_id:
                    s.add(trained_run(project.id, model_id))
                ids[name] = project.id
        live.ids = ids
        yield live


@pytest.fixture()
def photos(tmp_path) -> dict[str, Path]:
    out = {}
    for name, data in (
        ("good1.jpg", skin_photo(0)),
        ("good2.jpg", skin_photo(2)),
        ("good3.jpg", skin_photo(3)),
        ("blurred.jpg", skin_photo(1, blur=5)),
        ("large.jpg", skin_photo(4, size=(2048, 1536))),  # decoded at 1/4 scale by both
    ):
        out[name] = tmp_path / name
        out[name].write_bytes(data)
    return out


def _posts(page) -> list[str]:
    posted: list[str] = []
    page.on("request", lambda r: posted.append(r.url) if r.method == "POST" else None)
    return posted


def _add(page, path: Path) -> None:
    before = page.locator("#photos li.photo").count()
    page.set_input_files("#photo-input", str(path))
    expect(page.locator("#photos li.photo")).to_have_count(before + 1)


def test_capture_checks_flags_retakes_and_uploads_a_case(browser_page, server, photos):
    page = browser_page
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text))
    sign_in(page, server, LEAD)
    pid = server.ids["with"]
    page.goto(f"{server.url}/projects/{pid}/capture")
    expect(page.locator("#check-status")).to_have_attribute("data-state", "ready", timeout=LOAD_MS)
    assert page.evaluate("() => self.crossOriginIsolated")  # COOP/COEP: ORT may use threads
    posted = _posts(page)
    for name in ("good1.jpg", "good2.jpg", "blurred.jpg"):
        _add(page, photos[name])
    verdicts = page.locator("#photos li.photo .verdict")
    for i in range(3):
        expect(verdicts.nth(i)).to_have_attribute("data-verdict", DONE, timeout=30_000)
    assert [verdicts.nth(i).get_attribute("data-verdict") for i in range(3)] == ["ok", "ok", "warn"]
    expect(verdicts.nth(0)).to_have_text("Looks good.")
    blurry = verdicts.nth(2).locator("li[data-issue=blurry]")
    expect(blurry).to_contain_text("Blurry")
    expect(blurry).to_contain_text("hold the camera steady")
    # a warning holds the upload until the user accepts it or retakes the photo
    expect(page.locator("#upload")).to_be_disabled()
    expect(page.locator("#accept-row")).to_be_visible()
    expect(page.locator("#photo-input")).to_be_disabled()  # 3 of 3
    with page.expect_file_chooser() as chooser:
        page.locator("#photos li.photo").nth(2).get_by_role("button", name="Retake").click()
    chooser.value.set_files(str(photos["good3.jpg"]))
    expect(verdicts.nth(2)).to_have_attribute("data-verdict", "ok", timeout=30_000)
    expect(page.locator("#accept-row")).to_be_hidden()
    expect(page.locator("#upload")).to_be_enabled()
    expect(page.locator("#upload")).to_have_text("Upload case (3 photos)")
    times = [
        float(page.locator("#photos li.photo").nth(i).get_attribute("data-check-ms"))
        for i in range(3)
    ]
    assert all(t > 0 for t in times)
    assert posted == []  # nothing left the device before the user accepted
    page.fill("#case-id", "C-1")
    page.fill("#body-site", "left forearm")
    page.click("#upload")
    expect(page.locator("#result-line")).to_contain_text(
        "Case C-1: 3 imported, 0 duplicates, 0 rejected"
    )
    assert posted == [f"{server.url}/projects/{pid}/capture"]
    expect(page.locator("#photos li.photo")).to_have_count(0)
    with server.session() as s:
        rows = s.scalars(select(Image).where(Image.project_id == pid)).all()
        assert sorted(r.filename for r in rows) == ["good1.jpg", "good2.jpg", "good3.jpg"]
        assert {(r.case_id, r.body_site) for r in rows} == {("C-1", "left forearm")}
    assert not [m for m in console if "numThreads" in m or "Content Security Policy" in m]


def test_a_warned_photo_may_be_uploaded_once_accepted(browser_page, server, photos):
    page = browser_page
    sign_in(page, server, LEAD)
    pid = server.ids["with"]
    page.goto(f"{server.url}/projects/{pid}/capture")
    expect(page.locator("#check-status")).to_have_attribute("data-state", "ready", timeout=LOAD_MS)
    _add(page, photos["blurred.jpg"])
    verdict = page.locator("#photos li.photo .verdict")
    expect(verdict).to_have_attribute("data-verdict", "warn", timeout=30_000)
    expect(page.locator("#upload")).to_be_disabled()
    page.check("#accept-warnings")
    page.click("#upload")
    expect(page.locator("#result-line")).to_contain_text("1 imported")
    with server.session() as s:
        row = s.scalars(select(Image).where(Image.project_id == pid)).one()
        assert row.case_id.startswith("case-") and row.body_site is None


@pytest.mark.parametrize(
    ("project", "says"),
    [
        ("without", "No quality model has been trained for this project yet"),
        ("broken", "The quality check could not start in this browser"),
    ],
)
def test_the_page_works_without_a_model(browser_page, server, photos, project, says):
    page = browser_page
    page.on("console", lambda m: None)
    sign_in(page, server, LEAD)
    pid = server.ids[project]
    page.goto(f"{server.url}/projects/{pid}/capture")
    status = page.locator("#check-status")
    expect(status).to_have_attribute("data-state", "unavailable", timeout=LOAD_MS)
    expect(status).to_contain_text(says)
    _add(page, photos["good1.jpg"])
    _add(page, photos["blurred.jpg"])
    expect(page.locator("#photos .verdict").nth(1)).to_have_text("Not checked on this device.")
    expect(page.locator("#upload")).to_be_enabled()
    page.fill("#body-site", "back")
    page.click("#upload")
    expect(page.locator("#result-line")).to_contain_text("2 imported")
    with server.session() as s:
        rows = s.scalars(select(Image).where(Image.project_id == pid)).all()
        assert len(rows) == 2 and len({r.case_id for r in rows}) == 1


def test_capture_page_layout_and_axe(axe_page, server, photos, tmp_path):
    page = axe_page
    sign_in(page, server, LEAD)
    page.goto(f"{server.url}/projects/{server.ids['with']}/capture")
    expect(page.locator("#check-status")).to_have_attribute("data-state", "ready", timeout=LOAD_MS)
    for name in ("good1.jpg", "blurred.jpg"):
        _add(page, photos[name])
    expect(page.locator("#photos .verdict").nth(1)).to_have_attribute(
        "data-verdict", "warn", timeout=30_000
    )
    for width, height in ((390, 844), (1400, 900), (2560, 1440)):
        page.set_viewport_size({"width": width, "height": height})
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        if width < 2560:
            assert axe_scan(page) == []
        if os.environ.get("LABELER_SCREENSHOTS"):
            page.screenshot(path=str(tmp_path / f"capture-{width}.png"), full_page=True)


def test_the_upload_page_warns_before_upload(browser_page, server, photos):
    page = browser_page
    sign_in(page, server, LEAD)
    pid = server.ids["with"]
    page.goto(f"{server.url}/projects/{pid}/upload")
    posted = _posts(page)
    page.set_input_files("#files", [str(photos["good1.jpg"]), str(photos["blurred.jpg"])])
    status = page.locator("#check-status")
    expect(status).to_contain_text("1 of 2 checked photos have warnings", timeout=LOAD_MS)
    blurred = page.locator("#file-checks li[data-file='blurred.jpg'] .verdict")
    expect(blurred).to_have_attribute("data-verdict", "warn")
    expect(blurred.locator("li[data-issue=blurry]")).to_contain_text("Blurry")
    expect(page.locator("#file-checks li[data-file='good1.jpg'] .verdict")).to_have_attribute(
        "data-verdict", "ok"
    )
    assert posted == []
    page.get_by_role("button", name="Upload", exact=True).click()  # the lead decides: both go
    page.wait_for_load_state()
    expect(page.locator("#summary")).to_contain_text("2 imported")


@pytest.fixture()
def camera_browser(chromium_browser, tmp_path):
    """A second Chromium whose camera is a file (a plain JPEG named .mjpeg is a fake video stream)."""
    frame = tmp_path / "camera.mjpeg"
    still = PILImage.open(io.BytesIO(skin_photo(2))).resize((1280, 960))
    still.save(frame, "JPEG", quality=92)
    browser = chromium_browser.browser_type.launch(
        executable_path=CHROMIUM,
        args=[
            *CHROMIUM_ARGS,
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={frame}",
        ],
    )
    try:
        yield browser
    finally:
        browser.close()


def test_a_photo_taken_with_the_camera_is_checked_and_uploaded(camera_browser, server):
    context = camera_browser.new_context(viewport={"width": 1000, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        sign_in(page, server, LEAD)
        pid = server.ids["with"]
        page.goto(f"{server.url}/projects/{pid}/capture")
        expect(page.locator("#check-status")).to_have_attribute(
            "data-state", "ready", timeout=LOAD_MS
        )
        page.get_by_role("button", name="Use the camera").click()
        expect(page.locator("#camera")).to_be_visible()
        page.wait_for_function("() => document.getElementById('camera-video').videoWidth > 0")
        page.get_by_role("button", name="Take photo").click()
        verdict = page.locator("#photos li.photo .verdict")
        expect(verdict).to_have_attribute("data-verdict", DONE, timeout=30_000)
        page.get_by_role("button", name="Close the camera").click()
        expect(page.locator("#camera")).to_be_hidden()
        if verdict.get_attribute("data-verdict") == "warn":
            page.check("#accept-warnings")
        page.click("#upload")
        expect(page.locator("#result-line")).to_contain_text("1 imported")
    finally:
        context.close()
    assert not errors
    with server.session() as s:
        row = s.scalars(select(Image).where(Image.project_id == pid)).one()
        assert (row.filename, row.width, row.height) == ("camera-1.jpg", 1280, 960)


CHECK_FILE = """async ([settingsUrl, name, b64]) => {
  const { loadQualityCheck } = await import('/static/js/quality-check.js');
  const checker = await loadQualityCheck(settingsUrl);
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  return await checker.check(new File([bytes], name, { type: 'image/jpeg' }));
}"""


def test_the_browser_agrees_with_the_server(browser_page, server, photos, quality_model):
    """The page's verdict on a photo is the server's (labeler.ml.predict) on the same bytes, up to
    the small difference between the browser's and Pillow's decode and resize (measured: at most
    0.005 on 256 px photos)."""
    import base64

    from labeler.ml import load_model, predict

    page = browser_page
    sign_in(page, server, LEAD)
    pid = server.ids["with"]
    page.goto(f"{server.url}/projects/{pid}/capture")
    expect(page.locator("#check-status")).to_have_attribute("data-state", "ready", timeout=LOAD_MS)
    model = load_model(quality_model.path)
    for name in ("good1.jpg", "blurred.jpg", "large.jpg"):
        data = photos[name].read_bytes()
        seen = page.evaluate(
            CHECK_FILE,
            [f"/projects/{pid}/quality-check", name, base64.b64encode(data).decode()],
        )
        want = predict(model, data, cams=False)
        assert seen["className"] == want["class"], name
        for cls, p in want["probabilities"].items():
            assert abs(seen["probabilities"][cls] - p) < 0.05, (name, cls, seen, want)
        for expl, p in want["explanations"].items():
            assert abs(seen["explanations"][expl] - p) < 0.05, (name, expl, seen, want)
        assert sorted(i["name"] for i in seen["issues"]) == sorted(
            i["name"] for i in want["issues"]
        )
