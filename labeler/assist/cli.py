"""`labeler assist ...`: compute a model's suggestions, turn pre-labeling on or off, run reader studies.

Pre-labeling is also a project setting (`labeler projects settings P --set
'{"suggestions_model_id": "..."}'`); `assist prelabel` is the short way.
"""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from ..db import CommandSession, database
from ..projects.services import find_project, update_settings
from .compute import launch_job, run_job
from .jobs import start_job
from .studies import close_study, create_study, get_study
from .study_report import study_report

assist_cli = AppGroup(
    "assist", help="The model in the loop: suggestions, pre-labeling, reader studies."
)


@assist_cli.command("suggest")
@click.argument("project")
@click.argument("model_id")
@click.option("--wait", is_flag=True, help="Compute here in the foreground (default: a worker).")
@with_appcontext
def suggest_cmd(project: str, model_id: str, wait: bool) -> None:
    """Compute MODEL_ID's suggestions for every image of PROJECT that has none yet."""
    config = current_app.config
    with CommandSession() as s:
        job = start_job(s, config, None, find_project(s, project), model_id)
        job_id = job.id
    if not wait:
        launch_job({**config, "ML_SPAWN_WORKER": True}, job_id)
        click.echo(f"suggestion job {job_id} queued")
        return
    job = run_job(
        database().session_factory, config, current_app.extensions["labeler_storage"], job_id
    )
    if job.error:
        raise click.ClickException(f"suggestion job {job_id} failed: {job.error}")
    click.echo(f"suggestion job {job_id} {job.status.value}: {job.done} of {job.total} images")


@assist_cli.command("prelabel")
@click.argument("project")
@click.argument("model_id")
@with_appcontext
def prelabel_cmd(project: str, model_id: str) -> None:
    """Show MODEL_ID's suggestions to every rater of PROJECT while labeling ('off' stops it)."""
    value = None if model_id == "off" else model_id
    with CommandSession() as s:
        proj = find_project(s, project)
        update_settings(
            s, None, proj, {"suggestions_model_id": value}, models_config=current_app.config
        )
    click.echo(f"pre-labeling {'off' if value is None else 'with ' + value}")


@assist_cli.group("study")
def study_cli() -> None:
    """Reader studies on the golden set."""


@study_cli.command("create")
@click.argument("project")
@click.option("--model", "model_id", required=True, help="The model whose suggestions are shown.")
@click.option("--washout-days", type=int, required=True, help="Days between the two phases.")
@click.option("--seed", type=int, default=0, show_default=True)
@with_appcontext
def study_create_cmd(project: str, model_id: str, washout_days: int, seed: int) -> None:
    """Start a reader study on PROJECT's golden set."""
    with CommandSession() as s:
        study = create_study(
            s,
            None,
            find_project(s, project),
            model_id=model_id,
            washout_days=washout_days,
            seed=seed,
        )
        study_id = study.id
    click.echo(f"reader study {study_id} started")


@study_cli.command("close")
@click.argument("project")
@click.argument("study_id", type=int)
@with_appcontext
def study_close_cmd(project: str, study_id: int) -> None:
    """Close a reader study (no more readings)."""
    with CommandSession() as s:
        close_study(s, None, get_study(s, find_project(s, project), study_id))
    click.echo(f"reader study {study_id} closed")


@study_cli.command("report")
@click.argument("project")
@click.argument("study_id", type=int)
@with_appcontext
def study_report_cmd(project: str, study_id: int) -> None:
    """Print a reader study's report as JSON."""
    with CommandSession() as s:
        report = study_report(s, get_study(s, find_project(s, project), study_id))
    click.echo(json.dumps(report, indent=2))
