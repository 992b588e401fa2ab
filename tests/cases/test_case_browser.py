"""The case page in Chromium: a 3-photo case labeled by keyboard, per case and per photo; enlarge
with a key and Esc back; shared brightness; the next case prefetched; axe at 390 and 1400 px."""

from __future__ import annotations

import re

import pytest
from browser_support.fixtures import axe_scan, open_page, sign_in
from case_fixtures import photo_bytes, seed_cases
from sqlalchemy import select

from labeler.allocation.models import QueueItem
from labeler.labeling.models import Label

pytestmark = pytest.mark.browser
RATER = "rater@cases.test"


def seed(server, protocol, unit, cases, **more):
    with server.session() as s:
        return seed_cases(
            s,
            server.app.extensions["labeler_storage"],
            protocol=protocol,
            settings={"cases": {"view": True, "unit": unit, "show": ["age"]}, **more},
            cases=cases,
            rater_email=RATER,
        )


def wait_case(page):
    page.wait_for_url(re.compile(r"/cases/[^/]+$"))
    page.wait_for_selector('#case-page[data-ready="true"]', state="attached")
    page.wait_for_function(
        "() => { const imgs = [...document.querySelectorAll('#photos img')];"
        " return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); }"
    )


def case_id(page) -> str:
    return page.url.rsplit("/", 1)[-1]


def labels_of_case(server, ref):
    """The rater's labels of the case named ``ref``, in the photos' queue order."""
    with server.session() as s:
        first = s.scalar(select(QueueItem).where(QueueItem.public_id == ref))
        from labeler.auth.models import User
        from labeler.cases.queue import case_of

        rater = s.get(User, first.rater_id)
        out = []
        for item, _img in case_of(s, rater, first):
            label = s.scalar(
                select(Label).where(Label.rater_id == rater.id, Label.image_id == item.image_id)
            )
            out.append(label)
        return out


def next_case_in_url(page, before):
    page.wait_for_function(f"() => !location.pathname.endsWith('/{before}')")
    wait_case(page)


def test_per_case_by_keyboard(chromium_browser, live_server):
    pid = seed(live_server, "severity", "case", {"a": 3, "b": 3, "c": 3})
    for page in open_page(chromium_browser):
        sign_in(page, live_server, RATER)
        page.goto(f"{live_server.url}/projects/{pid}/next-case")
        wait_case(page)
        assert page.locator("#photos figure").count() == 3
        assert "Body site: cheek" in page.inner_text("#photos")
        assert "age: 40-49" in page.inner_text("#photos")
        # grades take the digits here, so Shift+2 enlarges photo 2 and Esc brings all back
        page.keyboard.press("Shift+Digit2")
        assert page.eval_on_selector("#case-page", "e => e.classList.contains('enlarged')")
        assert page.locator("#photos figure.is-enlarged").get_attribute("data-index") == "1"
        assert page.locator("#photos figure:not(.is-enlarged)").first.is_hidden()
        page.keyboard.press("Escape")
        assert not page.eval_on_selector("#case-page", "e => e.classList.contains('enlarged')")
        # brightness is shared: every photo follows the slider
        page.fill("#brightness", "150")
        page.dispatch_event("#brightness", "input")
        filters = page.eval_on_selector_all("#photos img", "els => els.map(e => e.style.filter)")
        assert len(set(filters)) == 1 and "brightness(150%)" in filters[0]
        page.locator("#photos .stage").first.focus()
        page.keyboard.press("Escape")
        seen = []
        for grade in ("3", "2", "4"):
            ref = case_id(page)
            seen.append(ref)
            page.keyboard.press(grade)
            assert page.is_checked(f"#label-form input[data-grade='{grade}']")
            page.keyboard.press("Enter")
            if len(seen) < 3:
                next_case_in_url(page, ref)
            else:
                page.wait_for_selector("#all-done", state="visible")
            labels = labels_of_case(live_server, ref)
            assert len(labels) == 3 and all(lbl is not None for lbl in labels)
            assert {(lbl.grade, lbl.version) for lbl in labels} == {(float(grade), 1)}
            assert len({lbl.submission_id for lbl in labels}) == 1
            if len(seen) < 3:  # the case just saved stays one click away
                link = page.get_attribute("#saved-case-link", "href")
                assert link.endswith(f"/cases/{ref}")
        assert len(set(seen)) == 3
        timings = page.evaluate("() => window.caseTimings")
        assert len(timings) == 2 and all(t["painted"] > 0 for t in timings)


