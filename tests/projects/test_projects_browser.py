"""Members and settings pages in Chromium: add a lead and a rater by e-mail, remove a rater with
confirmation, change the scale before labels exist and be refused after; axe-core at 390 and 1400 px."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from browser_support.fixtures import axe_scan, sign_in
from projects_fixtures import give_label
from sqlalchemy import select

from labeler.auth.models import Role, User
from labeler.auth.services import add_user
from labeler.projects.models import MemberRole, Project
from labeler.projects.services import create_project

pytestmark = pytest.mark.browser
WIDTHS = (390, 1400)
SHOTS = os.environ.get("LABELER_SCREENSHOTS")  # a folder: the tests also save what they saw


def shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


@pytest.fixture()
def study(live_server):
    """An admin, a lead, a rater account, and two projects the admin created (no lead yet)."""
    with live_server.session() as s:
        admin = add_user(s, None, "admin@study.test", "Ada Admin", {Role.admin})
        add_user(s, None, "lead@study.test", "Lea Lead", {Role.lead})
        add_user(s, None, "rater@study.test", "Rita Rater", {Role.rater})
        quality = create_project(s, admin, "Quality study", "quality")
        severity = create_project(s, admin, "Acne study", "severity")
        ids = {"quality": quality.id, "severity": severity.id}
    return live_server, ids


def members_of(server, project_id):
    with server.session() as s:
        project = s.get(Project, project_id)
        return {(s.get(User, m.user_id).email, m.role.value) for m in project.members}


def axe_content(page, width: int) -> list[dict]:
    """axe-core's serious and critical violations; below 600 px without the shared top bar, which
    overflows on phones until the base layout collapses its navigation (issue 15, rough edges)."""
    if width >= 600:
        return axe_scan(page)
    axe_scan(page)  # loads axe-core (and fails clearly when it is missing)
    result = page.evaluate(
        "async () => await axe.run({exclude: [['.topbar']]}, {resultTypes: ['violations']})"
    )
    return [v for v in result["violations"] if v.get("impact") in ("serious", "critical")]


def switch_to(page, server, email: str) -> None:
    """Sign out, then sign in as someone else."""
    page.click("#signout")
    page.wait_for_load_state()
    sign_in(page, server, email)


def no_sideways_scroll(page) -> bool:
    """The page's content fits the viewport (wide tables scroll inside their own box).

    The shared top bar is the base layout's, checked by its own tests."""
    return page.evaluate(
        "() => { const m = document.getElementById('main');"
        " return m.scrollWidth <= m.clientWidth && m.getBoundingClientRect().right <= innerWidth; }"
    )


def test_members_add_a_lead_and_raters_by_email_and_remove_a_rater(study, browser_page):
    server, ids = study
    page = browser_page
    url = f"{server.url}/projects/{ids['quality']}/members"
    sign_in(page, server, "admin@study.test")
    page.goto(url)
    assert page.locator("#no-members").is_visible()
    page.fill("#member-email", "lead@study.test")
    page.check("#role-lead")
    page.click("#add-member-button")
    assert "Added lead@study.test as lead" in page.locator(".flash").inner_text()
    page.fill("#member-email", "new.derm@clinic.test")  # no account yet: invited
    page.fill("#member-name", "Dr New")
    page.click("#add-member-button")
    assert "invited" in page.locator(".flash").inner_text()
    page.fill("#member-email", "rater@study.test")
    page.click("#add-member-button")  # rater is the default role
    assert members_of(server, ids["quality"]) == {
        ("lead@study.test", "lead"),
        ("new.derm@clinic.test", "rater"),
        ("rater@study.test", "rater"),
    }
    row = page.locator('tr[data-member="new.derm@clinic.test"]')
    assert "has not signed in yet" in row.inner_text()

    # the lead now sees the project (it was invisible: 403) and removes a rater, confirming first
    switch_to(page, server, "lead@study.test")
    page.goto(url)
    page.fill("#member-email", "co.lead@study.test")  # a co-lead, invited by the lead
    page.check("#role-lead")
    page.click("#add-member-button")
    assert "Added co.lead@study.test as lead (invited" in page.locator(".flash").inner_text()
    page.click('tr[data-member="rater@study.test"][data-role="rater"] button')
    confirm = page.locator("#confirm-remove")
    assert "Remove Rita Rater as a rater?" in confirm.inner_text()
    assert ("rater@study.test", "rater") in members_of(server, ids["quality"])  # not yet
    page.click("#confirm-remove-button")
    assert "Removed rater@study.test as rater" in page.locator(".flash").inner_text()
    assert ("rater@study.test", "rater") not in members_of(server, ids["quality"])
    assert ("co.lead@study.test", "lead") in members_of(server, ids["quality"])
    assert page.locator('tr[data-member="rater@study.test"]').count() == 0

    # a bad address is explained on the page
    page.fill("#member-email", "not-an-address")
    page.evaluate("document.getElementById('add-member').noValidate = true")
    page.click("#add-member-button")
    assert "not a valid e-mail" in page.locator("#members-error").inner_text()

    # a rater never sees the members page
    switch_to(page, server, "new.derm@clinic.test")
    response = page.goto(url)
    assert response.status == 403


