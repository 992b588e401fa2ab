"""What a gunicorn worker does before it takes requests (wsgi.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_worker_builds_the_icd10_index_before_its_first_request(tmp_path):
    """Importing wsgi (what each gunicorn worker does at boot) leaves the ICD-10-CM index built, so no
    rater's save waits seconds for it after a worker (re)starts."""
    env = {
        **os.environ,
        "LABELER_ENV": "test",
        "LABELER_AUTH": "dev",
        "LABELER_DATABASE_URL": f"sqlite:///{tmp_path / 'boot.db'}",
        "LABELER_INSTANCE_PATH": str(tmp_path / "instance"),
        "LABELER_DOTENV": str(tmp_path / "no.env"),
    }
    probe = (
        "from labeler.labeling import icd10\n"
        "assert icd10._index is None\n"
        "import wsgi\n"
        "print(icd10._index is not None, icd10.lookup('L70.0') is not None)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "True"]
