"""`labeler images ...`: import a folder or a .zip, recover after a crash, build deep-zoom tiles."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import select

from ..db import CommandSession
from ..projects.services import find_project
from .import_jobs import reap_dead_jobs
from .journal import recover_interrupted_imports, sweep_unreferenced
from .models import Image
from .services import import_images, read_manifest, run_import_hooks
from .sources import iter_source
from .storage import LocalStorage, app_storage
from .tiles import ensure_pyramid, has_pyramid

images_cli = AppGroup("images", help="Image import.")


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
    storage = app_storage()
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

        # this terminal process is the worker: follow-up jobs (tiles) run here unless Celery has them
        run_import_hooks(s, {**current_app.config, "JOBS_LOCAL": "inline"}, proj, summary, storage)
    for row in summary.rejected:
        click.echo(f"rejected {row['filename']}: {row['error']}")
    if summary.duplicates and not summary.imported:
        click.echo("nothing new: every image is already in the project")
    click.echo(summary.line())


@images_cli.command("recover")
@with_appcontext
def images_recover() -> None:
    """Remove files left by an import that died before committing (local folder: from the import
    journals; a blob store: files no image refers to, written more than a day ago), and record
    import jobs whose worker stopped as failed (their files and stored upload removed)."""
    storage = app_storage()
    with CommandSession() as s:
        jobs = reap_dead_jobs(s, storage, current_app.config)
        if jobs:
            click.echo(f"import jobs whose worker stopped, now recorded as failed: {jobs}")
        if isinstance(storage, LocalStorage):
            n = recover_interrupted_imports(s, storage)
        else:
            n = sweep_unreferenced(s, storage)
    click.echo(f"removed {n} orphan files")


@images_cli.command("tiles")
@click.argument("project", required=False)
@with_appcontext
def images_tiles(project: str | None) -> None:
    """Build the deep-zoom tiles of images that have none (imported before deep zoom existed), for
    PROJECT (id or name) or every project, so that no image's first zoom is slower than another's."""
    storage = app_storage()
    built, present, failed = 0, 0, []
    with CommandSession() as s:
        stmt = select(Image.id).order_by(Image.id)
        if project:
            stmt = stmt.where(Image.project_id == find_project(s, project).id)
        for image_id in s.scalars(stmt).all():
            image = s.get(Image, image_id)
            if has_pyramid(storage, image):
                present += 1
                continue
            try:
                ensure_pyramid(storage, image)
                built += 1
            except (OSError, ValueError, RuntimeError) as e:
                failed.append(image.id)
                click.echo(f"image {image.id} ({image.filename}): {e}", err=True)
    click.echo(f"tiles built for {built} images; {present} already had them; {len(failed)} failed")
    if failed:
        sys.exit(1)