def test_settings_change_the_scale_before_labels_and_are_refused_after(study, browser_page):
    server, ids = study
    page = browser_page
    with server.session() as s:
        project = s.get(Project, ids["severity"])
        lead = s.scalar(select(User).where(User.email == "lead@study.test"))
        from labeler.projects.services import add_member

        add_member(s, None, project, lead, MemberRole.lead)
    sign_in(page, server, "lead@study.test")
    url = f"{server.url}/projects/{ids['severity']}/settings"
    page.goto(url)
    assert page.locator("#migration").count() == 0  # no labels: nothing to confirm
    for i, (value, name) in enumerate(
        [("0", "Clear"), ("1", "Almost clear"), ("2", "Mild"), ("3", "Moderate"), ("4", "Severe")],
        start=1,
    ):
        page.fill(f"#scale-value-{i}", value)
        page.fill(f"#scale-name-{i}", name)
    page.check("#allow-non-graded")
    page.fill("#explanation-k", "2")
    page.click("#save-settings")
    assert page.locator(".flash").inner_text() == "Settings saved."
    with server.session() as s:
        settings = s.get(Project, ids["severity"]).settings
    assert [x["value"] for x in settings["scale"]] == [0, 1, 2, 3, 4]
    assert settings["allow_non_graded"] is True and settings["fusion"]["explanation_k"] == 2

    # a rater labels with the new scale; changing it now is refused without the migration
    with server.session() as s:
        project = s.get(Project, ids["severity"])
        rater = s.scalar(select(User).where(User.email == "rater@study.test"))
        give_label(s, project, rater, grade=3.0)
    page.goto(url)
    assert page.locator("#migration").is_visible()
    page.fill("#scale-name-4", "Moderate acne")
    page.click("#save-settings")
    error = page.locator("#settings-error").inner_text()
    assert "labels already carry the grades 3" in error
    assert page.input_value("#scale-name-4") == "Moderate acne"  # what was typed is kept
    with server.session() as s:
        assert s.get(Project, ids["severity"]).settings["scale"][3]["name"] == "Moderate"

    # confirming maps grade 3 to 3: the renaming goes through and the label keeps its grade
    page.check("#confirm-migration")
    page.click("#save-settings")
    assert page.locator(".flash").inner_text() == "Settings saved."
    with server.session() as s:
        assert s.get(Project, ids["severity"]).settings["scale"][3]["name"] == "Moderate acne"


@pytest.mark.parametrize("width", WIDTHS)
def test_members_and_settings_pages_pass_axe(study, axe_page, width):
    server, ids = study
    page = axe_page
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, server, "admin@study.test")
    with server.session() as s:
        project = s.get(Project, ids["severity"])
        for email, role in (
            ("lead@study.test", MemberRole.lead),
            ("rater@study.test", MemberRole.rater),
        ):
            from labeler.projects.services import add_member

            add_member(s, None, project, s.scalar(select(User).where(User.email == email)), role)
        give_label(
            s, project, s.scalar(select(User).where(User.email == "rater@study.test")), grade=2.0
        )
    violations = []
    pages = {
        "members": f"/projects/{ids['severity']}/members",
        "settings-severity": f"/projects/{ids['severity']}/settings",
        "settings-quality": f"/projects/{ids['quality']}/settings",
    }
    for name, path in pages.items():
        page.goto(server.url + path)
        violations += axe_content(page, width)
        shot(page, f"{name}-{width}")
        assert no_sideways_scroll(page), f"{name} overflows sideways at {width} px"
    page.goto(server.url + pages["members"])  # the confirmation step and an error
    page.click('tr[data-member="rater@study.test"][data-role="rater"] button')
    violations += axe_content(page, width)
    shot(page, f"members-confirm-{width}")
    page.goto(server.url + pages["settings-severity"])
    page.fill("#scale-value-2", "x")
    page.click("#save-settings")
    assert page.locator("#settings-error").is_visible()
    violations += axe_content(page, width)
    shot(page, f"settings-error-{width}")
    assert not violations, [
        (v["id"], v["impact"], v["help"], [n["target"] for n in v["nodes"]]) for v in violations
    ]
