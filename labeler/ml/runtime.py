"""onnxruntime sessions, frozen-backbone features and the per-image feature cache (no torch).

The cache lives under the caller's cache dir (e.g. ``instance/ml/``)::

    <cache_dir>/backbone-lite0-v1.onnx              exported once, on first use (needs torch)
    <cache_dir>/features/lite0-v1/ab/<key>.npy      one float32 vector of 1280 per key

A key is the image content sha256, plus a suffix for variants (``<sha>.flip``, or a patch and its
roll for the severity model), so retraining on the same photos recomputes nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .config import FEATURE_DIM, FEATURE_VERSION

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]


def session(path: str | Path, threads: int | None = None, *, spin: bool = True):
    """An onnxruntime CPU session; ``threads`` defaults to the CPU count (at most 4).

    ``spin=False`` stops idle worker threads from busy-waiting after a run: the trainer needs
    that, or the extractor's threads steal the CPU from torch (10x slower epochs measured).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.intra_op_num_threads = threads or min(os.cpu_count() or 1, 4)
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def backbone_path(cache_dir: str | Path) -> Path:
    """The frozen backbone ONNX file in the cache, exported on first use."""
    path = Path(cache_dir) / f"backbone-{FEATURE_VERSION}.onnx"
    if not path.exists():
        from .backbone import export_backbone  # torch is only needed this once

        export_backbone(path)
    return path


class FeatureCache:
    """A directory of .npy vectors keyed by content hash (safe to share between processes)."""

    def __init__(self, cache_dir: str | Path) -> None:
        self.root = Path(cache_dir) / "features" / FEATURE_VERSION

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        p = self._path(key)
        try:
            v = np.load(p)
        except (OSError, ValueError):
            return None
        return v if v.shape == (FEATURE_DIM,) else None

    def put(self, key: str, vec: np.ndarray) -> None:
        p = self._path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, vec.astype(np.float32))
        tmp.replace(p)


class FeatureExtractor:
    """Pooled 1280-d Lite0 features through onnxruntime, memoised in a FeatureCache."""

    def __init__(self, cache_dir: str | Path, *, threads: int | None = None, batch: int = 32):
        self.cache = FeatureCache(cache_dir)
        self.sess = session(backbone_path(cache_dir), threads, spin=False)
        self.batch = batch
        self.computed = 0

    def run(self, inputs: np.ndarray) -> np.ndarray:
        """Features of a float32 NHWC batch of raw 224x224 pixels."""
        return self.sess.run(["features"], {"image": inputs})[0]

    def features(
        self,
        keys: Sequence[str],
        load: Callable[[int], np.ndarray],
        *,
        progress: Progress | None = None,
    ) -> np.ndarray:
        """Features for each key; ``load(i)`` gives the 224x224x3 input of item i on a cache miss."""
        out = np.empty((len(keys), FEATURE_DIM), np.float32)
        missing: list[int] = []
        for i, key in enumerate(keys):
            v = self.cache.get(key)
            if v is None:
                missing.append(i)
            else:
                out[i] = v
        for start in range(0, len(missing), self.batch):
            idx = missing[start : start + self.batch]
            feats = self.run(np.stack([load(i) for i in idx]))
            for i, v in zip(idx, feats, strict=True):
                out[i] = v
                self.cache.put(keys[i], v)
            self.computed += len(idx)
            if progress:
                progress("features", min(start + self.batch, len(missing)), len(missing))
        return out
