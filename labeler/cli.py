"""Command line: `labeler ...` (also `flask --app labeler ...`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, FlaskGroup, with_appcontext

from .db import CommandSession
from .training.cli import ml_cli

db_cli = AppGroup("db", help="Database schema (Alembic migrations).")
users_cli = AppGroup("users", help="Accounts, roles and API tokens.")
projects_cli = AppGroup("projects", help="Projects.")
images_cli = AppGroup("images", help="Image import.")


def init_app(app: Flask) -> None:
    from .projects.cli import members_cmd, settings_cmd

    projects_cli.add_command(members_cmd)
    projects_cli.add_command(settings_cmd)
    for group in (db_cli, users_cli, projects_cli, images_cli, ml_cli):
        app.cli.add_command(group)
    app.cli.add_command(allocate_cmd)
    app.cli.add_command(demo_cmd)
    app.cli.add_command(export_cmd)
    app.cli.add_command(serve_cmd)


def main() -> None:
    from . import create_app

    group = FlaskGroup(
        create_app=lambda: create_app(), add_default_commands=True, help="labeler command line"
    )
    group.main(prog_name="labeler")


def _user(session, email: str):
    from .auth.services import find_user_by_email

    user = find_user_by_email(session, email)
    if user is None:
        raise click.ClickException(f"no user with e-mail {email}")
    return user


@db_cli.command("upgrade")
@click.argument("revision", default="head")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Upgrade the database schema to REVISION (default: head)."""
    from .migrate import upgrade

    upgrade(current_app.config["DATABASE_URL"], revision)
    click.echo(f"database at {revision}")


@db_cli.command("downgrade")
@click.argument("revision")
@with_appcontext
def db_downgrade(revision: str) -> None:
    """Downgrade the database schema to REVISION ('base' drops everything)."""
    from .migrate import downgrade

    downgrade(current_app.config["DATABASE_URL"], revision)
    click.echo(f"database at {revision}")


@users_cli.command("add")
@click.argument("email")
@click.option("--name", default="", help="Display name.")
@click.option(
    "--role", "roles", multiple=True, required=True, help="rater, lead or admin (repeatable)."
)
@with_appcontext
def users_add(email: str, name: str, roles: tuple[str, ...]) -> None:
    """Invite an account (bound to its Microsoft account at first sign-in)."""
    from .auth.services import add_user, parse_roles

    with CommandSession() as s:
        parsed = parse_roles(r for value in roles for r in value.split(","))
        user = add_user(s, None, email, name, parsed)
        click.echo(f"user {user.id} {user.email} roles={','.join(sorted(r.value for r in parsed))}")


def _token_days(value: str) -> int | None:
    if value.strip().lower() in {"none", "never"}:
        return None
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: give a number of days, or 'none'") from None


@users_cli.command("token")
@click.argument("email")
@click.option("--name", default="cli", help="A name to recognise the token by.")
@click.option(
    "--days",
    default="90",
    show_default=True,
    help="Days until the token expires, or 'none' for a token that never expires.",
)
@with_appcontext
def users_token(email: str, name: str, days: str) -> None:
    """Print a new personal API token for EMAIL (shown once; stored hashed)."""
    from .auth.services import create_token

    with CommandSession() as s:
        user = _user(s, email)
        token, raw = create_token(s, user, user, name, expires_in_days=_token_days(days))
        click.echo(raw)
        expiry = f"{token.expires_at:%Y-%m-%d %H:%M} UTC" if token.expires_at else "never"
        click.echo(f"expires: {expiry}", err=True)  # stdout carries the token alone


@users_cli.command("list")
@with_appcontext
def users_list() -> None:
    """List accounts with their roles."""
    from sqlalchemy import select

    from .auth.models import User

    with CommandSession() as s:
        for u in s.scalars(select(User).order_by(User.email)):
            state = "" if u.active else " (deactivated)"
            click.echo(f"{u.id}\t{u.email}\t{','.join(sorted(r.value for r in u.roles))}{state}")


@users_cli.command("deactivate")
@click.argument("email")
@with_appcontext
def users_deactivate(email: str) -> None:
    """Deactivate an account (refused at once, even in an open session)."""
    from .auth.services import set_active

    with CommandSession() as s:
        user = _user(s, email)
        set_active(s, None, user, False)
        click.echo(f"deactivated {user.email}")


@projects_cli.command("create")
@click.argument("name")
@click.option("--protocol", type=click.Choice(["quality", "severity"]), required=True)
@with_appcontext
def projects_create(name: str, protocol: str) -> None:
    """Create a project and print its id."""
    from .projects.services import create_project

    with CommandSession() as s:
        project = create_project(s, None, name, protocol)
        s.flush()
        click.echo(project.id)


