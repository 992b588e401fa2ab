"""Crash safety of imports: the journal of files an import is writing, and recovery after a crash.

An import lists every key in its journal before it writes (or finds) the file, writes the files
(content-addressed: one file per content, shared by every project that imports it), and the caller's
checkpoints commit the rows; the journal is removed after the last commit. A journal whose import
died (kill -9, power loss, an exception) lists files that may have no row: recovery deletes those.

Recovery must never delete a file that a live import or a committed row refers to. Two locks
(fcntl.flock, released by the OS when a process dies, so a dead import's locks never linger):

* each journal is locked exclusively by its import for the import's whole life: recovery replays
  only journals it can lock, i.e. whose import is dead;
* `.journal/.lock` is held shared by an import while it creates its journal, lists keys and writes
  or finds their files, and while it removes its journal after the last commit; recovery holds it
  exclusively. So while recovery runs, every file a live import has written or found is listed in
  that import's (live) journal, which recovery reads and spares; every live journal stays in place
  until its rows are committed; and a file recovery deletes before an import reaches it is written
  again by that import (put() writes whatever is missing), under the same shared lock, before any
  row refers to it.

Recovery also spares every key a committed row refers to, in any project. It checks rows on a
connection of its own, opened after it holds the lock, so it sees every row committed before then
(an import that committed earlier has either removed its journal, after that commit, or still holds
it). Storage other than LocalStorage has no journal (its own store guarantees atomic writes):
there ``sweep_unreferenced`` (``labeler images recover``) walks the listing instead and deletes the
import files that no row refers to and that are older than any import's checkpoint interval.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from .models import Image
from .storage import LocalStorage, Storage

log = logging.getLogger(__name__)

JOURNAL_DIR = ".journal"
LOCK_NAME = ".lock"


def _open_lock(jdir: Path) -> int:
    jdir.mkdir(parents=True, exist_ok=True)
    return os.open(jdir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


class Journal:
    """The keys an import is writing; it exists only while the import is in flight.

    The import holds an exclusive lock on its journal file from creation to the end, so recovery
    never replays a live import's journal.
    """

    def __init__(self, root: Path) -> None:
        self.dir = Path(root) / JOURNAL_DIR
        self._lock = _open_lock(self.dir)
        self.path = self.dir / f"{uuid.uuid4().hex}.jsonl"
        tmp = self.dir / f".new-{self.path.name}"
        try:
            with self.writing():
                # Created under a hidden name, locked, then renamed: never seen unlocked.
                self._fh = open(tmp, "a", encoding="utf-8")  # noqa: SIM115 (held open: the lock lives as long as the import)
                fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.replace(tmp, self.path)
        except BaseException:
            if getattr(self, "_fh", None) is not None:
                self._fh.close()
            tmp.unlink(missing_ok=True)
            os.close(self._lock)
            raise

    @contextmanager
    def writing(self, keys: Iterable[str] = ()) -> Iterator[None]:
        """List `keys`, then let the caller write or find their files, with recovery held off."""
        fcntl.flock(self._lock, fcntl.LOCK_SH)
        try:
            keys = list(keys)
            if keys:
                self._fh.write(json.dumps(keys) + "\n")
                self._fh.flush()
                os.fsync(self._fh.fileno())
            yield
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)

    def finish(self) -> None:
        """Everything listed is committed: drop the journal."""
        with self.writing():
            self.path.unlink(missing_ok=True)
        self._close()

    def abandon(self) -> None:
        """Leave the journal for recovery (uncommitted files may exist) and release its lock."""
        self._close()

    def _close(self) -> None:
        self._fh.close()
        os.close(self._lock)


def recover_interrupted_imports(session: Session, storage: Storage) -> int:
    """Delete files written by imports that died before their rows were committed.

    Journals of live imports are left alone; files that a live import has listed, or that any
    committed row refers to, are never deleted. Returns the number of files deleted.
    """
    if not isinstance(storage, LocalStorage):
        return 0
    jdir = storage.root / JOURNAL_DIR
    if not jdir.is_dir():
        return 0
    lock = _open_lock(jdir)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # imports hold it shared only for a few file writes
        for stale in jdir.glob(
            ".new-*"
        ):  # a journal's creation never finished (it is never unlocked)
            stale.unlink(missing_ok=True)
        dead, in_use = [], set()
        for path in sorted(jdir.glob("*.jsonl")):
            fh = _lock_if_dead(path)
            if fh is None:
                in_use |= _read_keys(path)
            else:
                dead.append((path, fh))
        removed = 0
        try:
            for path, _fh in dead:
                keys = _read_keys(path) - in_use
                for key in keys - _referenced(session, keys):
                    storage.delete(key)
                    removed += 1
                path.unlink(missing_ok=True)
        finally:
            for _path, fh in dead:
                fh.close()
    finally:
        os.close(lock)  # releases the lock
    if removed:
        log.warning("removed %d files left by an interrupted import", removed)
    return removed


def _lock_if_dead(path: Path):
    """The journal opened and locked if no live import holds it, else None."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 (returned open: the lock is held until replayed)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        return None
    return fh


