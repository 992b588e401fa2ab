import io
import os
from pathlib import Path

import hostile
import pytest

from labeler.images.processing import ImageLimits, ImageRejected
from labeler.images.sources import SourceFile, clean_name, iter_source, iter_uploads

SMALL = ImageLimits(max_file_bytes=1024 * 1024)


def read_all(files: list[SourceFile]) -> dict[str, bytes | str]:
    """name -> bytes, or the rejection reason."""
    out: dict[str, bytes | str] = {}
    for f in files:
        try:
            out[f.name] = f.read()
        except ImageRejected as e:
            out[f.name] = e.reason
    return out


def collect(it) -> dict[str, bytes | str]:
    # Read while iterating: zip entries are only readable while the iterator is open.
    out: dict[str, bytes | str] = {}
    for f in it:
        out.update(read_all([f]))
    return out


# -- folders -------------------------------------------------------------------------


def test_folder_recursive_sorted_skipping_hidden(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.jpg").write_bytes(b"2")
    (tmp_path / "a.jpg").write_bytes(b"a")
    (tmp_path / "c.png").write_bytes(b"c")
    (tmp_path / ".DS_Store").write_bytes(b"junk")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.jpg").write_bytes(b"x")
    (tmp_path / "__MACOSX").mkdir()
    (tmp_path / "__MACOSX" / "a.jpg").write_bytes(b"x")
    assert collect(iter_source(tmp_path)) == {"a.jpg": b"a", "b/2.jpg": b"2", "c.png": b"c"}


def test_folder_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(b"secret")
    (root / "real.jpg").write_bytes(b"real")
    (root / "out.jpg").symlink_to(outside)
    (root / "in.jpg").symlink_to(root / "real.jpg")
    (root / "dangling.jpg").symlink_to(tmp_path / "missing")
    (root / "outdir").symlink_to(tmp_path)
    assert collect(iter_source(root)) == {"in.jpg": b"real", "real.jpg": b"real"}


def test_folder_skips_fifos(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.jpg")
    (tmp_path / "a.jpg").write_bytes(b"a")
    assert collect(iter_source(tmp_path)) == {"a.jpg": b"a"}


def test_folder_oversized_file(tmp_path: Path) -> None:
    (tmp_path / "big.jpg").write_bytes(b"\0" * 2000)
    limits = ImageLimits(max_file_bytes=1000)
    assert collect(iter_source(tmp_path, limits=limits))["big.jpg"].startswith("file too large")


def test_folder_expands_zip(tmp_path: Path) -> None:
    (tmp_path / "batch.zip").write_bytes(hostile.zip_bytes({"x/1.jpg": b"1"}))
    assert collect(iter_source(tmp_path)) == {"batch.zip/x/1.jpg": b"1"}


def test_not_a_folder_or_zip(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"a")
    with pytest.raises(ValueError):
        list(iter_source(tmp_path / "a.jpg"))


# -- zip archives -----------------------------------------------------------------------


def write_zip(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "in.zip"
    path.write_bytes(data)
    return path


def test_zip_entries_sorted_skipping_junk(tmp_path: Path) -> None:
    data = hostile.zip_bytes(
        {
            "b/2.jpg": b"2",
            "a.jpg": b"a",
            "b/": b"",
            "__MACOSX/._a.jpg": b"junk",
            "b/.DS_Store": b"junk",
        }
    )
    assert collect(iter_source(write_zip(tmp_path, data))) == {"a.jpg": b"a", "b/2.jpg": b"2"}


@pytest.mark.parametrize(
    "name", ["../../evil.jpg", "/etc/evil.jpg", "a/../../evil.jpg", "C:/evil.jpg", "..\\evil.jpg"]
)
def test_zip_slip_entry_rejected(tmp_path: Path, name: str) -> None:
    data = hostile.zip_bytes({name: b"evil", "ok.jpg": b"ok"})
    result = collect(iter_source(write_zip(tmp_path, data)))
    assert result.pop("ok.jpg") == b"ok"
    assert list(result.values()) == ["unsafe path in archive"]
    assert not (tmp_path.parent / "evil.jpg").exists()


def test_zip_bomb_declared_size(tmp_path: Path) -> None:
    data = hostile.zip_bomb(2 * 1024 * 1024)
    assert len(data) < 10_000
    result = collect(iter_source(write_zip(tmp_path, data), limits=SMALL))
    assert result["bomb.jpg"].startswith("file too large: 2.0 MB")


def test_zip_lying_header_cannot_inflate_past_declared_size(tmp_path: Path) -> None:
    data = hostile.zip_lying_sizes(b"\0" * (2 * 1024 * 1024), declared=1000)
    result = collect(iter_source(write_zip(tmp_path, data), limits=SMALL))
    assert result["liar.jpg"].startswith("corrupt zip entry")


def test_zip_total_size_cap(tmp_path: Path) -> None:
    data = hostile.zip_bytes({f"{i}.jpg": b"\0" * 1000 for i in range(3)})
    limits = ImageLimits(max_archive_bytes=2500)
    result = collect(iter_source(write_zip(tmp_path, data), limits=limits))
    assert list(result) == ["in.zip"]
    assert result["in.zip"].startswith("zip archive too large")


def test_zip_entry_count_cap(tmp_path: Path) -> None:
    data = hostile.zip_bytes({f"{i}.jpg": b"x" for i in range(5)})
    limits = ImageLimits(max_archive_entries=4)
    result = collect(iter_source(write_zip(tmp_path, data), limits=limits))
    assert "more than the 4 limit" in result["in.zip"]


def test_corrupt_zip(tmp_path: Path) -> None:
    result = collect(iter_source(write_zip(tmp_path, b"PK\x03\x04 not really")))
    assert result["in.zip"].startswith("not a valid zip archive")


def test_encrypted_entry(tmp_path: Path) -> None:
    data = bytearray(hostile.zip_bytes({"a.jpg": b"a"}))
    central = data.find(b"PK\x01\x02")
    data[central + 8] |= 0x1  # general purpose flag: encrypted
    result = collect(iter_source(write_zip(tmp_path, bytes(data))))
    assert result == {"a.jpg": "encrypted zip entry"}


def test_empty_entry_reads_empty(tmp_path: Path) -> None:
    # Empty files are passed through; process_image rejects them ("empty file").
    assert collect(iter_source(write_zip(tmp_path, hostile.zip_bytes({"e.jpg": b""})))) == {
        "e.jpg": b""
    }


# -- uploads -------------------------------------------------------------------------------


class NonSeekable(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        chunk = self._buf.read(len(b))
        b[: len(chunk)] = chunk
        return len(chunk)


def test_uploads_with_zip_and_sanitized_names() -> None:
    files = [
        ("C:\\Users\\me\\photo 1.jpg", io.BytesIO(b"p1")),
        ("../../etc/pa\x00ss\u202ewd.jpg", io.BytesIO(b"p2")),
        ("batch.ZIP", io.BytesIO(hostile.zip_bytes({"in/a.jpg": b"a", "../x.jpg": b"x"}))),
        ("stream.zip", NonSeekable(hostile.zip_bytes({"s.jpg": b"s"}))),
        ("", io.BytesIO(b"anon")),
    ]
    assert collect(iter_uploads(files)) == {
        "photo 1.jpg": b"p1",
        "passwd.jpg": b"p2",
        "batch.ZIP/in/a.jpg": b"a",
        "batch.ZIP/../x.jpg": "unsafe path in archive",
        "stream.zip/s.jpg": b"s",
        "unnamed": b"anon",
    }


def test_upload_read_is_capped() -> None:
    limits = ImageLimits(max_file_bytes=10)
    result = collect(iter_uploads([("a.jpg", io.BytesIO(b"x" * 11))], limits=limits))
    assert result["a.jpg"].startswith("file too large")


def test_uploaded_zip_bomb() -> None:
    files = [("bomb.zip", io.BytesIO(hostile.zip_bomb(2 * 1024 * 1024)))]
    result = collect(iter_uploads(files, limits=SMALL))
    assert result["bomb.zip/bomb.jpg"].startswith("file too large")


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("a/b/c.jpg", "c.jpg"),
        ("x\r\n.jpg", "x.jpg"),
        ("..", "unnamed"),
        ("\x1b[31m.jpg", "[31m.jpg"),
    ],
)
def test_clean_name(raw: str, clean: str) -> None:
    assert clean_name(raw) == clean
