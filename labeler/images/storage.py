"""Blob storage for originals, derivatives, tiles and trained models, addressed by validated keys.

Two backends implement the Storage protocol, chosen by ``LABELER_STORAGE_URL`` (see
``storage_from_config``):

* LocalStorage: a folder (``instance/files`` by default; ``file:///abs/path``). Atomic writes
  (temp file, fsync, rename); ``path`` gives the file for send_file.
* AzureBlobStorage: one Azure Blob Storage container (``azure://<container>``), reached with
  ``LABELER_AZURE_STORAGE_CONNECTION_STRING`` (development, Azurite, account keys) or with
  ``LABELER_AZURE_STORAGE_ACCOUNT_URL`` and DefaultAzureCredential (managed identity, workload
  identity, az login; the azure-identity package). A blob is written in one request (or staged
  blocks committed by one call), so it is whole or absent; ``path`` is None.

Either way images reach raters through the app's own authorized routes (``stream``), never as a
blob URL or SAS link: a blob's name is its content hash, so two raters could compare URLs.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import logging
import os
import random
import re
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import unquote, urlsplit

from flask import Flask, current_app

_KEY_RE = re.compile(r"[a-z0-9._-]+(?:/[a-z0-9._-]+)*")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_MAX_KEY_LEN = 512
_TMP_PREFIX = ".tmp-"
# temp files: created new (never an existing file or a symlink planted under the name), write-only
_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
_TMP_TRIES = 100  # random 64-bit names: a clash is already unheard of
_random_bits = random.getrandbits  # user space (no syscall); reseeded in a forked child
CHUNK = 256 * 1024  # bytes per streamed piece (reads, copies, responses)


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
    def put_stream(self, key: str, fh: BinaryIO) -> None: ...
    def stream(self, key: str, start: int = 0, length: int | None = None) -> Iterator[bytes]: ...
    def local_file(self, key: str) -> Path: ...
    def modified(self, key: str) -> float: ...
    def describe(self) -> str: ...


class StorageConfigError(RuntimeError):
    """LABELER_STORAGE_URL (or its credentials) cannot be used."""


def storage_from_url(url: str | None, config: Mapping[str, Any]) -> Storage:
    """The backend a storage URL names: ``file:///abs/path`` or ``azure://<container>``.

    None or "" is the local folder ``STORAGE_PATH`` (``instance/files``): ``make run`` needs
    nothing else. Azure credentials come from the config (see the module docstring).
    """
    if not url:
        return LocalStorage(Path(config["STORAGE_PATH"]))
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise StorageConfigError(f"a file storage URL is file:///absolute/path, not {url!r}")
        return LocalStorage(Path(unquote(parts.path)))
    if parts.scheme == "azure":
        container = parts.netloc
        if parts.path.strip("/") or parts.query or not re.fullmatch(r"[a-z0-9-]{3,63}", container):
            raise StorageConfigError(
                f"an Azure storage URL is azure://<container> (3-63 lowercase letters, digits or "
                f"hyphens), not {url!r}"
            )
        return AzureBlobStorage.from_config(container, config)
    raise StorageConfigError(
        f"LABELER_STORAGE_URL must start with file:// or azure://, not {url!r}"
    )


def storage_from_config(config: Mapping[str, Any]) -> Storage:
    """The app's storage backend, from STORAGE_URL (unset: the local folder STORAGE_PATH)."""
    return storage_from_url(config.get("STORAGE_URL"), config)


def sha256_of(storage: Storage, key: str) -> str:
    """The SHA-256 of a stored blob, read as a stream (never held whole in memory)."""
    digest = hashlib.sha256()
    for piece in storage.stream(key):
        digest.update(piece)
    return digest.hexdigest()