def _read_keys(path: Path) -> set[str]:
    keys: set[str] = set()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return keys
    for line in text.splitlines():
        try:
            keys.update(json.loads(line))
        except (json.JSONDecodeError, TypeError):
            continue  # a torn last line: the crash happened while writing it
    return keys


def _referenced(session: Session, keys: set[str]) -> set[str]:
    """The keys any committed row (any project) refers to, read on a connection of its own."""
    if not keys:
        return set()
    found: set[str] = set()
    bind = session.get_bind()
    if isinstance(bind, Engine):  # a plain read: never wait for SQLite's write lock (the caller's)
        bind = bind.execution_options(sqlite_immediate=False)
    with Session(bind=bind) as fresh:
        for chunk in _chunks(sorted(keys), 500):
            rows = fresh.execute(
                select(Image.original_key, Image.display_key, Image.thumb_key).where(
                    or_(
                        Image.original_key.in_(chunk),
                        Image.display_key.in_(chunk),
                        Image.thumb_key.in_(chunk),
                    )
                )
            ).all()
            found.update(k for row in rows for k in row)
    return found


IMPORT_PREFIXES = ("originals", "display", "thumbs")
SWEEP_GRACE_S = 24 * 3600  # far longer than an import takes between writing a file and committing


def sweep_unreferenced(
    session: Session, storage: Storage, *, older_than_s: float = SWEEP_GRACE_S
) -> int:
    """Delete import files (originals, display copies, thumbnails) that no image row refers to and
    that were written more than ``older_than_s`` ago: what an import that died left in a store
    without a journal. Younger files are spared (a live import commits its rows within minutes).
    Returns the number deleted."""
    cutoff = time.time() - older_than_s
    removed = 0
    for prefix in IMPORT_PREFIXES:
        batch: list[str] = []
        for key in storage.iter_keys(prefix):
            batch.append(key)
            if len(batch) == 500:
                removed += _sweep_batch(session, storage, batch, cutoff)
                batch = []
        removed += _sweep_batch(session, storage, batch, cutoff)
    if removed:
        log.warning("removed %d files that no image refers to (interrupted imports)", removed)
    return removed


def _sweep_batch(session: Session, storage: Storage, keys: list[str], cutoff: float) -> int:
    removed = 0
    for key in sorted(set(keys) - _referenced(session, set(keys))):
        try:
            if storage.modified(key) < cutoff:
                storage.delete(key)
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class StoreJournal:
    """An import job's journal kept in the blob store itself (for stores without local files, where
    the job's worker may be on any machine): before an image's files are written or found, one small
    blob under ``prefix`` lists their keys. The job removes its journal after its last commit; a job
    that died leaves it, and ``replay_store_journal`` (run by whoever finds the job dead) deletes the
    listed files that no committed row refers to."""

    def __init__(self, storage: Storage, prefix: str) -> None:
        self.storage, self.prefix, self.count = storage, prefix.strip("/"), 0

    @contextmanager
    def writing(self, keys: Iterable[str] = ()) -> Iterator[None]:
        self.count += 1
        entry = f"{self.prefix}/{self.count:08d}.json"
        self.storage.put(entry, json.dumps(sorted(keys)).encode())
        yield

    def finish(self) -> None:
        """After the last commit: every listed file now has its row."""
        for key in list(self.storage.iter_keys(self.prefix)):
            self.storage.delete(key)

    def abandon(self) -> None:
        """Leave the journal for replay_store_journal (uncommitted files may exist)."""


def replay_store_journal(session: Session, storage: Storage, prefix: str) -> int:
    """Delete the files a dead import job listed in its store journal that no committed row (in any
    project) refers to, then the journal; returns the number of files deleted.

    Call it only once the job's worker is known to be gone (its heartbeat is older than the
    timeout): the job itself writes nothing after that."""
    entries = list(storage.iter_keys(prefix.strip("/")))
    keys: set[str] = set()
    for entry in entries:
        try:
            with storage.open(entry) as fh:
                keys.update(json.loads(fh.read()))
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            continue
    removed = 0
    for key in sorted(keys - _referenced(session, keys)):
        storage.delete(key)
        removed += 1
    for entry in entries:
        storage.delete(entry)
    if removed:
        log.warning("removed %d files left by an import job that stopped", removed)
    return removed
