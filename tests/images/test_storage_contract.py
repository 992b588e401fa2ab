"""The storage contract, run against every backend: the local folder and Azure Blob (on Azurite).

put, get, ranges, exists, delete, listing (recovery walks it), crash-safe writes (a write that dies
leaves nothing half-written under the key or in the listing), content addressing (racing writers of
one hash leave one whole blob), streamed reads in bounded pieces (no whole-file buffering).
"""

from __future__ import annotations

import hashlib
import io
import threading
from pathlib import Path

import pytest

from labeler.images.storage import (
    AzureBlobStorage,
    InvalidKey,
    LocalStorage,
    Storage,
    StorageConfigError,
    content_key,
    sha256_of,
    storage_from_url,
)

MiB = 1024 * 1024


@pytest.fixture(params=["local", "azure"])
def storage(request, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "blobs")
    azurite = request.getfixturevalue("azurite")
    cfg = {**azurite.config(), "INSTANCE_PATH": str(tmp_path / "instance")}
    store = storage_from_url(cfg["STORAGE_URL"], cfg)
    assert isinstance(store, AzureBlobStorage)
    store.create_container()
    return store


def blob(n: int, seed: int = 0) -> bytes:
    return (hashlib.sha256(str(seed).encode()).digest() * (n // 32 + 1))[:n]


def test_put_get_size_exists_delete(storage: Storage) -> None:
    data = blob(5000)
    storage.put("originals/ab/x.jpg", data)
    assert storage.exists("originals/ab/x.jpg")
    assert storage.size("originals/ab/x.jpg") == 5000
    with storage.open("originals/ab/x.jpg") as fh:
        assert fh.read() == data
    with storage.open("originals/ab/x.jpg") as fh:  # read in small parts too
        assert fh.read(10) + fh.read(4990) + fh.read(1) == data
    assert b"".join(storage.stream("originals/ab/x.jpg")) == data
    assert storage.local_file("originals/ab/x.jpg").read_bytes() == data
    storage.delete("originals/ab/x.jpg")
    assert not storage.exists("originals/ab/x.jpg")
    storage.delete("originals/ab/x.jpg")  # a missing key is fine


def test_missing_key_raises_file_not_found(storage: Storage) -> None:
    assert not storage.exists("nope/x")
    for read in (
        storage.open,
        storage.size,
        storage.stream,
        storage.local_file,
        lambda k: storage.stream(k, 3, 4),
    ):
        with pytest.raises(FileNotFoundError):
            read("nope/x")


@pytest.mark.parametrize("bad", ["", "/abs", "a/../b", ".hidden", "A/B", "a//b", "a/.tmp-x"])
def test_invalid_keys_refused_everywhere(storage: Storage, bad: str) -> None:
    for call in (
        lambda: storage.put(bad, b"x"),
        lambda: storage.put_stream(bad, io.BytesIO(b"x")),
        lambda: storage.exists(bad),
        lambda: storage.open(bad),
        lambda: storage.stream(bad),
        lambda: storage.delete(bad),
        lambda: storage.size(bad),
    ):
        with pytest.raises(InvalidKey):
            call()


def test_ranges(storage: Storage) -> None:
    data = blob(3 * MiB + 123, seed=1)
    storage.put("r/big", data)
    for start, length in [(0, 1), (1000, 100), (MiB - 1, 2), (3 * MiB, 123), (5, None)]:
        got = b"".join(storage.stream("r/big", start, length))
        assert got == data[start : None if length is None else start + length], (start, length)
    assert b"".join(storage.stream("r/big", 0, 0)) == b""


def test_reads_stream_in_bounded_pieces(storage: Storage) -> None:
    """A 6 MiB blob arrives in pieces of at most 1 MiB: nothing is read whole into memory."""
    data = blob(6 * MiB, seed=2)
    storage.put("s/big", data)
    pieces = list(storage.stream("s/big"))
    assert len(pieces) >= 6 and max(map(len, pieces)) <= MiB
    assert b"".join(pieces) == data
    assert sha256_of(storage, "s/big") == hashlib.sha256(data).hexdigest()


def test_put_is_idempotent_and_replaces_other_bytes(storage: Storage) -> None:
    storage.put("k/a", b"same")
    storage.put("k/a", b"same")
    assert b"".join(storage.stream("k/a")) == b"same"
    storage.put("k/a", b"other bytes")
    assert b"".join(storage.stream("k/a")) == b"other bytes"
    assert list(storage.iter_keys("k")) == ["k/a"]


def test_listing_for_recovery(storage: Storage) -> None:
    keys = ["thumbs/aa/bb/1.jpg", "thumbs/aa/cc/2.jpg", "thumbs/ff/00/3.jpg", "display/aa/bb/1.jpg"]
    for k in keys:
        storage.put(k, k.encode())
    storage.put("thumbsx/aa/4.jpg", b"not under thumbs/")
    assert list(storage.iter_keys("thumbs/")) == sorted(k for k in keys if k.startswith("thumbs/"))
    assert list(storage.iter_keys("thumbs/aa")) == ["thumbs/aa/bb/1.jpg", "thumbs/aa/cc/2.jpg"]
    assert list(storage.iter_keys("nothing")) == []
    assert set(storage.iter_keys()) == {*keys, "thumbsx/aa/4.jpg"}


class _DiesAfter(io.RawIOBase):
    """A source that yields ``n`` bytes, then fails like a process killed mid-write."""

    def __init__(self, n: int) -> None:
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self.left <= 0:
            raise OSError("the writer died")
        n = min(len(buf), self.left)
        buf[:n] = b"x" * n
        self.left -= n
        return n


def test_crash_mid_write_leaves_nothing_half_written(storage: Storage) -> None:
    with pytest.raises(OSError, match="the writer died"):
        storage.put_stream("c/new", io.BufferedReader(_DiesAfter(5 * MiB)))
    assert not storage.exists("c/new")
    assert list(storage.iter_keys("c")) == []
    storage.put("c/old", b"whole")
    with pytest.raises(OSError, match="the writer died"):
        storage.put_stream("c/old", io.BufferedReader(_DiesAfter(5 * MiB)))
    assert b"".join(storage.stream("c/old")) == b"whole"  # the old blob stays whole
    assert list(storage.iter_keys("c")) == ["c/old"]
    if isinstance(storage, LocalStorage):  # no temp files left behind either
        assert [p.name for p in (storage.root / "c").iterdir()] == ["old"]


def test_put_stream_copies_in_pieces(storage: Storage) -> None:
    data = blob(9 * MiB, seed=3)
    storage.put_stream("p/big", io.BytesIO(data))
    assert storage.size("p/big") == len(data)
    assert sha256_of(storage, "p/big") == hashlib.sha256(data).hexdigest()


def test_content_addressed_writers_race_to_one_blob(storage: Storage) -> None:
    data = blob(300_000, seed=4)
    sha = hashlib.sha256(data).hexdigest()
    key = content_key("originals", sha, "jpg")
    assert key == f"originals/{sha[:2]}/{sha[2:4]}/{sha}.jpg"
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def write() -> None:
        try:
            barrier.wait()
            storage.put(key, data, durable=False)
        except BaseException as exc:  # noqa: BLE001 (collected and asserted below)
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    storage.make_durable()
    assert errors == []
    assert list(storage.iter_keys("originals")) == [key]
    assert sha256_of(storage, key) == sha


def test_storage_urls(tmp_path: Path) -> None:
    cfg = {"STORAGE_PATH": str(tmp_path / "files")}
    default = storage_from_url(None, cfg)
    assert isinstance(default, LocalStorage) and default.root == (tmp_path / "files").resolve()
    other = storage_from_url(f"file://{tmp_path}/elsewhere", cfg)
    assert isinstance(other, LocalStorage) and other.root == (tmp_path / "elsewhere").resolve()
    for bad, words in [
        ("s3://bucket", "must start with file:// or azure://"),
        ("file://relative/path", "file:///absolute/path"),
        ("azure://Bad_Name", "3-63 lowercase"),
        ("azure://images/sub", "azure://<container>"),
        ("azure://images", "LABELER_AZURE_STORAGE_CONNECTION_STRING"),  # no credentials
    ]:
        with pytest.raises(StorageConfigError, match=words):
            storage_from_url(bad, cfg)


def test_wrong_account_key_is_an_error_not_a_missing_blob(azurite, tmp_path: Path) -> None:
    cfg = azurite.config()
    cfg["AZURE_STORAGE_CONNECTION_STRING"] = cfg["AZURE_STORAGE_CONNECTION_STRING"].replace(
        "AccountKey=Eby8", "AccountKey=Xby8"
    )
    store = storage_from_url(cfg["STORAGE_URL"], {**cfg, "INSTANCE_PATH": str(tmp_path)})
    from azure.core.exceptions import HttpResponseError

    with pytest.raises(HttpResponseError):
        store.put("a/b", b"x")


def test_azure_local_file_is_a_disposable_cache(azurite, tmp_path: Path) -> None:
    cfg = {**azurite.config(), "INSTANCE_PATH": str(tmp_path / "inst")}
    store = storage_from_url(cfg["STORAGE_URL"], cfg)
    store.create_container()
    store.put("display/aa/bb/x.jpg", b"pixels")
    assert store.path("display/aa/bb/x.jpg") is None  # never a local path of a blob
    first = store.local_file("display/aa/bb/x.jpg")
    assert first.is_relative_to(tmp_path / "inst" / "blob-cache")
    first.unlink()
    assert store.local_file("display/aa/bb/x.jpg").read_bytes() == b"pixels"
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".")]
