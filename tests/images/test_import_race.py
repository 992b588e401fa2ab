"""Import recovery racing live imports, with real separate processes (one of them killed with -9).

Import A loads images 0-79 into project A and is killed after 60: 0-49 committed, 50-59 only on
disk and in its journal. Import B loads the overlapping images 20-54 and 70-84 into project B and is
paused after 40 of them (20-54, 70-74), between checkpoints: 20-44 committed, 45-54 found already
on disk (50-54 written by the dead A, not committed by anyone) and 70-74 written by B itself, all
uncommitted. Then a third import (or `labeler images recover`) replays A's dead journal while B is
alive. B then finishes. No row may be left without its files, and A's true orphans (55-59) go.
Each session begins IMMEDIATE, as requests that write do, so SQLite runs the same race.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import fresh_database, make_config
from sqlalchemy import select

import labeler
from labeler import create_app
from labeler.images.models import Image

PG_URL = os.environ.get("LABELER_TEST_DATABASE_URL")  # None: SQLite

IMPORTER = textwrap.dedent(
    """
    import io, os, sys, time
    from PIL import Image as PILImage
    from labeler import create_app
    from labeler.demo import MemorySource
    from labeler.images.services import import_images
    from labeler.errors import NotFound
    from labeler.projects.services import create_project, find_project

    url, root, name, ranges, pause_at = sys.argv[1:6]
    numbers = [i for r in ranges.split(",") for i in range(*map(int, r.split("-")))]
    pause_at = int(pause_at)
    app = create_app({"DATABASE_URL": url, "INSTANCE_PATH": root + "/instance",
                      "STORAGE_PATH": root + "/files", "LABELER_ENV": "test", "AUTH_MODE": "dev",
                      "SECRET_KEY": "x"})

    def jpeg(i):
        buf = io.BytesIO()
        PILImage.new("RGB", (64, 48), (i % 256, 90, 7)).save(buf, "JPEG", comment=f"image {i}")
        return buf.getvalue()

    seen = 0
    def progress(_name):
        global seen
        seen += 1
        if seen == pause_at:
            open(f"{root}/{name}.paused", "w").close()
            deadline = time.monotonic() + 120
            while not os.path.exists(f"{root}/{name}.go"):
                if time.monotonic() > deadline:
                    os._exit(4)
                time.sleep(0.02)

    with app.app_context():
        s = app.extensions["labeler_db"].write_session_factory()
        try:
            p = find_project(s, name)  # a later import into an existing project
        except NotFound:
            p = create_project(s, None, name, "quality")
            s.commit()
        import_images(s, None, p, [MemorySource(f"i{i}.jpg", jpeg(i)) for i in numbers],
                      storage=app.extensions["labeler_storage"], source_label=name,
                      checkpoint=s.commit, progress=progress)
    """
)


def start(script: Path, url: str, root: Path, name: str, ranges: str, pause_at: int):
    return subprocess.Popen(
        [sys.executable, str(script), url, str(root), name, ranges, str(pause_at)],
        env={**os.environ, "PYTHONPATH": str(Path(labeler.__file__).parents[1])},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"{path.name}: the import exited early: {proc.communicate()[1]}")
        assert time.monotonic() < deadline, f"timed out waiting for {path.name}"
        time.sleep(0.02)


def referenced_and_on_disk(url: str, files: Path) -> tuple[set[str], set[str]]:
    app = create_app(make_config(files.parent / "check", url))
    engine = app.extensions["labeler_db"].engine
    with engine.connect() as conn:
        rows = conn.execute(select(Image.original_key, Image.display_key, Image.thumb_key)).all()
    engine.dispose()
    referenced = {k for row in rows for k in row}
    on_disk = {
        p.relative_to(files).as_posix()
        for p in files.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(files).parts)
    }
    return referenced, on_disk


def finished(proc: subprocess.Popen) -> None:
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err


@pytest.mark.parametrize("third", ["import", "recover"])
def test_recovery_never_deletes_what_a_live_import_needs(tmp_path, third):
    script = tmp_path / "importer.py"
    script.write_text(IMPORTER)
    files = tmp_path / "files"
    journal_dir = files / ".journal"
    procs: list[subprocess.Popen] = []
    with fresh_database(tmp_path, PG_URL) as url:
        try:
            procs.append(a := start(script, url, tmp_path, "A", "0-80", pause_at=60))
            wait_for(tmp_path / "A.paused", a)
            procs.append(b := start(script, url, tmp_path, "B", "20-55,70-85", pause_at=40))
            wait_for(tmp_path / "B.paused", b)
            os.kill(a.pid, signal.SIGKILL)
            a.wait(timeout=30)
            journals = set(journal_dir.glob("*.jsonl"))
            assert len(journals) == 2  # A's (dead) and B's (alive)

            if third == "import":
                # a third import, into project A; its recovery replays A's journal first
                procs.append(c := start(script, url, tmp_path, "A", "100-105", pause_at=0))
                deadline = time.monotonic() + 90
                while all(p.exists() for p in journals):
                    assert c.poll() is None, "the third import exited early"
                    assert time.monotonic() < deadline, "recovery did not run"
                    time.sleep(0.02)
            else:
                app = create_app(make_config(tmp_path / "cli", url, STORAGE_PATH=str(files)))
                result = app.test_cli_runner().invoke(args=["images", "recover"])
                app.extensions["labeler_db"].engine.dispose()
                assert result.exit_code == 0, result.output
                assert "removed 15 orphan files" in result.output  # A's images 55-59, 3 files each
            assert [p.exists() for p in sorted(journals)].count(True) == 1  # B's is left alone

            (tmp_path / "B.go").touch()
            for proc in procs[1:]:
                finished(proc)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                proc.communicate()

        referenced, on_disk = referenced_and_on_disk(url, files)
        missing = referenced - on_disk
        assert not missing, f"{len(missing)} files of committed rows are gone"
        images = 55 + 15 + (5 if third == "import" else 0)  # 0-54 (A, B), 70-84 (B), the third
        assert len(referenced) == 3 * images  # content-addressed: one file per content
        assert on_disk == referenced  # A's uncommitted images 55-59 were removed, nothing else
        assert not list(journal_dir.glob("*.jsonl"))
