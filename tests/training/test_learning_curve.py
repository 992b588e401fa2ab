"""The learning curve on the Models page: `labeler ml simulate-active` runs the active-learning
simulation on a project's own labels and stores it; the page draws it (SVG with title and description,
and a table with the same numbers) and never computes it."""
# ruff: noqa: F811  (fixtures imported from training_fixtures are used as arguments)

from __future__ import annotations

import json
import re

from training_fixtures import build_quality_project, ml_app, ml_root  # noqa: F401

from labeler.training.simulations import curve_points, read_simulation, simulation_key

SIM = {
    "sizes": [20, 40, 60, 80],
    "random_f1": [0.41, 0.55, 0.71, 0.86],
    "uncertainty_f1": [0.41, 0.74, 0.84, 0.86],
    "target_f1": 0.817,
    "labels_to_target": {"random": 80, "uncertainty": 60},
    "seed": 0,
    "pool": 80,
    "held_out": 24,
    "step": 20,
    "project_id": 0,
    "created_at": "2026-11-30T17:00:00+00:00",
}


def test_the_models_page_draws_the_stored_curve(app, db, make_user, make_project, login_as):
    lead = make_user(None, "lead")
    project = make_project(lead)
    client = login_as(lead)
    page = client.get(f"/projects/{project.id}/models").get_data(as_text=True)
    assert 'id="no-curve"' in page and "<polyline" not in page  # nothing stored: nothing drawn
    app.extensions["labeler_storage"].put(
        simulation_key(project.id), json.dumps({**SIM, "project_id": project.id}).encode()
    )
    page = client.get(f"/projects/{project.id}/models").get_data(as_text=True)
    assert 'aria-labelledby="curve-title curve-desc"' in page
    assert '<title id="curve-title">Learning curve' in page
    desc = re.search(r'<desc id="curve-desc">(.*?)</desc>', page, re.DOTALL).group(1)
    assert "24 golden images" in desc and "80 fold images" in desc and "with 60 labels" in desc
    assert page.count("<polyline") == 2
    rows = re.findall(
        r"<tr><th scope=\"row\">(\d+)</th><td>([\d.]+)</td><td>([\d.]+)</td></tr>", page
    )
    assert rows == [
        ("20", "0.410", "0.410"),
        ("40", "0.740", "0.550"),
        ("60", "0.840", "0.710"),
        ("80", "0.860", "0.860"),
    ]
    summary = re.search(r'<p id="curve-summary">(.*?)</p>', page, re.DOTALL).group(1)
    assert "60 labels" in summary and "80" in summary


def test_a_severity_project_has_no_curve_section(app, db, make_user, make_project, login_as):
    lead = make_user(None, "lead")
    project = make_project(lead, protocol="severity")
    page = login_as(lead).get(f"/projects/{project.id}/models").get_data(as_text=True)
    assert 'id="learning"' not in page


def test_curve_geometry_maps_f1_and_labels_onto_the_plot():
    g = curve_points(SIM, width=640, height=300)
    first = g["points"]["uncertainty"][0]
    last = g["points"]["random"][-1]
    assert last[0] == g["right"]  # every label: the right edge
    assert first[0] == round(g["left"] + (g["right"] - g["left"]) * 20 / 80, 1)
    # macro F1 1.0 at the top of the plot, 0 at its bottom
    assert g["y_ticks"][0] == (g["bottom"], 0.0) and g["y_ticks"][-1] == (g["top"], 1.0)
    assert g["uncertainty"].split()[0] == f"{first[0]},{first[1]}"


def test_cli_simulates_on_the_projects_own_labels_and_stores_it(ml_app, db, runner, make_user):
    lead = make_user(None, "lead")
    project, _ids = build_quality_project(
        db, ml_app.extensions["labeler_storage"], lead, n=80, golden=20, seed=3
    )
    res = runner.invoke(args=["ml", "simulate-active", str(project.id), "--step", "20"])
    assert res.exit_code == 0, res.output
    assert "60 fold images, 20 golden" in res.output
    sim = read_simulation(ml_app.extensions["labeler_storage"], project.id)
    assert sim["pool"] == 60 and sim["held_out"] == 20 and sim["project_id"] == project.id
    assert sim["sizes"] == [20, 40, 60]
    assert len(sim["random_f1"]) == len(sim["uncertainty_f1"]) == 3
    assert sim["random_f1"][-1] == sim["uncertainty_f1"][-1]  # every label: the same model
    assert 0 < sim["target_f1"] <= 1


def test_cli_says_when_there_are_too_few_labels(ml_app, db, runner, make_user):
    lead = make_user(None, "lead")
    project, _ids = build_quality_project(
        db, ml_app.extensions["labeler_storage"], lead, n=30, golden=10, seed=4
    )
    res = runner.invoke(args=["ml", "simulate-active", str(project.id)])
    assert res.exit_code != 0
    assert "at least 40 labeled fold images" in res.output
    assert read_simulation(ml_app.extensions["labeler_storage"], project.id) is None
