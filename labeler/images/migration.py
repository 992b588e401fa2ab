"""Copy stored files between backends (``labeler storage migrate``): resumable, hash-verified.

Every file is copied as a stream (never whole in memory) and only counts as copied once the
destination's bytes hash to the source's; a file already at the destination with the same hash is
left alone, so an interrupted migration is finished by running it again. Originals are also checked
against the SHA-256 recorded at import: a corrupt source file is reported, never copied.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..guidelines.models import ReferenceImage
from ..ml.artifacts import MODEL_ID, REQUIRED
from ..projects.models import Project
from ..training.models import RunStatus, TrainingRun
from ..training.paths import models_dir
from .models import Image
from .storage import CHUNK, Storage, sha256_of
from .tiles import _prefix as tile_prefix


@dataclass
class CopySummary:
    copied: int = 0
    present: int = 0  # already at the destination, same hash
    models: int = 0  # model folders published from this machine's ML_DIR
    failed: list[tuple[str, str]] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"copied {self.copied} files, {self.present} were already there (same SHA-256), "
            f"{self.models} models published, {len(self.failed)} failed"
        )


class _Hashing(io.RawIOBase):
    """Reads a stream of pieces and hashes what passes."""

    def __init__(self, pieces: Iterable[bytes]) -> None:
        self._pieces = iter(pieces)
        self._left = b""
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        while not self._left:
            try:
                self._left = next(self._pieces)
            except StopIteration:
                return 0
            self.digest.update(self._left)
        n = min(len(buf), len(self._left))
        buf[:n] = self._left[:n]
        self._left = self._left[n:]
        return n


def copy_keys(
    src: Storage,
    dst: Storage,
    keys: Iterable[str],
    *,
    expected: Mapping[str, str] | None = None,
    progress: Callable[[str, str], None] | None = None,
) -> CopySummary:
    """Copy ``keys`` from ``src`` to ``dst``, verifying each by SHA-256 (see the module docstring).

    ``expected`` maps keys to the SHA-256 their bytes must have (originals: the import's hash).
    """
    expected = expected or {}
    summary = CopySummary()
    for key in keys:
        try:
            outcome = _copy_one(src, dst, key, expected.get(key))
        except FileNotFoundError:
            outcome = "failed: missing from the source"
        if outcome == "copied":
            summary.copied += 1
        elif outcome == "present":
            summary.present += 1
        else:
            summary.failed.append((key, outcome.removeprefix("failed: ")))
        if progress:
            progress(key, outcome)
    return summary


def _copy_one(src: Storage, dst: Storage, key: str, want: str | None) -> str:
    if dst.exists(key):
        have = sha256_of(dst, key)
        source = sha256_of(src, key)
        if want and source != want:
            return f"failed: the source file's SHA-256 is {source}, not the recorded {want}"
        if have == source:
            return "present"
    pieces = src.stream(key)
    reader = _Hashing(pieces)
    try:
        dst.put_stream(key, io.BufferedReader(reader, CHUNK))
    finally:
        if hasattr(pieces, "close"):  # a local file, when the copy stopped early
            pieces.close()
    source = reader.digest.hexdigest()
    if want and source != want:
        dst.delete(key)
        return f"failed: the source file's SHA-256 is {source}, not the recorded {want}"
    copied = sha256_of(dst, key)
    if copied != source:
        dst.delete(key)
        return f"failed: the copy's SHA-256 is {copied}, the source's {source}"
    return "copied"


def project_keys(session: Session, storage: Storage, project: Project) -> tuple[list[str], dict]:
    """Every stored key of a project (originals, display copies, thumbnails, tiles, reference
    images, models in a shared store) and the SHA-256 each original must have."""
    keys: list[str] = []
    expected: dict[str, str] = {}
    rows = session.execute(
        select(Image.sha256, Image.original_key, Image.display_key, Image.thumb_key)
        .where(Image.project_id == project.id)
        .order_by(Image.id)
    ).all()
    for sha, original, display, thumb in rows:
        keys += [original, display, thumb]
        expected[original] = sha
        keys += list(storage.iter_keys(tile_prefix(sha)))
    for display, thumb in session.execute(
        select(ReferenceImage.display_key, ReferenceImage.thumb_key).where(
            ReferenceImage.project_id == project.id
        )
    ):
        keys += [display, thumb]
    for model_id in project_model_ids(session, project):
        keys += list(storage.iter_keys(f"models/{model_id.lower()}"))
    return list(dict.fromkeys(keys)), expected


def project_model_ids(session: Session, project: Project | None) -> list[str]:
    stmt = select(TrainingRun.model_id).where(
        TrainingRun.status == RunStatus.succeeded, TrainingRun.model_id.is_not(None)
    )
    if project is not None:
        stmt = stmt.where(TrainingRun.project_id == project.id)
    return [m for m in session.scalars(stmt) if MODEL_ID.match(m)]


def all_expected(session: Session) -> dict[str, str]:
    return {key: sha for key, sha in session.execute(select(Image.original_key, Image.sha256))}


def local_model_folders(config: Mapping[str, Any], model_ids: Iterable[str]) -> list[Path]:
    """The complete model folders of this machine's ML_DIR among ``model_ids``."""
    root = models_dir(config)
    return [root / m for m in model_ids if all((root / m / name).is_file() for name in REQUIRED)]
