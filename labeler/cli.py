"""Command line: `labeler ...` (also `flask --app labeler ...`). Each feature brings its own commands."""

from __future__ import annotations

import os
import sys

import click
from flask import Flask
from flask.cli import FlaskGroup

from . import ROOT, create_app
from .allocation.cli import allocate_cmd
from .assist.cli import assist_cli
from .auth.cli import users_cli
from .config import GUNICORN_MAX_REQUESTS, GUNICORN_MAX_REQUESTS_JITTER, GUNICORN_THREADS
from .demo import demo_cmd
from .deploy.cli import deploy_cli
from .images.cli import images_cli
from .images.storage_cli import storage_cli
from .migrate import db_cli
from .projects.cli import projects_cli
from .reports.cli import export_cmd
from .training.cli import ml_cli
from .webhooks.cli import webhooks_cli


def init_app(app: Flask) -> None:
    for command in (db_cli, users_cli, projects_cli, images_cli, ml_cli, storage_cli, deploy_cli):
        app.cli.add_command(command)
    app.cli.add_command(webhooks_cli)
    app.cli.add_command(assist_cli)
    for command in (allocate_cmd, demo_cmd, export_cmd, serve_cmd):
        app.cli.add_command(command)


def main() -> None:
    group = FlaskGroup(
        create_app=lambda: create_app(), add_default_commands=True, help="labeler command line"
    )
    group.main(prog_name="labeler")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
@click.option("--threads", default=GUNICORN_THREADS, show_default=True, type=int)
def serve_cmd(host: str, port: int, workers: int, threads: int) -> None:
    """Serve the app with gunicorn (wsgi:app): gthread workers, as measured by bench/labeling.py
    (README, Production); each worker is replaced after about GUNICORN_MAX_REQUESTS requests, jittered
    (labeler/config.py)."""
    os.chdir(ROOT)
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        "wsgi:app",
        "--bind",
        f"{host}:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--worker-class",
        "gthread",
        "--max-requests",
        str(GUNICORN_MAX_REQUESTS),
        "--max-requests-jitter",
        str(GUNICORN_MAX_REQUESTS_JITTER),
        "--timeout",
        "300",
        "--access-logfile",
        "-",
    ]
    os.execv(sys.executable, args)
