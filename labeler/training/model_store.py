"""Trained models and run logs in the blob store, so any app server or worker finds them.

A model is trained into a local folder (``<ML_DIR>/models/<id>``, written whole, then renamed). On
a shared store (Azure Blob) the folder is then published under ``models/<id>/<file>`` (model.json,
the marker, last: a model whose marker is stored is whole), and a machine that lacks the folder
fetches it on first use into its own ML_DIR, which is only a cache (it may be lost at any time).
Run logs go to ``runs/<run id>/worker.log``. The feature cache (``<ML_DIR>/cache``) stays local:
it is derived from the images, and a worker that lacks it recomputes it.

With the local backend (``make run``, one machine) ML_DIR is the store and nothing is copied.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import current_app, has_app_context

from ..images.storage import LocalStorage, Storage, validate_key
from ..ml.artifacts import MODEL_ID, resolve_model
from ..ml.errors import ModelNotFound
from .paths import models_dir, run_dir

log = logging.getLogger(__name__)
PREFIX = "models"
MARKER = "model.json"


def is_shared(storage: Storage | None) -> bool:
    """Whether the store is shared between machines (anything but the local folder)."""
    return storage is not None and not isinstance(storage, LocalStorage)


def _app_storage(storage: Storage | None) -> Storage | None:
    if storage is None and has_app_context():
        return current_app.extensions.get("labeler_storage")
    return storage


def model_prefix(model_id: str) -> str:
    if not MODEL_ID.match(model_id):
        raise ModelNotFound(f"unknown model id {model_id!r}", model_id=model_id)
    return f"{PREFIX}/{model_id.lower()}"


def publish_model(storage: Storage, folder: Path) -> int:
    """Copy a complete model folder to the store (the marker last); returns the files copied."""
    folder = Path(folder)
    prefix = model_prefix(folder.name)
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != MARKER)
    count = 0
    for name in [*names, MARKER]:
        key = f"{prefix}/{name}"
        try:
            validate_key(key)
        except ValueError:
            log.warning("model %s: %s is not stored (not a storage key)", folder.name, name)
            continue
        with open(folder / name, "rb") as fh:
            storage.put_stream(key, fh)
        count += 1
    return count


def fetch_model(storage: Storage, root: Path, model_id: str) -> bool:
    """Download a published model into ``root/<model_id>``; False if the store has no such model."""
    prefix = model_prefix(model_id)
    if not storage.exists(f"{prefix}/{MARKER}"):
        return False
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".fetch-{model_id}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        for key in storage.iter_keys(prefix):
            with open(tmp / key.rsplit("/", 1)[-1], "wb") as out:
                out.writelines(storage.stream(key))
        try:
            os.rename(tmp, root / model_id)
        except OSError:  # another request fetched it meanwhile (the target is a non-empty folder)
            if not (root / model_id / MARKER).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("fetched model %s from %s", model_id, storage.describe())
    return True


def model_folder(config: Mapping[str, Any], model_id: str, storage: Storage | None = None) -> Path:
    """The local folder of a model, fetched from a shared store first if this machine lacks it;
    ModelNotFound if neither has it."""
    root = models_dir(config)
    try:
        return resolve_model(root, model_id)
    except ModelNotFound:
        storage = _app_storage(storage)
        if not is_shared(storage) or not fetch_model(storage, root, model_id):
            raise
    return resolve_model(root, model_id)


def publish_run_log(storage: Storage | None, config: Mapping[str, Any], run_id: int) -> bool:
    """Copy a run's worker log to a shared store (``runs/<id>/worker.log``)."""
    path = run_dir(config, run_id) / "worker.log"
    if not is_shared(storage) or not path.is_file():
        return False
    with open(path, "rb") as fh:
        storage.put_stream(f"runs/{int(run_id)}/worker.log", fh)
    return True


class LocalPaths:
    """A store seen through local files: ``path(key)`` downloads a shared store's blob into its
    disposable cache (for the training manifest, whose rows name image files)."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def path(self, key: str) -> Path | None:
        try:
            return self._storage.local_file(key)
        except FileNotFoundError:
            return None


def for_manifest(storage: Any) -> Any:
    """The store to hand to reports.export.training_manifest: as is if local, else LocalPaths."""
    return LocalPaths(storage) if is_shared(storage) else storage
