"""Models and run logs in the blob store: a worker on one machine trains, an app server on another
(its own ML_DIR, nothing shared but the database and the store) lists the model and predicts."""
# ruff: noqa: F811  (fixtures imported from training_fixtures are used as arguments)

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from helpers import make_config
from training_fixtures import CLASSES, build_quality_project, good_jpeg, ml_root  # noqa: F401

from labeler import create_app
from labeler.auth.services import create_token
from labeler.images.storage import LocalStorage, storage_from_url
from labeler.ml.artifacts import REQUIRED
from labeler.ml.errors import ModelNotFound
from labeler.training import model_store
from labeler.training.models import ModelKind, RunStatus, TrainingRun
from labeler.training.worker import execute_run

MODEL_ID = "quality-20261130T120000-abc123"


@pytest.fixture()
def store(azurite, tmp_path):
    cfg = {**azurite.config(), "INSTANCE_PATH": str(tmp_path / "inst")}
    s = storage_from_url(cfg["STORAGE_URL"], cfg)
    s.create_container()
    return s


def _fake_model(root: Path, model_id: str = MODEL_ID) -> Path:
    folder = root / "models" / model_id
    folder.mkdir(parents=True)
    for name in REQUIRED:
        (folder / name).write_bytes(f"{name} of {model_id}".encode() * 100)
    (folder / "evaluation-0123456789ab.json").write_text(json.dumps({"verdict": "no"}))
    return folder


def test_publish_then_fetch_on_another_machine(store, tmp_path):
    folder = _fake_model(tmp_path / "worker-ml")
    assert model_store.publish_model(store, folder) == len(REQUIRED) + 1
    keys = list(store.iter_keys("models"))
    assert f"models/{MODEL_ID.lower()}/model.json" in keys and len(keys) == len(REQUIRED) + 1

    server = {"ML_DIR": str(tmp_path / "server-ml")}
    got = model_store.model_folder(server, MODEL_ID, store)
    assert got == tmp_path / "server-ml" / "models" / MODEL_ID
    for p in folder.iterdir():
        assert (got / p.name).read_bytes() == p.read_bytes()
    assert not [p for p in got.parent.iterdir() if p.name.startswith(".")]  # no temp folders left
    # fetched once: the local copy answers even when the store no longer has it
    for key in keys:
        store.delete(key)
    assert model_store.model_folder(server, MODEL_ID, store) == got


def test_a_model_without_its_marker_is_not_fetched(store, tmp_path):
    """model.json goes last: a publish that died before it leaves a model nobody loads."""
    folder = _fake_model(tmp_path / "worker-ml")
    for name in REQUIRED:
        if name != "model.json":
            store.put(f"models/{MODEL_ID.lower()}/{name}", (folder / name).read_bytes())
    with pytest.raises(ModelNotFound):
        model_store.model_folder({"ML_DIR": str(tmp_path / "server-ml")}, MODEL_ID, store)
    assert not (tmp_path / "server-ml" / "models" / MODEL_ID).exists()


def test_unknown_ids_and_the_local_backend(store, tmp_path):
    cfg = {"ML_DIR": str(tmp_path / "ml")}
    for bad in ("quality-20261130T120000-ffffff", "../etc", "Quality-x"):
        with pytest.raises(ModelNotFound):
            model_store.model_folder(cfg, bad, store)
    local = LocalStorage(tmp_path / "files")
    assert not model_store.is_shared(local) and model_store.is_shared(store)
    _fake_model(tmp_path / "ml")
    assert model_store.model_folder(cfg, MODEL_ID, local).name == MODEL_ID
    assert list(local.iter_keys()) == []  # the local backend keeps models in ML_DIR only


def test_run_log_goes_to_the_store(store, tmp_path):
    cfg = {"ML_DIR": str(tmp_path / "ml")}
    log = tmp_path / "ml" / "runs" / "7" / "worker.log"
    log.parent.mkdir(parents=True)
    log.write_text("epoch 1\nepoch 2\n")
    assert model_store.publish_run_log(store, cfg, 7)
    assert b"".join(store.stream("runs/7/worker.log")) == b"epoch 1\nepoch 2\n"
    assert not model_store.publish_run_log(LocalStorage(tmp_path / "f"), cfg, 7)


def _app(tmp_path, database_url, connection, name, azure_cfg, cache):
    cfg = make_config(
        tmp_path / name,
        database_url,
        ML_DIR=str(tmp_path / name / "ml"),
        ML_CACHE_DIR=str(cache),
        ML_SPAWN_WORKER=False,
        **azure_cfg,
    )
    application = create_app(cfg)
    application.extensions["labeler_db"].bind(connection)
    return application


@pytest.mark.slow  # trains a model (about 45 s on the 2-core host)
def test_worker_trains_and_another_app_server_predicts(
    azurite, tmp_path, database_url, connection, ml_root
):
    azure_cfg = azurite.config(f"m{uuid.uuid4().hex[:16]}")
    worker = _app(tmp_path, database_url, connection, "worker", azure_cfg, ml_root / "cache")
    server = _app(tmp_path, database_url, connection, "server", azure_cfg, ml_root / "cache")
    storage = worker.extensions["labeler_storage"]
    storage.create_container()
    factory = worker.extensions["labeler_db"].session_factory
    with factory() as db:
        from labeler.auth.models import Role
        from labeler.auth.services import add_user

        lead = add_user(db, None, f"lead-{uuid.uuid4().hex[:6]}@x.test", "Lead", {Role.lead})
        db.flush()
        project, _ids = build_quality_project(db, storage, lead, n=40, golden=12, seed=5)
        run = TrainingRun(
            project_id=project.id, kind=ModelKind.quality, status=RunStatus.queued, seed=1, epochs=5
        )
        db.add(run)
        token = create_token(db, lead, lead, "t")[1]
        db.commit()  # a savepoint of the test's transaction
        run_id, project_id = run.id, project.id
    # images reach the worker's training manifest from the store, not from a shared disk
    assert not (tmp_path / "worker" / "files").exists()
    done = execute_run(factory, worker.config, storage, run_id)
    assert done.status is RunStatus.succeeded, done.error
    model_id = done.model_id
    assert storage.exists(f"models/{model_id.lower()}/model.onnx")
    assert not (tmp_path / "server" / "ml" / "models" / model_id).exists()

    client = server.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    listed = client.get(f"/api/v1/projects/{project_id}/models", headers=headers)
    assert [m["id"] for m in listed.json["models"]] == [model_id]
    resp = client.post(
        f"/api/v1/models/{model_id}/predict",
        data=good_jpeg(),
        headers={**headers, "Content-Type": "image/jpeg"},
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.json["class"] in CLASSES and set(resp.json["probabilities"]) == set(CLASSES)
    onnx = tmp_path / "server" / "ml" / "models" / model_id / "model.onnx"
    assert onnx.read_bytes() == b"".join(storage.stream(f"models/{model_id.lower()}/model.onnx"))
