"""Benchmark the ML library on this CPU: features, head training, predict latency and throughput.

Run: .venv/bin/python bench/ml.py [--threads 2] [--repeats 200]
Uses a throwaway quality model (random heads: speed does not depend on the weights), a throwaway
severity model (its stored size: fp16 MLP, fp16 + int8-residual backbone) and
30,000 synthetic random cached features for the head-training figure. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _jpegs(n: int, rng: np.random.Generator) -> list[bytes]:
    """Phone-photo-like inputs: 1024x768 JPEGs of smooth noise."""
    out = []
    for _ in range(n):
        small = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
        im = Image.fromarray(small).resize((1024, 768), Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs) * 1000, q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--features", type=int, default=30_000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    tmp = Path(tempfile.mkdtemp(prefix="labeler-bench-"))
    try:
        _run(args, tmp, rng)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(args: argparse.Namespace, tmp: Path, rng: np.random.Generator) -> None:
    import torch

    from labeler.ml.artifacts import write_model
    from labeler.ml.backbone import export_onnx
    from labeler.ml.config import (
        EXPLANATION_TEXT,
        EXPLANATIONS,
        QUALITY_CLASSES,
        QualityConfig,
        SeverityConfig,
    )
    from labeler.ml.heads import QualityHeads, QualityNet, SeverityMLP, SeverityNet
    from labeler.ml.inference import load_model, predict, predict_quality
    from labeler.ml.quality import fit_heads
    from labeler.ml.runtime import FeatureExtractor

    torch.set_num_threads(args.threads)

    print(f"threads={args.threads}  torch {torch.__version__}  tmp={tmp}")

    t = time.perf_counter()
    ex = FeatureExtractor(tmp / "cache", threads=args.threads)
    print(f"backbone export (once per cache dir): {time.perf_counter() - t:.1f} s")
    x = rng.uniform(0, 255, (32, 224, 224, 3)).astype(np.float32)
    ex.run(x)
    t = time.perf_counter()
    for _ in range(4):
        ex.run(x)
    print(
        f"feature extraction, ORT batch 32:        {128 / (time.perf_counter() - t):6.1f} images/s"
    )
    jpegs = _jpegs(64, rng)
    from labeler.ml.images import load_image, to_input

    t = time.perf_counter()
    ex.features(
        [f"{i:064x}" for i in range(64)], lambda i: to_input(load_image(jpegs[i], max_side=448))
    )
    print(
        f"feature extraction, 1024x768 JPEG -> cache: {64 / (time.perf_counter() - t):6.1f} images/s"
    )

    cfg = QualityConfig(epochs=3)
    X = rng.standard_normal((args.features, 1280)).astype(np.float32)
    y = rng.integers(0, 4, args.features)
    E = (rng.random((args.features, 5)) < 0.15).astype(np.float32)
    _, secs = fit_heads(X, y, E, cfg)
    print(
        f"head training at {args.features:,} cached features (batch {cfg.batch_size}): "
        f"{np.median(secs):.2f} s/epoch (epochs: {', '.join(f'{s:.2f}' for s in secs)})"
    )

    heads = QualityHeads().eval()
    onnx = export_onnx(
        QualityNet(heads), tmp / "model.onnx", ["image"], ["class_probs", "expl_probs", "cams"]
    )
    labels = {
        "classes": list(QUALITY_CLASSES),
        "explanations": list(EXPLANATIONS),
        "explanation_text": EXPLANATION_TEXT,
    }
    info = write_model(
        tmp / "models",
        kind="quality",
        onnx_path=onnx,
        config=cfg,
        labels=labels,
        thresholds=dict.fromkeys(EXPLANATIONS, 0.5),
        manifest_sha256="0" * 64,
        metrics={},
    )
    print(
        f"model size: {info.size_bytes / 1e6:.2f} MB ({info.size_bytes / 2**20:.2f} MiB), fp32 ONNX with Grad-CAM"
    )
    sev = write_model(
        tmp / "models",
        kind="severity",
        onnx_path=export_onnx(SeverityNet(SeverityMLP()), tmp / "sev.onnx", ["image"], ["score"]),
        config=SeverityConfig(),
        labels={},
        thresholds={},
        manifest_sha256="0" * 64,
        metrics={},
    )
    before = json.loads(Path(sev.path, "model.json").read_text())["weights"]["bytes_before"]
    print(
        f"severity model size: {sev.size_bytes / 1e6:.2f} MB (fp32 weights: {before / 1e6:.2f} MB),"
        " fp16 MLP + fp16/int8-residual backbone"
    )
    model = load_model(info.path, threads=args.threads)
    raw = model.session
    one = x[:1]
    for _ in range(10):
        raw.run(None, {"image": one})
    lat = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        raw.run(None, {"image": one})
        lat.append(time.perf_counter() - t)
    print(
        f"predict batch 1, ORT graph only:         p50 {_pct(lat, 50):5.1f} ms  p95 {_pct(lat, 95):5.1f} ms"
    )
    lat = []
    for i in range(args.repeats):
        t = time.perf_counter()
        predict(model, jpegs[i % len(jpegs)])
        lat.append(time.perf_counter() - t)
    print(
        f"predict batch 1, JPEG bytes -> JSON:     p50 {_pct(lat, 50):5.1f} ms  p95 {_pct(lat, 95):5.1f} ms"
    )
    raw.run(None, {"image": x})
    t = time.perf_counter()
    for _ in range(3):
        raw.run(None, {"image": x})
    print(
        f"predict batch 32, ORT graph only:        {96 / (time.perf_counter() - t):6.1f} images/s"
    )
    t = time.perf_counter()
    for _ in range(2):
        predict_quality(model, jpegs[:32])
    print(
        f"predict batch 32, JPEG bytes -> JSON:    {64 / (time.perf_counter() - t):6.1f} images/s"
    )


if __name__ == "__main__":
    main()
