"""`labeler projects ...`: create a project, list or change its members and settings."""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from .. import protocols
from ..auth.services import find_user_by_email
from ..db import CommandSession
from ..errors import LabelerError
from .members import add_project_member, list_members, remove_project_member
from .services import create_project, find_project, update_settings

projects_cli = AppGroup("projects", help="Projects.")


@projects_cli.command("create")
@click.argument("name")
@click.option("--protocol", type=click.Choice(protocols.names()), required=True)
@with_appcontext
def projects_create(name: str, protocol: str) -> None:
    """Create a project and print its id."""
    with CommandSession() as s:
        project = create_project(s, None, name, protocol)
        s.flush()
        click.echo(project.id)


@projects_cli.command("members")
@click.argument("project")
@click.option("--add", "add_email", metavar="EMAIL", help="Add this person (invited if unknown).")
@click.option("--remove", "remove_email", metavar="EMAIL", help="Remove this person's role.")
@click.option("--role", type=click.Choice(["lead", "rater"]), default="rater", show_default=True)
@click.option("--name", default="", help="Display name of a new invitation.")
@click.option("--yes", is_flag=True, help="Confirm removing a rater (their unlabeled work moves).")
@with_appcontext
def members_cmd(
    project: str, add_email: str | None, remove_email: str | None, role: str, name: str, yes: bool
) -> None:
    """List PROJECT's members (id or name), or add or remove a lead or rater by e-mail."""
    if add_email and remove_email:
        raise click.UsageError("give --add or --remove, not both")
    with CommandSession() as s:
        proj = find_project(s, project)
        if add_email:
            result = add_project_member(s, None, proj, add_email, role, name=name)
            invited = " (invited)" if result["invited"] else ""
            queue = result["queue"]
            given = f"; queue: golden set + {queue['fold']} fold items" if queue else ""
            click.echo(f"added {result['email']} as {result['role']}{invited}{given}")
        elif remove_email:
            try:
                result = remove_project_member(s, None, proj, remove_email, role, confirm=yes)
            except LabelerError as exc:
                if exc.code == "confirm_needed":
                    raise click.ClickException(f"{exc.message} (pass --yes)") from exc
                raise
            queue = result["queue"]
            kept = f"; {queue['kept_labeled']} labeled items stay" if queue else ""
            click.echo(f"removed {result['email']} as {result['role']}{kept}")
        else:
            for m in list_members(s, proj):
                roles = ",".join(r.value for r in m.roles)
                click.echo(f"{m.user.email}\t{roles}\t{m.queue_items} items\t{m.labels} labels")


@projects_cli.command("settings")
@click.argument("project")
@click.option(
    "--set",
    "changes",
    metavar="JSON",
    help='Settings to change, e.g. \'{"fusion": {"explanation_k": 2}}\'.',
)
@click.option(
    "--map",
    "mapping",
    multiple=True,
    metavar="OLD=NEW",
    help="Grade mapping of a scale change once labels exist (repeatable).",
)
@click.option("--confirm-migration", is_flag=True, help="Confirm a change that labels are read by.")
@click.option(
    "--as", "actor_email", metavar="EMAIL", help="The lead who authors mapped label versions."
)
@with_appcontext
def settings_cmd(
    project: str,
    changes: str | None,
    mapping: tuple[str, ...],
    confirm_migration: bool,
    actor_email: str | None,
) -> None:
    """Print PROJECT's settings as JSON, or change some (validated and audited like the page)."""
    with CommandSession() as s:
        proj = find_project(s, project)
        if changes is not None:
            try:
                parsed = json.loads(changes)
            except ValueError as exc:
                raise click.BadParameter(f"not JSON: {exc}", param_hint="--set") from None
            pairs = []
            for item in mapping:
                old, sep, new = item.partition("=")
                if not sep:
                    raise click.BadParameter(f"{item!r} is not OLD=NEW", param_hint="--map")
                pairs.append([old, new])
            actor = None
            if actor_email:
                actor = find_user_by_email(s, actor_email)
                if actor is None:
                    raise click.BadParameter(f"no user {actor_email}", param_hint="--as")
            result = update_settings(
                s,
                actor,
                proj,
                parsed,
                confirm_migration=confirm_migration,
                grade_mapping=pairs or None,
                models_config=current_app.config,
            )
            click.echo(
                f"changed: {', '.join(result['changed']) or 'nothing'}; "
                f"labels mapped: {result['labels_migrated']}",
                err=True,
            )
        click.echo(json.dumps(proj.settings, indent=2, sort_keys=True))
