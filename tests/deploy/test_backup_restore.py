"""The README's backup recipe, run: pg_dump of the database and `labeler storage migrate` of the blob
container to a backup folder; then a new database restored with pg_restore and a new container filled
back from the folder serve the same images, labels and sign-in tokens. PostgreSQL only (pg_dump)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import uuid

import pytest
from helpers import fresh_database, make_config
from PIL import Image as PILImage
from sqlalchemy import text

from labeler import create_app
from labeler.allocation.services import allocate
from labeler.auth.models import Role
from labeler.auth.services import add_user, create_token
from labeler.db import make_engine
from labeler.demo import MemorySource
from labeler.images.services import import_images
from labeler.projects.services import create_project

PG_URL = os.environ.get("LABELER_TEST_DATABASE_URL")


def _jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", (120, 80), (seed * 50 % 256, 90, 160)).save(buf, "JPEG")
    return buf.getvalue()


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def test_database_dump_and_container_copy_restore_a_working_site(tmp_path, azurite):
    if not PG_URL:
        pytest.skip("PostgreSQL only: set LABELER_TEST_DATABASE_URL (the backup uses pg_dump)")
    for tool in ("pg_dump", "pg_restore"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is missing: install Debian's postgresql-client")
    with fresh_database(tmp_path, PG_URL) as url:
        first = azurite.config()
        app = create_app(make_config(tmp_path / "a", url, **first))
        storage = app.extensions["labeler_storage"]
        storage.create_container()
        database = app.extensions["labeler_db"]
        with database.session_factory() as s:
            lead = add_user(s, None, "lead@backup.test", "Lead", {Role.lead})
            rater = add_user(s, None, "rater@backup.test", "Rater", {Role.rater})
            project = create_project(s, lead, "backup", "quality")
            import_images(
                s,
                None,
                project,
                [MemorySource(f"b{i}.jpg", _jpeg(i)) for i in range(3)],
                storage=storage,
                source_label="t",
                checkpoint=s.flush,
            )
            allocate(s, lead, project, [rater], golden_size=0, overlap=1, seed=3)
            token = create_token(s, rater, rater, "backup")[1]
            project_id = project.id
            s.commit()
        auth = {"Authorization": f"Bearer {token}"}
        client = app.test_client()
        item = client.get(f"/api/v1/projects/{project_id}/queue/next", headers=auth).json["item"]
        image = client.get(item["image_url"], headers=auth).data
        body = {"decision": "lesion", "icd10": "L70.0", "base_version": 0, "submission_id": "b1"}
        assert (
            client.put(f"/api/v1/items/{item['id']}/label", json=body, headers=auth).status_code
            == 200
        )

        # -- the backup: the database with pg_dump, the container copied to a folder ----------------
        dump = tmp_path / "labeler.dump"
        subprocess.run(["pg_dump", "-Fc", "-d", _libpq(url), "-f", str(dump)], check=True)
        backup = tmp_path / "backup-files"
        copied = app.test_cli_runner().invoke(
            args=["storage", "migrate", "--to", f"file://{backup}"]
        )
        assert copied.exit_code == 0 and "0 failed" in copied.output, copied.output
        database.engine.dispose()

        # -- the restore: a new database and a new container ----------------------------------------
        name = f"labeler_restore_{uuid.uuid4().hex[:8]}"
        admin = make_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        restored_url = PG_URL.rsplit("/", 1)[0] + "/" + name
        try:
            subprocess.run(
                ["pg_restore", "--no-owner", "-d", _libpq(restored_url), str(dump)], check=True
            )
            second = azurite.config()  # an empty container, as after losing the storage account
            from_backup = create_app(
                make_config(
                    tmp_path / "b",
                    restored_url,
                    STORAGE_URL=f"file://{backup}",
                    AZURE_STORAGE_CONNECTION_STRING=second["AZURE_STORAGE_CONNECTION_STRING"],
                    AZURE_STORAGE_RETRIES=1,
                )
            )
            refilled = from_backup.test_cli_runner().invoke(
                args=["storage", "migrate", "--to", second["STORAGE_URL"]]
            )
            assert refilled.exit_code == 0 and "0 failed" in refilled.output, refilled.output
            from_backup.extensions["labeler_db"].engine.dispose()

            site = create_app(make_config(tmp_path / "c", restored_url, **second))
            client = site.test_client()
            label = client.get(f"/api/v1/items/{item['id']}/label", headers=auth)
            assert label.status_code == 200  # the rater's token came back with the database
            assert label.json["label"]["decision"] == "lesion"
            assert client.get(item["image_url"], headers=auth).data == image
            nxt = client.get(f"/api/v1/projects/{project_id}/queue/next", headers=auth).json
            assert nxt["item"]["id"] != item["id"]  # the queue goes on where it stood
            assert client.get(nxt["item"]["image_url"], headers=auth).status_code == 200
            site.extensions["labeler_db"].engine.dispose()
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