def test_per_image_by_keyboard(chromium_browser, live_server):
    pid = seed(live_server, "quality", "image", {"a": 3, "b": 3})
    for page in open_page(chromium_browser):
        sign_in(page, live_server, RATER)
        page.goto(f"{live_server.url}/projects/{pid}/next-case")
        wait_case(page)
        ref = case_id(page)
        # quality keeps the digits free: 3 enlarges photo 3 and makes it the one answered
        page.keyboard.press("3")
        assert page.locator("#photos figure.is-enlarged").get_attribute("data-index") == "2"
        assert page.inner_text("#current-photo") == "3"
        page.keyboard.press("Escape")
        page.keyboard.press("1")
        page.keyboard.press("Escape")
        page.keyboard.press("N")  # photo 1: no skin
        page.keyboard.press("Enter")  # on to photo 2
        assert page.inner_text("#current-photo") == "2"
        page.keyboard.press("H")
        page.keyboard.press("Enter")
        assert page.inner_text("#current-photo") == "3"
        page.keyboard.press("P")
        page.keyboard.press("B")  # blurry
        assert "Photo 3: Poor quality" in page.inner_text("#photo-answers")
        page.keyboard.press("Enter")  # every photo answered: saves the case
        next_case_in_url(page, ref)
        labels = labels_of_case(live_server, ref)
        assert [lbl.decision for lbl in labels] == ["no_skin", "healthy_skin", "poor_quality"]
        assert labels[2].explanations == ["blurry"]
        # the page of the case just saved shows each photo's answer
        page.goto(f"{live_server.url}/cases/{ref}")
        wait_case(page)
        assert "Photo 1: No skin" in page.inner_text("#photo-answers")
        assert "Photo 3: Poor quality" in page.inner_text("#photo-answers")


def test_per_case_with_the_skin_type_question(chromium_browser, live_server):
    """Grades take the digits and the skin type Shift+digits: [ and ] step through the photos."""
    pid = seed(live_server, "severity", "case", {"a": 3, "b": 3}, ask_skin_type=True)
    for page in open_page(chromium_browser):
        sign_in(page, live_server, RATER)
        page.goto(f"{live_server.url}/projects/{pid}/next-case")
        wait_case(page)
        ref = case_id(page)
        page.keyboard.press("]")
        assert page.locator("#photos figure.is-enlarged").get_attribute("data-index") == "1"
        page.keyboard.press("]")
        assert page.locator("#photos figure.is-enlarged").get_attribute("data-index") == "2"
        page.keyboard.press("Escape")
        page.keyboard.press("2")
        page.keyboard.press("Shift+Digit4")
        assert page.is_checked("#skin-type-4") and page.is_checked("#grade-2")
        page.keyboard.press("Enter")
        next_case_in_url(page, ref)
        labels = labels_of_case(live_server, ref)
        assert {(lbl.grade, lbl.skin_type) for lbl in labels} == {(2.0, 4)}


@pytest.mark.parametrize("width,height", [(390, 844), (1400, 900), (2560, 1440)])
def test_case_page_layout_and_axe(chromium_browser, live_server, width, height):
    pid = seed(live_server, "severity", "case", {"a": 3})
    for page in open_page(chromium_browser, bypass_csp=True):
        page.set_viewport_size({"width": width, "height": height})
        sign_in(page, live_server, RATER)
        page.goto(f"{live_server.url}/projects/{pid}/next-case")
        wait_case(page)
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
        boxes = page.eval_on_selector_all(
            "#photos .stage", "els => els.map(e => e.getBoundingClientRect().toJSON())"
        )
        assert len(boxes) == 3 and all(b["width"] > 100 and b["height"] > 100 for b in boxes)
        if width < 900:  # phones: the photos stack
            assert len({round(b["left"]) for b in boxes}) == 1
        else:  # side by side
            assert len({round(b["top"]) for b in boxes}) == 1
        if width <= 1400:
            problems = [(v["id"], [n["target"] for n in v["nodes"][:3]]) for v in axe_scan(page)]
            assert problems == []


