"""Without the ML packages, the Models page, the form and the API tell a lead in plain words that
model training is not enabled on this server (and that an administrator can enable it)."""

from __future__ import annotations

import sys

import pytest
from sqlalchemy import func, select

from labeler import ml
from labeler.auth.services import create_token
from labeler.training.models import TrainingRun

DEVELOPER_WORDS = ("pip", "extra", "torch", "install -e", "onnx", "module", "import")


@pytest.fixture()
def without_torch(monkeypatch):
    """The server as installed without the `ml` extra: importing torch fails."""
    monkeypatch.setitem(sys.modules, "torch", None)
    assert ml.missing_package() == "torch"


def _plain(text: str) -> None:
    assert "Model training is not enabled on this server" in text
    assert "An administrator can enable it" in text
    lowered = text.lower()
    assert not [w for w in DEVELOPER_WORDS if w in lowered], text


def test_missing_package_is_found_without_importing(monkeypatch):
    assert ml.missing_package() is None  # the test environment has the ML stack
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert ml.missing_package() == "onnxruntime"


def test_models_page_speaks_a_leads_language(
    app, client, db, make_user, make_project, login_as, without_torch
):
    lead = make_user(None, "lead")
    project = make_project(lead)
    db.flush()
    login_as(lead)
    page = client.get(f"/projects/{project.id}/models")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    notice = html.split('id="training-unavailable"', 1)[1].split("</p>", 1)[0]
    _plain(notice)
    assert 'id="train-form"' not in html  # no button that can only fail

    # a form sent from a page loaded before (or by hand): the same words, and no run is queued
    sent = client.post(
        f"/projects/{project.id}/models/train",
        data={"kind": "quality", "csrf_token": client.csrf},
    )
    assert sent.status_code == 503
    body = sent.get_data(as_text=True)
    _plain(body.split('class="error"', 1)[1].split("</p>", 1)[0])
    assert db.scalar(select(func.count(TrainingRun.id))) == 0


def test_training_api_answers_503_in_plain_words(
    app, client, db, make_user, make_project, without_torch
):
    lead = make_user(None, "lead")
    project = make_project(lead)
    token = create_token(db, lead, lead, "t")[1]
    db.flush()
    resp = client.post(
        f"/api/v1/projects/{project.id}/training-runs",
        json={},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status_code == 503
    _plain(resp.json["error"]["message"])
    assert db.scalar(select(func.count(TrainingRun.id))) == 0


def test_models_page_offers_training_when_the_packages_are_there(
    app, client, db, make_user, make_project, login_as
):
    lead = make_user(None, "lead")
    project = make_project(lead)
    db.flush()
    login_as(lead)
    html = client.get(f"/projects/{project.id}/models").get_data(as_text=True)
    assert 'id="train-form"' in html and 'id="training-unavailable"' not in html


def test_the_models_page_offers_fine_tuning_for_the_quality_model(
    app, db, make_user, make_project, login_as, monkeypatch
):
    """The training form takes how many backbone blocks to fine-tune (quality models only), says in
    words that more than 0 needs a GPU worker, passes it to the run, and refuses a bad value in words."""
    from labeler.training import views

    lead = make_user(None, "lead")
    quality, severity = make_project(lead), make_project(lead, protocol="severity")
    db.flush()
    client = login_as(lead)
    html = client.get(f"/projects/{quality.id}/models").get_data(as_text=True)
    assert 'name="fine_tune_blocks"' in html and "graphics card (GPU)" in html
    assert 'name="fine_tune_blocks"' not in client.get(f"/projects/{severity.id}/models").get_data(
        as_text=True
    )

    form = {"csrf_token": client.csrf, "kind": "quality", "seed": "0", "epochs": ""}
    bad = client.post(
        f"/projects/{quality.id}/models/train", data={**form, "fine_tune_blocks": "99"}
    )
    assert bad.status_code == 422
    assert (
        "number of blocks to fine-tune (fine_tune_blocks) must be between 0 and 16"
        in bad.get_data(as_text=True)
    )
    assert db.scalar(select(func.count(TrainingRun.id))) == 0

    started = {}

    def launch(*_args, **kw):  # the form's values reach the one starter of runs
        started.update(kw)
        raise ml.MLUnavailable("stop here")

    monkeypatch.setattr(views, "launch_run", launch)
    client.post(f"/projects/{quality.id}/models/train", data={**form, "fine_tune_blocks": "2"})
    assert started["fine_tune_blocks"] == "2" and started["kind"] == "quality"
    client.post(f"/projects/{quality.id}/models/train", data={**form, "fine_tune_blocks": ""})
    assert started["fine_tune_blocks"] is None  # an emptied field: the default, 0
