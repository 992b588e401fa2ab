"""The models page's run controls in Chromium: a lead cancels a queued run and is offered to run it
again, at phone and desktop widths, with no serious or critical axe-core finding."""

from __future__ import annotations

import os

import pytest
from browser_support.fixtures import axe_scan, sign_in

from labeler.auth.models import Role
from labeler.auth.services import add_user
from labeler.projects.services import create_project
from labeler.training.models import ModelKind, RunStatus, TrainingRun

pytestmark = pytest.mark.browser
LEAD = "lead@runs.test"


def test_lead_cancels_a_run_on_the_models_page(axe_page, live_server, tmp_path):
    page, server = axe_page, live_server
    with server.session() as s:
        lead = add_user(s, None, LEAD, "Lena Lead", {Role.lead})
        s.flush()
        project = create_project(s, lead, "Photo quality", "quality")
        s.flush()
        failed = TrainingRun(
            project_id=project.id,
            kind=ModelKind.quality,
            status=RunStatus.failed,
            error="the worker stopped reporting (75 s without a heartbeat; it was on gpu-1): "
            "it was probably stopped or its machine failed. Run it again",
        )
        queued = TrainingRun(project_id=project.id, kind=ModelKind.quality, status=RunStatus.queued)
        s.add_all([failed, queued])
        s.commit()
        pid, queued_id, failed_id = project.id, queued.id, failed.id
    sign_in(page, server, LEAD, f"/projects/{pid}/models")
    page.goto(f"{server.url}/projects/{pid}/models")
    cancel = page.get_by_role("button", name=f"Cancel run {queued_id}")
    assert cancel.is_visible()
    assert page.get_by_role("button", name=f"Run {failed_id} again").is_visible()
    for width, height in ((390, 844), (1400, 900)):
        page.set_viewport_size({"width": width, "height": height})
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        assert axe_scan(page) == []
        if os.environ.get("LABELER_SCREENSHOTS"):
            page.screenshot(path=str(tmp_path / f"models-{width}.png"), full_page=True)
    cancel.click()
    page.wait_for_load_state()
    assert f"Training run {queued_id} cancelled." in page.content()
    row = page.locator(f"tr.run[data-run-id='{queued_id}']")
    assert "cancelled" in row.locator(".status").inner_text()
    assert "cancelled by Lena Lead" in row.inner_text()
    assert page.get_by_role("button", name=f"Run {queued_id} again").is_visible()
    with server.session() as s:
        assert s.get(TrainingRun, queued_id).status is RunStatus.cancelled
