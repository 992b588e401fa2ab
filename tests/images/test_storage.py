import hashlib
import io
import os
from pathlib import Path

import pytest

from labeler.images import storage as storage_module
from labeler.images.storage import InvalidKey, LocalStorage, Storage, content_key, validate_key

SHA = hashlib.sha256(b"x").hexdigest()


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "blobs")


def all_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_local_storage_is_a_storage(storage: LocalStorage) -> None:
    s: Storage = storage
    assert s.path("a/b") is not None


def test_put_open_size_exists_delete(storage: LocalStorage) -> None:
    storage.put("originals/ab/x.jpg", b"hello")
    assert storage.exists("originals/ab/x.jpg")
    assert storage.size("originals/ab/x.jpg") == 5
    with storage.open("originals/ab/x.jpg") as f:
        assert f.read() == b"hello"
    assert storage.path("originals/ab/x.jpg").read_bytes() == b"hello"
    storage.delete("originals/ab/x.jpg")
    assert not storage.exists("originals/ab/x.jpg")
    storage.delete("originals/ab/x.jpg")  # missing is fine


def test_missing_key(storage: LocalStorage) -> None:
    assert not storage.exists("nope")
    with pytest.raises(FileNotFoundError):
        storage.open("nope")
    with pytest.raises(FileNotFoundError):
        storage.size("nope")


def test_put_leaves_no_temp_files(storage: LocalStorage) -> None:
    for i in range(5):
        storage.put(f"d/{i}", b"data" * i)
    storage.put("d/1", b"other")  # overwrite
    assert all_files(storage.root) == [f"d/{i}" for i in range(5)]
    assert storage.path("d/1").read_bytes() == b"other"
    assert oct(storage.path("d/1").stat().st_mode & 0o777) == oct(0o644)


def test_put_is_idempotent(storage: LocalStorage) -> None:
    storage.put("k", b"same")
    before = storage.path("k").stat()
    storage.put("k", b"same")
    after = storage.path("k").stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


def test_failed_write_leaves_old_content_and_no_temp(storage: LocalStorage, monkeypatch) -> None:
    storage.put("k", b"old")

    def boom(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        storage.put("k", b"new")
    assert storage.path("k").read_bytes() == b"old"
    assert all_files(storage.root) == ["k"]


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/etc/passwd",
        "../x",
        "a/../../x",
        "a/./b",
        "a//b",
        "a/",
        ".hidden",
        "a/.tmp-123",
        "UPPER",
        "a b",
        "a\\b",
        "a\0b",
        "é",
        "x" * 600,
    ],
)
def test_invalid_keys(storage: LocalStorage, key: str) -> None:
    with pytest.raises(InvalidKey):
        validate_key(key)
    with pytest.raises(InvalidKey):
        storage.put(key, b"x")
    with pytest.raises(InvalidKey):
        storage.exists(key)


def test_content_key() -> None:
    assert content_key("originals", SHA, "jpg") == f"originals/{SHA[:2]}/{SHA[2:4]}/{SHA}.jpg"
    assert content_key("thumbs", SHA, ".JPG") == f"thumbs/{SHA[:2]}/{SHA[2:4]}/{SHA}.jpg"
    assert content_key("originals", SHA) == f"originals/{SHA[:2]}/{SHA[2:4]}/{SHA}"
    with pytest.raises(InvalidKey):
        content_key("originals", "ABC", "jpg")
    with pytest.raises(InvalidKey):
        content_key("../x", SHA, "jpg")


def test_iter_keys(storage: LocalStorage) -> None:
    keys = [content_key(k, SHA, "jpg") for k in ("thumbs", "display", "originals")]
    for key in keys:
        storage.put(key, b"x")
    (storage.path(keys[0]).parent / ".tmp-crashed").write_bytes(b"partial")
    assert list(storage.iter_keys()) == sorted(keys)
    assert list(storage.iter_keys("thumbs/")) == [keys[0]]
    assert list(storage.iter_keys("missing")) == []
    with pytest.raises(InvalidKey):
        list(storage.iter_keys("../"))


def test_put_creates_missing_folders(storage: LocalStorage) -> None:
    key = content_key("display", SHA, "jpg")
    assert not storage.root.exists()
    storage.put(key, b"deep")
    storage.put_stream(content_key("thumbs", SHA, "jpg"), io.BytesIO(b"streamed"))
    assert storage.path(key).read_bytes() == b"deep"
    assert all_files(storage.root) == sorted([key, content_key("thumbs", SHA, "jpg")])
    assert oct(storage.path(key).stat().st_mode & 0o777) == oct(0o644)


