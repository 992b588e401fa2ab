"""The cases settings on the settings page, the API and the CLI (validated in one place)."""

from __future__ import annotations

import json

from labeler.projects.settings import read_settings

BASE_FORM = {
    "method": "plurality",
    "explanation_k": "1",
    "min_pair_images": "1",
    "min_group_images": "30",
}


def test_settings_page_turns_the_case_view_on(db, client, make_user, make_project, login_as):
    lead = make_user(None, "lead")
    project = make_project(lead, protocol="severity")
    login_as(lead)
    url = f"/projects/{project.id}/settings"
    page = client.get(url).get_data(as_text=True)
    assert "Show all photos of a case together" in page
    assert 'value="case"' in page  # severity may answer once per case
    form = {
        **BASE_FORM,
        "csrf_token": client.csrf,
        "scale_value": ["1", "2", "3", "4", "5"],
        "scale_name": ["Clear", "Almost clear", "Mild", "Moderate", "Severe"],
        "cases_shown": "1",
        "case_view": "1",
        "case_unit": "case",
        "case_show": "age, history",
    }
    saved = client.post(url, data=form)
    assert saved.status_code == 302, saved.get_data(as_text=True)
    db.expire_all()
    s = read_settings(project.settings)
    assert (s.case_view, s.case_unit, s.case_show) == (True, "case", ("age", "history"))
    # per case without the case view is refused in words, nothing saved
    bad = client.post(url, data={**form, "case_view": "", "case_unit": "case"})
    assert bad.status_code == 422 and "needs the case view" in bad.get_data(as_text=True)


def test_quality_offers_only_an_answer_per_photo(db, client, make_user, make_project, login_as):
    lead = make_user(None, "lead")
    project = make_project(lead, protocol="quality")
    login_as(lead)
    page = client.get(f"/projects/{project.id}/settings").get_data(as_text=True)
    assert "Show all photos of a case together" in page
    assert '<option value="case"' not in page


def test_cli_sets_the_cases_section(runner, db, make_user, make_project):
    lead = make_user(None, "lead")
    project = make_project(lead, protocol="severity")
    db.flush()
    ok = runner.invoke(
        args=[
            *("projects", "settings", str(project.id)),
            *("--set", '{"cases": {"view": true, "unit": "case"}}'),
        ]
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["cases"] == {"view": True, "unit": "case", "show": []}
    bad = runner.invoke(
        args=["projects", "settings", str(project.id), "--set", '{"cases": {"unit": "photo"}}']
    )
    assert bad.exit_code != 0 and "labeling unit" in bad.output