def app_storage(app: Flask | None = None) -> Storage:
    """The app's blob store (created by create_app)."""
    return (app or current_app).extensions["labeler_storage"]


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise InvalidKey."""
    if (
        not isinstance(key, str)
        or len(key) > _MAX_KEY_LEN
        or not _KEY_RE.fullmatch(key)
        # No ".", ".." or hidden segments: hidden names are reserved for temp files. (The pattern
        # allows no empty segment, so a segment starts with "." exactly where these find one.)
        or key[0] == "."
        or "/." in key
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
        self._root = str(self.root)
        self.fsync = fsync
        # deferred writes (durable=False) in place so far, and how many of them the last sync covered:
        # counted under a lock because a worker's threads share the store, so that a sync another
        # thread started before this thread's write landed never stands in for it
        self._sync_lock = threading.Lock()
        self._deferred_writes = 0
        self._synced_writes = 0

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def put(self, key: str, data: bytes, *, durable: bool = True) -> None:
        """Store ``data`` under ``key`` atomically; a no-op if it is already there.

        With ``durable=False`` the file is renamed into place without its own fsync; the caller must
        call ``make_durable()`` before it records (commits) anything that refers to the key. One sync
        for a batch of files costs far less than two fsyncs per file.
        """
        sync_now = self.fsync and durable
        dest = self._file(key)
        if _same_content(dest, data):
            # already there, maybe from another thread's deferred write that is not synced yet
            if sync_now:
                self.make_durable()
            elif self.fsync:
                self._note_deferred()
            return
        self._write_atomically(dest, partial(_write_all, data=data), sync_now)
        if self.fsync and not durable:
            self._note_deferred()

    def _note_deferred(self) -> None:
        """A write made with durable=False is in place (counted after its rename)."""
        with self._sync_lock:
            self._deferred_writes += 1

    def make_durable(self) -> None:
        """Flush every write made with durable=False (files and renames) to disk: every one in place
        when this is called, whichever thread made it."""
        with self._sync_lock:
            target = self._deferred_writes
            if target == self._synced_writes:
                return
        os.sync()  # Linux waits for the writeback; one journal commit for the whole batch
        with self._sync_lock:
            self._synced_writes = max(self._synced_writes, target)

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

    def local_file(self, key: str) -> Path:
        """A local file holding the blob (its own file here); FileNotFoundError if it is missing."""
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(key)
        return path

    def describe(self) -> str:
        return f"file://{self.root}"

    def modified(self, key: str) -> float:
        """When the blob was written (seconds since the epoch); FileNotFoundError if missing."""
        return self._path(key).stat().st_mtime

    def put_stream(self, key: str, fh: BinaryIO) -> None:
        """Store what ``fh`` yields under ``key``, copied in pieces: all of it or nothing."""
        self._write_atomically(self._file(key), partial(_copy_all, fh=fh), self.fsync)

    def _file(self, key: str) -> str:
        """The blob's file as a string path (os calls on strings: no pathlib work per write)."""
        return f"{self._root}/{validate_key(key)}"

    @staticmethod
    def _write_atomically(dest: str, write: Callable[[int], None], sync: bool) -> None:
        """Write a hidden temp file next to ``dest`` with ``write(fd)``, then rename it into place.

        The temp file is created with O_EXCL under a random name in the destination folder; the
        folders are created only when that fails for want of them (one syscall less per write into
        an existing folder). Mode 0644, fsynced (file, then folder) when ``sync``; on any error the
        temp file is removed and ``dest`` is left as it was.
        """
        folder = dest.rpartition("/")[0]
        tmp = fd = None
        made: list[str] = []  # folders this write created (their entries are synced with it)
        for _ in range(_TMP_TRIES):
            tmp = f"{folder}/{_TMP_PREFIX}{_random_bits(64):016x}"
            try:
                fd = os.open(tmp, _TMP_FLAGS, 0o600)
            except FileNotFoundError:
                made = _missing_folders(folder)
                os.makedirs(folder, exist_ok=True)
                try:
                    fd = os.open(tmp, _TMP_FLAGS, 0o600)
                except FileExistsError:
                    continue
            except FileExistsError:
                continue
            break
        if fd is None:
            raise FileExistsError(errno.EEXIST, "no unused temporary name", folder)
        try:
            try:
                write(fd)
                os.fchmod(fd, 0o644)
                if sync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        if sync:
            _fsync_dir(folder)
            for new_folder in made:  # a new folder's name is an entry in its parent
                _fsync_dir(new_folder.rpartition("/")[0])

    def stream(self, key: str, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        """The blob's bytes from ``start`` (``length`` of them, or to the end), in pieces.

        The file is opened before the first piece is asked for, so a missing blob raises
        FileNotFoundError here, not halfway through a response.
        """
        return _FilePieces(self._path(key).open("rb"), start, length)

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


class _FilePieces:
    """The pieces of an open file; closes it when done or when closed early (a response closes
    its body even if the client left before the first piece)."""

    def __init__(self, fh: BinaryIO, start: int, length: int | None) -> None:
        self._fh = fh
        fh.seek(start)
        self._left = length

    def __iter__(self) -> _FilePieces:
        return self

    def __next__(self) -> bytes:
        left = self._left
        if left == 0 or self._fh.closed:
            self.close()
            raise StopIteration
        piece = self._fh.read(CHUNK if left is None else min(CHUNK, left))
        if not piece:
            self.close()
            raise StopIteration
        if left is not None:
            self._left = left - len(piece)
        return piece

    def close(self) -> None:
        self._fh.close()


class AzureBlobStorage:
    """Storage in one Azure Blob Storage container (or Azurite, its emulator).

    Writes of content-addressed keys are idempotent: ``put`` sends If-None-Match: * and takes
    "already exists" as done (racing writers of one hash: one creates the blob, the others find it).
    Downloads are streamed in 1 MiB pieces (the SDK's defaults would buffer 32 MiB per stream).
    """

    def __init__(self, container_client: Any, *, scratch: Path | None = None) -> None:
        self.container = container_client
        # where local_file() keeps downloaded copies (a disposable cache, refilled from the store)
        self.scratch = Path(scratch) if scratch else Path(tempfile.gettempdir()) / "labeler-blobs"

    @classmethod
    def from_config(cls, container: str, config: Mapping[str, Any]) -> AzureBlobStorage:
        try:
            from azure.storage.blob import BlobServiceClient
        except ImportError:
            raise StorageConfigError(
                "LABELER_STORAGE_URL names Azure Blob Storage, but the azure-storage-blob package "
                "is not installed (pip install 'labeler[azure]')"
            ) from None
        # the SDK logs every request's headers at INFO (the app logs at INFO): keep its warnings only
        logging.getLogger("azure").setLevel(logging.WARNING)
        sizes = {
            "max_single_get_size": 4 * 1024 * 1024,
            "max_chunk_get_size": 1024 * 1024,
            "retry_total": int(config.get("AZURE_STORAGE_RETRIES") or 3),
        }
        if config.get("AZURE_STORAGE_API_VERSION"):
            sizes["api_version"] = config["AZURE_STORAGE_API_VERSION"]
        conn = config.get("AZURE_STORAGE_CONNECTION_STRING")
        account_url = config.get("AZURE_STORAGE_ACCOUNT_URL")
        if conn:
            service = BlobServiceClient.from_connection_string(conn, **sizes)
        elif account_url:
            try:
                from azure.identity import DefaultAzureCredential
            except ImportError:
                raise StorageConfigError(
                    "LABELER_AZURE_STORAGE_ACCOUNT_URL signs in with DefaultAzureCredential, which "
                    "needs the azure-identity package (pip install 'labeler[azure]')"
                ) from None
            service = BlobServiceClient(account_url, credential=DefaultAzureCredential(), **sizes)
        else:
            raise StorageConfigError(
                "Azure Blob Storage needs LABELER_AZURE_STORAGE_CONNECTION_STRING or "
                "LABELER_AZURE_STORAGE_ACCOUNT_URL (signed in with DefaultAzureCredential)"
            )
        scratch = Path(config.get("INSTANCE_PATH") or tempfile.gettempdir()) / "blob-cache"
        return cls(service.get_container_client(container), scratch=scratch)

    def describe(self) -> str:
        return f"azure://{self.container.container_name}"

    def modified(self, key: str) -> float:
        """When the blob was written (seconds since the epoch); FileNotFoundError if missing."""
        _exists, missing = self._errors()
        try:
            props = self.container.get_blob_client(validate_key(key)).get_blob_properties()
        except missing:
            raise FileNotFoundError(key) from None
        return props.last_modified.timestamp()

    def create_container(self) -> None:
        """Create the container if it does not exist (tests, `labeler storage migrate`)."""
        from azure.core.exceptions import ResourceExistsError

        try:
            self.container.create_container()
        except ResourceExistsError:
            pass

    def _errors(self):
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

        return ResourceExistsError, ResourceNotFoundError

    def put(self, key: str, data: bytes, *, durable: bool = True) -> None:
        """Store ``data`` under ``key``; a no-op if the same bytes are there, replaced if not."""
        exists_error, _missing = self._errors()
        validate_key(key)
        try:
            self.container.upload_blob(key, data, overwrite=False)
        except exists_error:
            if self.size(key) == len(data) and b"".join(self.stream(key)) == data:
                return
            self.container.upload_blob(key, data, overwrite=True)

    def make_durable(self) -> None:
        """Nothing to do: a blob is durable once its upload returns."""

    def put_stream(self, key: str, fh: BinaryIO) -> None:
        """Store what ``fh`` yields under ``key`` (staged blocks, committed at the end: whole or
        absent)."""
        validate_key(key)
        self.container.upload_blob(key, fh, overwrite=True, max_concurrency=1)

    def _download(self, key: str, offset: int | None = None, length: int | None = None):
        _exists, missing = self._errors()
        validate_key(key)
        try:
            return self.container.download_blob(key, offset=offset, length=length)
        except missing:
            raise FileNotFoundError(key) from None

    def open(self, key: str) -> BinaryIO:
        """A buffered reader of the blob; FileNotFoundError if it is missing."""
        return io.BufferedReader(_ChunkReader(self._download(key).chunks()), CHUNK)

    def stream(self, key: str, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        """The blob's bytes from ``start`` (``length`` of them, or to the end), in 1 MiB pieces;
        FileNotFoundError here (before any piece) if it is missing."""
        if length == 0:
            self.size(key)
            return iter(())
        offset = start if (start or length is not None) else None
        downloader = self._download(key, offset=offset, length=length)
        return iter(downloader.chunks())

    def exists(self, key: str) -> bool:
        return self.container.get_blob_client(validate_key(key)).exists()

    def delete(self, key: str) -> None:
        """Delete the blob; a missing key is fine."""
        _exists, missing = self._errors()
        try:
            self.container.delete_blob(validate_key(key))
        except missing:
            pass

    def size(self, key: str) -> int:
        _exists, missing = self._errors()
        try:
            return self.container.get_blob_client(validate_key(key)).get_blob_properties().size
        except missing:
            raise FileNotFoundError(key) from None

    def path(self, key: str) -> Path | None:
        """None: a blob has no local path (use stream() or local_file())."""
        validate_key(key)
        return None

    def local_file(self, key: str) -> Path:
        """A local copy of the blob in the scratch cache (downloaded once; for code that needs a
        file, such as the training manifest). The cache is disposable: deleting it costs only a
        download."""
        dest = self.scratch / validate_key(key)
        if dest.is_file():
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                for piece in self.stream(key):
                    f.write(piece)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return dest

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        """Yield stored keys under ``prefix`` (a "directory" such as "thumbs/"), sorted."""
        prefix = prefix.strip("/")
        starts = f"{prefix}/" if prefix else None
        for blob in self.container.list_blobs(name_starts_with=starts):
            if _KEY_RE.fullmatch(blob.name) and not any(
                p.startswith(".") for p in blob.name.split("/")
            ):
                yield blob.name


class _ChunkReader(io.RawIOBase):
    """A raw reader over an iterator of byte chunks (the SDK's ranged GETs)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = iter(chunks)
        self._left = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        while not self._left:
            try:
                self._left = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(buf), len(self._left))
        buf[:n] = self._left[:n]
        self._left = self._left[n:]
        return n


def _same_content(dest: str, data: bytes) -> bool:
    """Whether ``dest`` already holds exactly ``data`` (a content-addressed blob written before)."""
    try:
        if os.stat(dest).st_size != len(data):
            return False
        with open(dest, "rb") as f:
            return f.read() == data
    except FileNotFoundError:
        return False


def _write_all(fd: int, data: bytes | memoryview) -> None:
    """Write all of ``data`` to ``fd`` (os.write may write less than it is given)."""
    written = os.write(fd, data)
    if written < len(data):
        view = memoryview(data)
        while written < len(view):
            n = os.write(fd, view[written:])
            if not n:
                raise OSError(errno.EIO, "the file takes no more bytes")
            written += n


def _copy_all(fd: int, fh: BinaryIO) -> None:
    """Copy what ``fh`` yields to ``fd``, CHUNK bytes at a time."""
    while piece := fh.read(CHUNK):
        _write_all(fd, piece)


def _missing_folders(folder: str) -> list[str]:
    """``folder`` and its parents that do not exist yet, deepest first."""
    missing = []
    while folder and not os.path.isdir(folder):
        missing.append(folder)
        folder = folder.rpartition("/")[0]
    return missing


def _fsync_dir(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