@pytest.mark.parametrize("how", ["put", "put_stream"])
@pytest.mark.parametrize("where", ["new folder", "existing folder"])
def test_write_failing_midway_leaves_no_temp_file(
    storage: LocalStorage, monkeypatch, how: str, where: str
) -> None:
    if where == "existing folder":
        storage.put("f/old", b"old")
    seen: list[list[str]] = []
    real_write = os.write

    def write_then_fail(fd: int, data) -> int:
        real_write(fd, bytes(data[:3]))
        seen.append(sorted(os.listdir(storage.root / "f")))  # the temp file, while it is written
        raise OSError("disk full")

    monkeypatch.setattr(os, "write", write_then_fail)
    with pytest.raises(OSError, match="disk full"):
        if how == "put":
            storage.put("f/new", b"new data")
        else:
            storage.put_stream("f/new", io.BytesIO(b"new data"))
    monkeypatch.undo()
    # the temp file was a hidden .tmp- file in the destination folder (what recovery skips) ...
    (tmp_name,) = [n for n in seen[0] if n != "old"]
    assert tmp_name.startswith(".tmp-")
    # ... and is gone; the folder holds what it held before
    expected = ["f/old"] if where == "existing folder" else []
    assert all_files(storage.root) == expected
    assert not storage.exists("f/new")


def test_temp_name_taken_or_planted_symlink_is_never_written_through(
    storage: LocalStorage, tmp_path: Path, monkeypatch
) -> None:
    storage.put("s/first", b"1")
    outside = tmp_path / "outside"
    outside.write_bytes(b"precious")
    names = iter([0xAB, 0xAB, 0xCD])  # the first two tries hit a symlink planted under the name
    monkeypatch.setattr(storage_module, "_random_bits", lambda _bits: next(names))
    taken = storage.root / "s" / f".tmp-{0xAB:016x}"
    taken.symlink_to(outside)
    storage.put("s/second", b"2")
    assert outside.read_bytes() == b"precious"
    assert taken.is_symlink()
    assert storage.path("s/second").read_bytes() == b"2"
    assert not (storage.root / "s" / f".tmp-{0xCD:016x}").exists()  # renamed into place


def test_a_sync_another_thread_started_before_a_write_landed_does_not_count_for_it(
    storage: LocalStorage, monkeypatch
) -> None:
    """A worker's threads share the store: thread B's make_durable() running while thread A's
    deferred write is still being made must not let A's own make_durable() skip the sync its
    checkpoint needs (A commits rows that point at the file)."""
    syncs = []
    monkeypatch.setattr(storage_module.os, "sync", lambda: syncs.append("sync"))
    real_replace = os.replace

    def replace_while_another_thread_syncs(src, dst):
        storage.make_durable()  # thread B's checkpoint, before A's file is in place
        real_replace(src, dst)

    storage.put("d/b", b"b", durable=False)
    monkeypatch.setattr(storage_module.os, "replace", replace_while_another_thread_syncs)
    storage.put("d/a", b"a", durable=False)
    assert syncs == ["sync"]  # B's sync covered B's file only
    storage.make_durable()  # A's checkpoint
    assert syncs == ["sync", "sync"]
    storage.make_durable()  # nothing written since: no sync
    assert len(syncs) == 2


def test_a_durable_put_of_bytes_already_there_unsynced_syncs_them(
    storage: LocalStorage, monkeypatch
) -> None:
    """put(durable=True) returns once the blob is on disk, even when the same bytes were just put
    there by a deferred write (another thread's) that is not synced yet."""
    syncs = []
    monkeypatch.setattr(storage_module.os, "sync", lambda: syncs.append("sync"))
    storage.put("d/x", b"same", durable=False)
    storage.put("d/x", b"same")  # found in place: the deferred write is synced now
    assert syncs == ["sync"]
    storage.put("d/x", b"same")  # found and already synced
    assert syncs == ["sync"]


def test_a_durable_put_into_new_folders_syncs_their_entries(
    storage: LocalStorage, monkeypatch
) -> None:
    """The new folders' names are entries in their parents: each parent is synced, up to the first
    folder that existed, so a crash cannot lose a folder that holds a synced file."""
    synced: list[str] = []
    real = storage_module._fsync_dir
    monkeypatch.setattr(
        storage_module, "_fsync_dir", lambda path: (synced.append(str(path)), real(path))
    )
    storage.put("first", b"1")  # makes the root itself
    synced.clear()
    storage.put("thumbs/ab/cd/x.jpg", b"x")
    root = str(storage.root)
    assert synced == [
        f"{root}/thumbs/ab/cd",  # the file's entry
        f"{root}/thumbs/ab",  # cd's
        f"{root}/thumbs",  # ab's
        root,  # thumbs'
    ]
    synced.clear()
    storage.put("thumbs/ab/cd/y.jpg", b"y")  # the folders exist: only the file's entry
    assert synced == [f"{root}/thumbs/ab/cd"]
