"""Loading in a fresh process, bad inputs, unknown model ids, and no torch at web-app import."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labeler.ml import BadImage, ModelNotFound, load_model, predict, resolve_model


def test_saved_model_predicts_in_a_fresh_process(quality_model, quality_manifest):
    first = json.loads(quality_manifest.read_text().splitlines()[1])
    code = (
        "import json, sys; from labeler.ml import load_model, predict; "
        "m = load_model(sys.argv[1]); r = predict(m, open(sys.argv[2], 'rb').read(), cams=False); "
        "print(json.dumps(r)); assert 'torch' not in sys.modules"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, quality_model.path, first["path"]],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    res = json.loads(out.stdout)
    assert res["model_id"] == quality_model.id and "cams" not in res
    here = predict(load_model(quality_model.path), Path(first["path"]), cams=False)
    assert res["probabilities"] == here["probabilities"]


def _png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims the given size (a decompression bomb's first bytes)."""
    buf = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = bytes(data[12:16]) + struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr) & 0xFFFFFFFF)
    return bytes(data)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (b"this is not an image", "not an image"),
        (b"", "empty"),
        (_png(30_000, 20_000), "too large"),
        (_png(8, 8), "too small"),
        (np.zeros((64, 64), np.uint8), "HxWx3"),
        (12345, "expected image bytes"),
        ("/nonexistent/photo.jpg", "cannot read"),
    ],
)
def test_bad_inputs_raise_bad_image(quality_model, image, message):
    model = load_model(quality_model.path)
    with pytest.raises(BadImage, match=message) as exc:
        predict(model, image)
    assert exc.value.status == 422 and exc.value.code == "bad_image"


def test_truncated_jpeg_is_rejected(quality_model, quality_manifest):
    first = json.loads(quality_manifest.read_text().splitlines()[1])
    data = Path(first["path"]).read_bytes()
    with pytest.raises(BadImage, match="cannot be decoded"):
        predict(load_model(quality_model.path), data[: len(data) // 3])


@pytest.mark.parametrize("model_id", ["quality-20990101T000000-abcdef", "../../etc", "x", ""])
def test_unknown_model_ids(models_dir, model_id):
    with pytest.raises(ModelNotFound) as exc:
        resolve_model(models_dir, model_id)
    assert exc.value.status == 404


def test_known_model_id_resolves(quality_model, models_dir, tmp_path):
    assert resolve_model(models_dir, quality_model.id) == Path(quality_model.path)
    with pytest.raises(ModelNotFound):
        load_model(tmp_path)


def test_web_app_imports_without_torch():
    code = (
        "import sys, labeler, labeler.ml, labeler.ml.inference, labeler.ml.evaluation; "
        "bad = {'torch', 'onnxruntime'} & set(sys.modules); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