def test_each_photo_zooms_to_full_resolution(chromium_browser, live_server):
    """Zoomed in, a photo of the case is drawn from its own deep-zoom tiles (OpenSeadragon), served
    under that photo's opaque item id, as on the labeling page; the other photos stay as they were."""
    from labeler.allocation import services as allocation
    from labeler.auth.models import Role
    from labeler.auth.services import add_user
    from labeler.demo import MemorySource
    from labeler.images.services import import_images, run_import_hooks
    from labeler.projects.services import create_project, update_settings

    storage = live_server.app.extensions["labeler_storage"]
    with live_server.session() as s:
        rater = add_user(s, None, RATER, "Rater", [Role.rater])
        project = create_project(s, None, "Zoomed cases", "quality")
        update_settings(s, None, project, {"cases": {"view": True, "unit": "image"}})
        names = [f"z{i}.jpg" for i in range(3)]
        sources = [MemorySource(n, photo_bytes(i, (2400, 1800))) for i, n in enumerate(names)]
        manifest = {n: {"case_id": "z", "body_site": "back", "meta": {}} for n in names}
        summary = import_images(
            s,
            None,
            project,
            sources,
            storage=storage,
            source_label="t",
            manifest=manifest,
            checkpoint=s.flush,
        )
        run_import_hooks(s, live_server.app.config, project, summary, storage)
        allocation.allocate(s, None, project, [rater], golden_size=0, overlap=1, seed=1)
        pid = project.id
    tile_urls: list[str] = []

    def note_tile(request):
        if "/tiles/" in request.url:
            tile_urls.append(request.url)

    for page in open_page(chromium_browser):
        page.on("request", note_tile)
        sign_in(page, live_server, RATER)
        page.goto(f"{live_server.url}/projects/{pid}/next-case")
        wait_case(page)
        assert page.locator("#photos figure").count() == 3
        page.keyboard.press("2")  # photo 2, enlarged
        for _ in range(8):
            page.keyboard.press("+")
        page.wait_for_function(
            "() => document.querySelectorAll('#photos .stage')[1].dataset.deepZoom === 'on'"
        )
        page.wait_for_selector("#photos figure.is-enlarged .deep-zoom", state="visible")
        second = page.eval_on_selector_all("#photos figure", "f => f.map(x => x.dataset.index)")
        assert second == ["0", "1", "2"]
        photo2 = page.evaluate(
            "() => JSON.parse(document.getElementById('case-page').dataset.state).case.photos[1].item"
        )
        assert tile_urls and all(f"/items/{photo2}/tiles" in u for u in tile_urls)
        assert page.eval_on_selector_all(
            "#photos .stage", "s => s.map(x => x.dataset.deepZoom)"
        ) == ["off", "on", "off"]


def test_a_case_saves_where_the_browser_has_no_random_uuid(chromium_browser, live_server):
    """crypto.randomUUID exists only in secure contexts (HTTPS or localhost): a server reached over
    plain HTTP by its address has none, and saving a case must still work (as on the labeling page)."""
    pid = seed(live_server, "severity", "case", {"a": 2, "b": 2})
    for page in open_page(chromium_browser):
        page.add_init_script("delete Crypto.prototype.randomUUID;")
        sign_in(page, live_server, RATER)
        page.goto(f"{live_server.url}/projects/{pid}/next-case")
        wait_case(page)
        assert page.evaluate("() => typeof crypto.randomUUID") == "undefined"
        ref = case_id(page)
        page.keyboard.press("3")
        page.keyboard.press("Enter")
        next_case_in_url(page, ref)
        labels = labels_of_case(live_server, ref)
        assert [lbl.grade for lbl in labels] == [3.0, 3.0]
        assert len({lbl.submission_id for lbl in labels}) == 1 and labels[0].submission_id


def test_a_held_s_skips_one_case(chromium_browser, live_server):
    """S skips at once (no reason form): a held key's repeats, S pressed again while the skip is on
    its way, or again as the next case appears, must not skip the cases that follow unseen."""
    pid = seed(live_server, "severity", "case", {"a": 2, "b": 2, "c": 2})
    for page in open_page(chromium_browser):
        sign_in(page, live_server, RATER)
        page.goto(f"{live_server.url}/projects/{pid}/next-case")
        wait_case(page)
        first = case_id(page)
        # and once more the moment the next case appears: a double press that a fast server outran
        page.evaluate(
            """(first) => { window.lateS = (async () => {
                while (location.pathname.endsWith('/' + first))
                    await new Promise((r) => requestAnimationFrame(r));
                document.dispatchEvent(new KeyboardEvent('keydown',
                    {key: 's', code: 'KeyS', bubbles: true}));
            })(); }""",
            first,
        )
        page.keyboard.press("s")
        page.keyboard.press("s")  # again while the first skip is on its way
        next_case_in_url(page, first)
        page.evaluate("() => window.lateS")
        second = case_id(page)
        for _ in range(5):  # what a held key sends after its first press
            page.evaluate(
                "() => document.dispatchEvent(new KeyboardEvent('keydown',"
                " {key: 's', code: 'KeyS', repeat: true, bubbles: true}))"
            )
        page.wait_for_timeout(500)
        assert case_id(page) == second
        with live_server.session() as s:
            statuses = s.scalars(select(QueueItem.status)).all()
        assert sorted(st.value for st in statuses) == ["pending"] * 4 + ["skipped"] * 2