@images_cli.command("import")
@click.argument("project")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--manifest",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV with filename, case_id, body_site, fitzpatrick and any other metadata columns.",
)
@with_appcontext
def images_import(project: str, path: Path, manifest: Path | None) -> None:
    """Import a folder or a .zip of images into PROJECT (id or name)."""
    from .images.services import import_images, read_manifest
    from .images.sources import iter_source
    from .projects.services import find_project

    storage = current_app.extensions["labeler_storage"]
    with CommandSession() as s:
        proj = find_project(s, project)
        rows = read_manifest(manifest.read_bytes()) if manifest else None
        total = sum(
            1 for _ in iter_source(path)
        )  # names only: files are read lazily during the import
        with click.progressbar(
            length=total, label="importing", file=sys.stderr, show_pos=True
        ) as bar:
            summary = import_images(
                s,
                None,
                proj,
                iter_source(path),
                storage=storage,
                source_label=str(path),
                manifest=rows,
                checkpoint=s.commit,
                progress=lambda _n: bar.update(1),
            )
        from .training.prescreen import prescreen_import

        prescreen_import(s, current_app.config, proj, summary, storage)
    for row in summary.rejected:
        click.echo(f"rejected {row['filename']}: {row['error']}")
    if summary.duplicates and not summary.imported:
        click.echo("nothing new: every image is already in the project")
    click.echo(summary.line())


@images_cli.command("recover")
@with_appcontext
def images_recover() -> None:
    """Remove files left by an import that died before committing."""
    from .images.services import recover_interrupted_imports

    with CommandSession() as s:
        n = recover_interrupted_imports(s, current_app.extensions["labeler_storage"])
    click.echo(f"removed {n} orphan files")


@click.command("allocate")
@click.argument("project")
@click.option("--raters", required=True, help="Comma-separated e-mails of the raters.")
@click.option(
    "--golden-size", type=click.IntRange(min=0), default=None, help="Golden images drawn at random."
)
@click.option(
    "--golden-list",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="File of golden images, one per line: image id, file name or sha256.",
)
@click.option(
    "--overlap",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Raters per non-golden image.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0, max=2**31 - 1),
    default=None,
    help="Seed (default: a random one, printed and stored).",
)
@click.option("--preview", is_flag=True, help="Print the summary without writing anything.")
@with_appcontext
def allocate_cmd(
    project: str,
    raters: str,
    golden_size: int | None,
    golden_list: Path | None,
    overlap: int,
    seed: int | None,
    preview: bool,
) -> None:
    """Allocate PROJECT's images to raters: golden set, folds with overlap, seeded queues."""
    from .allocation import services
    from .projects.services import find_project

    if golden_size is not None and golden_list is not None:
        raise click.UsageError("give --golden-size or --golden-list, not both")
    emails = [e.strip() for e in raters.split(",") if e.strip()]
    with CommandSession() as s:
        proj = find_project(s, project)
        golden_ids = (
            services.resolve_golden_refs(s, proj, golden_list.read_text().splitlines())
            if golden_list
            else None
        )
        kwargs = {
            "golden_size": None if golden_ids is not None else (golden_size or 0),
            "golden_image_ids": golden_ids,
            "overlap": overlap,
            "seed": seed if seed is not None else services.new_seed(),
        }
        if preview:
            result = services.preview_allocation(s, proj, emails, **kwargs)
        else:
            services.allocate(s, None, proj, emails, **kwargs)
            s.flush()
            result = services.summary(s, proj)
    click.echo(
        f"{'preview' if preview else 'allocated'}: {result['images']} images, {result['golden']} golden, "
        f"overlap {result['overlap']}, seed {result['seed']}"
    )
    for r in result["raters"]:
        click.echo(f"{r['email']}\tgolden={r['golden']}\tfold={r['fold']}\ttotal={r['total']}")


@click.command("demo")
@click.option(
    "--images", "count", default=24, show_default=True, help="Generated images per project."
)
@with_appcontext
def demo_cmd(count: int) -> None:
    """Create demo users of every role and two demo projects with generated skin-like images."""
    from .demo import build_demo

    with CommandSession() as s:
        lines = build_demo(s, current_app.extensions["labeler_storage"], count, checkpoint=s.commit)
    for line in lines:
        click.echo(line)


@click.command("export")
@click.argument("project")
@click.option(
    "--kind",
    type=click.Choice(["fused", "raw", "manifest"]),
    default="fused",
    show_default=True,
    help="fused label set, raw labels, or the training manifest the ML module reads",
)
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True
)
@click.option("--revisions", is_flag=True, help="raw: every revision, not only current labels")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@with_appcontext
def export_cmd(project: str, kind: str, fmt: str, revisions: bool, output: Path) -> None:
    """Export PROJECT's labels to a file (streamed, constant memory)."""
    from .projects.services import find_project
    from .reports.export import export_chunks, training_manifest

    with CommandSession() as s:
        proj = find_project(s, project)
        chunks = (
            training_manifest(s, proj, current_app.extensions["labeler_storage"])
            if kind == "manifest"
            else export_chunks(s, proj, kind, fmt, revisions=revisions)
        )
        tmp = output.with_name(output.name + ".part")
        with tmp.open("w", encoding="utf-8", newline="") as fh:
            for chunk in chunks:
                fh.write(chunk)
        tmp.replace(output)  # a half-written export never carries the final name
    click.echo(f"wrote {output}")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
def serve_cmd(host: str, port: int, workers: int) -> None:
    """Serve the app with gunicorn (wsgi:app)."""
    from . import ROOT

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
        "4",
        "--timeout",
        "300",
        "--access-logfile",
        "-",
    ]
    os.execv(sys.executable, args)
