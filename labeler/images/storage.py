"""Blob storage for originals and derivatives, addressed by validated keys.

LocalStorage is the only implementation for now; a cloud blob store will
implement the same Storage protocol (its ``path`` returns None).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from flask import Flask, current_app

_KEY_RE = re.compile(r"[a-z0-9._-]+(?:/[a-z0-9._-]+)*")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_MAX_KEY_LEN = 512
_TMP_PREFIX = ".tmp-"


class InvalidKey(ValueError):
    """A storage key that is not a safe relative path."""


class Storage(Protocol):
    """What the import service and the image views need from a blob store."""

    def put(self, key: str, data: bytes, *, durable: bool = True) -> None: ...
    def make_durable(self) -> None: ...
    def open(self, key: str) -> BinaryIO: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def size(self, key: str) -> int: ...
    def path(self, key: str) -> Path | None: ...
    def iter_keys(self, prefix: str = "") -> Iterator[str]: ...


def app_storage(app: Flask | None = None) -> Storage:
    """The app's blob store (created by create_app)."""
    return (app or current_app).extensions["labeler_storage"]


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise InvalidKey."""
    if (
        not isinstance(key, str)
        or len(key) > _MAX_KEY_LEN
        or not _KEY_RE.fullmatch(key)
        # No ".", ".." or hidden segments: hidden names are reserved for temp files.
        or any(part.startswith(".") for part in key.split("/"))
    ):
        raise InvalidKey(f"invalid storage key {key!r}")
    return key


def content_key(kind: str, sha256: str, ext: str = "") -> str:
    """Key for content-addressed blobs, e.g. ``display/ab/cd/<sha256>.jpg``."""
    if not _SHA256_RE.fullmatch(sha256):
        raise InvalidKey(f"not a lowercase hex sha256: {sha256!r}")
    ext = ext.lower().lstrip(".")
    name = f"{sha256}.{ext}" if ext else sha256
    return validate_key(f"{kind}/{sha256[:2]}/{sha256[2:4]}/{name}")


class LocalStorage:
    """Storage in a local directory; writes are atomic (temp file, fsync, rename)."""

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = Path(root).resolve()
        self.fsync = fsync
        self._deferred = False

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def put(self, key: str, data: bytes, *, durable: bool = True) -> None:
        """Store ``data`` under ``key`` atomically; a no-op if it is already there.

        With ``durable=False`` the file is renamed into place without its own fsync; the caller must
        call ``make_durable()`` before it records (commits) anything that refers to the key. One sync
        for a batch of files costs far less than two fsyncs per file.
        """
        sync_now = self.fsync and durable
        self._deferred |= self.fsync and not durable
        dest = self._path(key)
        if self._same_content(dest, data):
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                if sync_now:
                    os.fsync(f.fileno())
                os.fchmod(f.fileno(), 0o644)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if sync_now:
            _fsync_dir(dest.parent)

    def make_durable(self) -> None:
        """Flush every write made with durable=False (files and renames) to disk."""
        if self._deferred:
            os.sync()  # Linux waits for the writeback; one journal commit for the whole batch
            self._deferred = False

    def open(self, key: str) -> BinaryIO:
        """Open the blob for reading; FileNotFoundError if it is missing."""
        return self._path(key).open("rb")

    def exists(self, key: str) -> bool:
        """Whether a blob is stored under ``key``."""
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        """Delete the blob; a missing key is fine."""
        self._path(key).unlink(missing_ok=True)

    def size(self, key: str) -> int:
        """Size of the blob in bytes; FileNotFoundError if it is missing."""
        return self._path(key).stat().st_size

    def path(self, key: str) -> Path | None:
        """Local file path of the blob (for send_file)."""
        return self._path(key)

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        """Yield stored keys under ``prefix`` (a directory such as "thumbs/"), sorted."""
        prefix = prefix.strip("/")
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            for name in sorted(filenames):
                if name.startswith("."):
                    continue  # temp files of writes in progress (or crashed)
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                if _KEY_RE.fullmatch(key):
                    yield key

    @staticmethod
    def _same_content(dest: Path, data: bytes) -> bool:
        try:
            if dest.stat().st_size != len(data):
                return False
            return dest.read_bytes() == data
        except FileNotFoundError:
            return False


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
