"""Enumerate the files of an import: a folder, a zip archive or a set of uploads.

Nothing is extracted to disk. Each SourceFile reads its bytes lazily and with a
hard cap, so lying sizes cannot exhaust memory; a file that cannot be read
safely still appears, and its ``read()`` raises ImageRejected with the reason.
Zip archives are read while the iterator is open: call ``read()`` before the
iteration ends.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from labeler.images.processing import DEFAULT_LIMITS, ImageLimits, ImageRejected, MiB

_MAX_NAME_LEN = 255


@dataclass(frozen=True)
class SourceFile:
    """One file of an import: a name for reports and a lazy, capped reader."""

    name: str
    _reader: Callable[[], bytes] = field(repr=False, compare=False)

    def read(self) -> bytes:
        """The file's bytes; raises ImageRejected if it cannot be read safely."""
        return self._reader()


def iter_source(path: Path, *, limits: ImageLimits = DEFAULT_LIMITS) -> Iterator[SourceFile]:
    """Yield the files of a folder (recursively, sorted) or of a .zip archive."""
    path = Path(path)
    if path.is_dir():
        yield from _iter_folder(path, limits)
    elif path.is_file() and path.suffix.lower() == ".zip":
        with path.open("rb") as f:
            yield from _iter_zip(f, clean_name(path.name), "", limits)
    else:
        raise ValueError(f"{path} is neither a folder nor a .zip file")


def iter_uploads(
    files: Iterable[tuple[str, IO[bytes]]], *, limits: ImageLimits = DEFAULT_LIMITS
) -> Iterator[SourceFile]:
    """Yield uploaded files, expanding uploaded .zip archives (one level)."""
    for raw_name, stream in files:
        name = clean_name(raw_name)
        if name.lower().endswith(".zip"):
            if stream.seekable():
                stream.seek(0)
                yield from _iter_zip(stream, name, f"{name}/", limits)
            else:
                # zipfile needs seek(): spool a non-seekable upload to a temp file.
                with tempfile.SpooledTemporaryFile(max_size=16 * MiB) as spool:
                    shutil.copyfileobj(stream, spool)
                    spool.seek(0)
                    yield from _iter_zip(spool, name, f"{name}/", limits)
        else:
            yield SourceFile(name, _stream_reader(stream, limits))


