"""`labeler storage migrate --to URL`: copy files to another storage backend (resumable, verified)."""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from ..db import CommandSession
from ..projects.services import find_project
from ..training.model_store import is_shared, publish_model
from .migration import (
    all_expected,
    copy_keys,
    local_model_folders,
    project_keys,
    project_model_ids,
)
from .storage import AzureBlobStorage, StorageConfigError, app_storage, storage_from_url

storage_cli = AppGroup("storage", help="Where images, tiles and trained models are stored.")


@storage_cli.command("migrate")
@click.option(
    "--to",
    "to_url",
    required=True,
    help="The destination: file:///absolute/path or azure://<container> (credentials from "
    "LABELER_AZURE_STORAGE_CONNECTION_STRING or LABELER_AZURE_STORAGE_ACCOUNT_URL).",
)
@click.option("--project", help="Only this project's files (id or name); default: every file.")
@click.option("--verbose", is_flag=True, help="One line per file.")
@with_appcontext
def storage_migrate(to_url: str, project: str | None, verbose: bool) -> None:
    """Copy the stored files (and, from a local ML folder, the trained models) to the storage at
    --to, verifying each by SHA-256. Files already there with the same hash are skipped, so an
    interrupted migration is finished by running it again. Point LABELER_STORAGE_URL at the
    destination afterwards."""
    src = app_storage()
    try:
        dst = storage_from_url(to_url, current_app.config)
    except StorageConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if dst.describe() == src.describe():
        raise click.ClickException(f"{to_url} is the storage this server already uses")
    if isinstance(dst, AzureBlobStorage):
        dst.create_container()
    with CommandSession() as s:
        if project:
            proj = find_project(s, project)
            keys, expected = project_keys(s, src, proj)
        else:
            proj, keys, expected = None, src.iter_keys(), all_expected(s)
        model_ids = project_model_ids(s, proj)

    def progress(key: str, outcome: str) -> None:
        if verbose or outcome.startswith("failed"):
            click.echo(f"{key}: {outcome}", err=outcome.startswith("failed"))

    click.echo(f"copying from {src.describe()} to {dst.describe()}")
    summary = copy_keys(src, dst, keys, expected=expected, progress=progress)
    if not is_shared(src) and is_shared(dst):  # local models live in ML_DIR, not in the store
        for folder in local_model_folders(current_app.config, model_ids):
            publish_model(dst, folder)
            summary.models += 1
    click.echo(summary.line())
    if summary.failed:
        sys.exit(1)
    click.echo(f"done: set LABELER_STORAGE_URL={to_url} and restart the servers and workers")
