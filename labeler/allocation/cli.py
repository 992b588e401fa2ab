"""`labeler allocate`: allocate a project's images to raters from the command line."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext

from ..db import CommandSession
from ..projects.services import find_project
from . import services


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
