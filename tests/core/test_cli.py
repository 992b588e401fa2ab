"""The command line, run through Flask's CLI runner against the test database."""

from __future__ import annotations

import io

from PIL import Image as PILImage
from sqlalchemy import func, select

from labeler.auth.models import ApiToken, User
from labeler.images.models import Image
from labeler.projects.models import Project


def test_users_add_and_token(runner, db):
    res = runner.invoke(
        args=[
            "users",
            "add",
            "Doc@Clinic.org",
            "--name",
            "Dr Doc",
            "--role",
            "rater",
            "--role",
            "lead",
        ]
    )
    assert res.exit_code == 0, res.output
    user = db.scalar(select(User).where(User.email == "doc@clinic.org"))
    assert {r.value for r in user.roles} == {"rater", "lead"}
    res = runner.invoke(args=["users", "token", "doc@clinic.org"])
    raw = res.stdout.strip()
    assert res.exit_code == 0 and raw.startswith("lbl_")
    token = db.scalar(select(ApiToken).where(ApiToken.user_id == user.id))
    assert token.token_hash != raw and raw not in token.token_hash  # stored hashed


def test_users_add_errors(runner):
    assert runner.invoke(args=["users", "add", "x@y.org", "--role", "superuser"]).exit_code != 0
    assert (
        "unknown role"
        in runner.invoke(args=["users", "add", "x@y.org", "--role", "superuser"]).output
    )
    assert runner.invoke(args=["users", "add", "x@y.org", "--role", "admin"]).exit_code == 0
    dup = runner.invoke(args=["users", "add", "x@y.org", "--role", "admin"])
    assert dup.exit_code != 0 and "already exists" in dup.output
    assert runner.invoke(args=["users", "token", "nobody@y.org"]).exit_code != 0


def test_projects_create_prints_id(runner, db):
    res = runner.invoke(args=["projects", "create", "Quality study", "--protocol", "quality"])
    assert res.exit_code == 0, res.output
    project = db.get(Project, int(res.output.strip()))
    assert project.name == "Quality study"


def test_images_import_folder_twice(runner, db, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        buf = io.BytesIO()
        PILImage.new("RGB", (40, 30), (i * 40, 10, 10)).save(buf, "JPEG")
        (folder / f"{i}.jpg").write_bytes(buf.getvalue())
    (folder / "readme.txt.jpg").write_text("not an image")
    pid = runner.invoke(args=["projects", "create", "P", "--protocol", "quality"]).output.strip()
    res = runner.invoke(args=["images", "import", pid, str(folder)])
    assert res.exit_code == 0, res.output
    assert "3 imported, 0 duplicates, 1 rejected" in res.output
    assert "rejected readme.txt.jpg" in res.output
    again = runner.invoke(args=["images", "import", "P", str(folder)])
    assert "0 imported, 3 duplicates, 1 rejected" in again.output
    assert "nothing new" in again.output
    assert db.scalar(select(func.count(Image.id))) == 3


def test_images_import_unknown_project(runner, tmp_path):
    res = runner.invoke(args=["images", "import", "nope", str(tmp_path)])
    assert res.exit_code != 0 and "no project named" in res.output


def test_demo(runner, db):
    res = runner.invoke(args=["demo", "--images", "4"])
    assert res.exit_code == 0, res.output
    assert db.scalar(select(func.count(Project.id))) == 2
    assert db.scalar(select(func.count(Image.id))) == 8
    emails = set(db.scalars(select(User.email)))
    assert {"admin@demo.test", "lead@demo.test", "rater1@demo.test"} <= emails
    again = runner.invoke(args=["demo", "--images", "4"])  # idempotent
    assert again.exit_code == 0 and db.scalar(select(func.count(Image.id))) == 8