def clean_name(name: str) -> str:
    """Basename of an uploaded name without control or format characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if unicodedata.category(c) not in ("Cc", "Cf", "Cs"))
    base = base.strip()[:_MAX_NAME_LEN]
    return base if base not in ("", ".", "..") else "unnamed"


def _rejected(name: str, reason: str) -> SourceFile:
    def read() -> bytes:
        raise ImageRejected(reason)

    return SourceFile(name, read)


def _too_large(size: int, limits: ImageLimits) -> str:
    limit = limits.max_file_bytes / MiB
    return f"file too large: {size / MiB:.1f} MB exceeds the {limit:.1f} MB limit"


def _read_capped(f: IO[bytes], limits: ImageLimits) -> bytes:
    data = f.read(limits.max_file_bytes + 1)
    if len(data) > limits.max_file_bytes:
        limit = limits.max_file_bytes / MiB
        raise ImageRejected(f"file too large: exceeds the {limit:.1f} MB limit")
    return data


# -- folders -----------------------------------------------------------------


def _iter_folder(root: Path, limits: ImageLimits) -> Iterator[SourceFile]:
    root = root.resolve()
    names: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):  # does not follow dir symlinks
        dirnames[:] = [d for d in dirnames if not _hidden(d)]
        rel = Path(dirpath).relative_to(root)
        names.extend((rel / f).as_posix() for f in filenames if not _hidden(f))
    for name in sorted(names):
        path = root / name
        if path.is_symlink() and not path.resolve().is_relative_to(root):
            continue  # a link out of the folder: not part of this import
        try:
            st = path.stat()
        except OSError:
            continue  # dangling link, or removed meanwhile
        if not stat.S_ISREG(st.st_mode):
            continue  # fifos, sockets, devices: reading could block or never end
        if name.lower().endswith(".zip"):
            with path.open("rb") as f:
                yield from _iter_zip(f, name, f"{name}/", limits)
        elif st.st_size > limits.max_file_bytes:
            yield _rejected(name, _too_large(st.st_size, limits))
        else:
            yield SourceFile(name, _file_reader(path, limits))


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def _file_reader(path: Path, limits: ImageLimits) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            with path.open("rb") as f:
                return _read_capped(f, limits)
        except OSError as e:
            raise ImageRejected(f"cannot read file: {e.strerror or e}") from e

    return read


# -- uploads -----------------------------------------------------------------


def _stream_reader(stream: IO[bytes], limits: ImageLimits) -> Callable[[], bytes]:
    def read() -> bytes:
        if stream.seekable():
            stream.seek(0)
        return _read_capped(stream, limits)

    return read


# -- zip archives ------------------------------------------------------------


def _iter_zip(f: IO[bytes], label: str, prefix: str, limits: ImageLimits) -> Iterator[SourceFile]:
    """Yield the entries of the zip in ``f``; names are ``prefix`` + the entry path."""
    try:
        zf = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        yield _rejected(label, f"not a valid zip archive: {e}")
        return
    with zf:
        entries = [i for i in zf.infolist() if not i.is_dir() and not _skipped_entry(i.filename)]
        if len(entries) > limits.max_archive_entries:
            yield _rejected(
                label,
                f"zip archive has {len(entries)} files, more than the "
                f"{limits.max_archive_entries} limit",
            )
            return
        total = sum(i.file_size for i in entries)
        if total > limits.max_archive_bytes:
            yield _rejected(
                label,
                f"zip archive too large: {total / MiB:.0f} MB uncompressed exceeds the "
                f"{limits.max_archive_bytes / MiB:.0f} MB limit",
            )
            return
        for info in sorted(entries, key=lambda i: i.filename):
            safe = _safe_entry_name(info.filename)
            if safe is None:
                yield _rejected(prefix + _report_name(info.filename), "unsafe path in archive")
            elif info.flag_bits & 0x1:
                yield _rejected(prefix + safe, "encrypted zip entry")
            elif info.file_size > limits.max_file_bytes:
                yield _rejected(prefix + safe, _too_large(info.file_size, limits))
            else:
                yield SourceFile(prefix + safe, _zip_reader(zf, info, limits))


def _skipped_entry(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return any(p == "__MACOSX" or (p.startswith(".") and p not in (".", "..")) for p in parts)


def _safe_entry_name(name: str) -> str | None:
    """The entry's path if it stays inside the archive root, else None (zip slip)."""
    name = name.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or "\0" in name:
        return None
    parts = [p for p in PurePosixPath(name).parts if p != "."]
    if not parts or ".." in parts:
        return None
    cleaned = _report_name("/".join(parts))
    return cleaned if cleaned == "/".join(parts) else None


def _report_name(name: str) -> str:
    return "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf", "Cs"))[
        : _MAX_NAME_LEN * 4
    ]


def _zip_reader(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, limits: ImageLimits
) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            with zf.open(info) as entry:
                # ZipExtFile stops at the declared size and checks the CRC, and the
                # declared size was checked above; the cap is a second line of defence.
                return _read_capped(entry, limits)
        except zipfile.BadZipFile as e:
            raise ImageRejected(f"corrupt zip entry: {e}") from e
        except NotImplementedError as e:
            raise ImageRejected(f"unsupported zip compression: {e}") from e
        except (OSError, EOFError, zlib.error) as e:
            raise ImageRejected(f"cannot read zip entry: {e}") from e

    return read


def upload_file_count(name: str, f: IO[bytes]) -> int:
    """How many files ``iter_uploads`` will yield for one upload (a zip's entries; 1 otherwise):
    the total an import job's progress counts towards."""
    if not clean_name(name).lower().endswith(".zip"):
        return 1
    try:
        with zipfile.ZipFile(f) as zf:
            return max(
                sum(1 for i in zf.infolist() if not i.is_dir() and not _skipped_entry(i.filename)),
                1,
            )
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return 1  # reported as one rejected file
    finally:
        f.seek(0)
