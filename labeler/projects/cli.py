"""`labeler projects ...`: create a project, list or change its members and settings."""

from __future__ import annotations

import click
from flask.cli import AppGroup, with_appcontext

from ..db import CommandSession
from .services import create_project

projects_cli = AppGroup("projects", help="Projects.")


@projects_cli.command("create")
@click.argument("name")
@click.option("--protocol", type=click.Choice(["quality", "severity"]), required=True)
@with_appcontext
def projects_create(name: str, protocol: str) -> None:
    """Create a project and print its id."""
    with CommandSession() as s:
        project = create_project(s, None, name, protocol)
        s.flush()
        click.echo(project.id)
