"""The Models page offers only the kind of model the project can train (its protocol's)."""

from __future__ import annotations

import pytest

from labeler.training import views as training_views


@pytest.mark.parametrize("protocol, other", [("quality", "severity"), ("severity", "quality")])
def test_models_page_offers_only_the_projects_kind(
    client, db, make_user, make_project, login_as, monkeypatch, protocol, other
):
    monkeypatch.setattr(training_views, "training_unavailable", lambda: None)  # training enabled
    lead = make_user(None, "lead")
    project = make_project(lead, protocol=protocol)
    db.flush()
    login_as(lead)
    html = client.get(f"/projects/{project.id}/models").get_data(as_text=True)
    form = html.split('id="train-form"', 1)[1].split("</form>", 1)[0]
    assert f'name="kind" value="{protocol}"' in form
    assert f'value="{other}"' not in form and "<select" not in form.split("Seed")[0]
