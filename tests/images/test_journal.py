"""Import journals and recovery, in one process: what recovery deletes, spares and waits for."""

from __future__ import annotations

import hashlib
import json
import threading

import pytest

from labeler.images.journal import Journal, recover_interrupted_imports
from labeler.images.models import Image
from labeler.images.storage import content_key


def key(n: int) -> str:
    return content_key("originals", hashlib.sha256(str(n).encode()).hexdigest(), "jpg")


@pytest.fixture()
def storage(app):
    return app.extensions["labeler_storage"]


def dead_journal(storage, keys: list[str]) -> None:
    """What a killed import leaves: a journal nobody holds, and its files."""
    jdir = storage.root / ".journal"
    jdir.mkdir(parents=True, exist_ok=True)
    (jdir / "dead.jsonl").write_text(json.dumps(keys) + "\n" + '["torn', encoding="utf-8")
    for k in keys:
        storage.put(k, k.encode())


def test_recovery_spares_live_imports_and_committed_rows(db, make_project, storage):
    dead_keys = [key(i) for i in range(4)]
    dead_journal(storage, dead_keys)
    project = make_project()
    db.add(
        Image(
            project_id=project.id,
            sha256="0" * 64,
            filename="kept.jpg",
            width=1,
            height=1,
            format="JPEG",
            byte_size=1,
            original_key=dead_keys[0],
            display_key=key(100),
            thumb_key=key(101),
        )
    )
    db.flush()
    live = Journal(storage.root)
    with live.writing([dead_keys[1]]):  # a live import found the dead import's file
        pass
    try:
        removed = recover_interrupted_imports(db, storage)
        assert removed == 2
        assert [storage.exists(k) for k in dead_keys] == [True, True, False, False]
        assert live.path.exists()  # a live import's journal is left alone
        assert not (storage.root / ".journal" / "dead.jsonl").exists()
    finally:
        live.finish()
    assert not live.path.exists()


def test_recovery_waits_while_an_import_writes(db, storage):
    dead_journal(storage, [key(1)])
    live = Journal(storage.root)
    done = threading.Event()
    removed: list[int] = []

    def recover() -> None:
        removed.append(recover_interrupted_imports(db, storage))
        done.set()

    with live.writing([key(2)]):
        thread = threading.Thread(target=recover)
        thread.start()
        assert not done.wait(0.3)  # held off while the import lists and writes its files
        storage.put(key(2), b"x")
    assert done.wait(10)
    thread.join(10)
    live.finish()
    assert removed == [1] and storage.exists(key(2)) and not storage.exists(key(1))


def test_abandoned_journal_is_recovered(db, storage):
    journal = Journal(storage.root)
    with journal.writing([key(7)]):
        storage.put(key(7), b"x")
    journal.abandon()  # the import failed: its lock is released, its journal stays
    assert recover_interrupted_imports(db, storage) == 1
    assert not storage.exists(key(7))
