"""`labeler export`: a project's labels to a file."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext

from ..db import CommandSession
from ..images.storage import app_storage
from ..projects.services import find_project
from .export import export_chunks, training_manifest


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
    with CommandSession() as s:
        proj = find_project(s, project)
        chunks = (
            training_manifest(s, proj, app_storage())
            if kind == "manifest"
            else export_chunks(s, proj, kind, fmt, revisions=revisions)
        )
        tmp = output.with_name(output.name + ".part")
        with tmp.open("w", encoding="utf-8", newline="") as fh:
            for chunk in chunks:
                fh.write(chunk)
        tmp.replace(output)  # a half-written export never carries the final name
    click.echo(f"wrote {output}")
