"""Train the severity model (the Microsoft/Nestlé acne severity study): face patches, rolling augmentation, MLP (imports torch)."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..metrics.severity import scale_edges
from .artifacts import ModelInfo, write_model
from .backbone import export_onnx
from .config import SeverityConfig
from .errors import NotEnoughData
from .faces import Patch, PatchSet, find_patches
from .heads import SeverityMLP, SeverityNet, training_device
from .images import crop_input, load_image
from .manifest import ManifestRow, read_manifest
from .metrics import discretize, severity_figures
from .runtime import FeatureExtractor, Progress, session
from .splits import assert_grouped, group_split

log = logging.getLogger(__name__)
MIN_IMAGES = 10
Item = tuple[int, Patch, tuple[int, int]]  # (row index, patch, roll (dx, dy))


def cached_patches(cache_dir: Path, row: ManifestRow, method: str) -> PatchSet:
    """Patch boxes of an image, memoised by content hash (landmark detection is the slow part)."""
    path = Path(cache_dir) / "patches" / method / f"{row.sha256}.json"
    if path.exists():
        d = json.loads(path.read_text())
        return PatchSet(
            d["method"],
            tuple(Patch(n, tuple(b)) for n, b in d["patches"]),
            tuple(d["face"]) if d["face"] else None,
        )
    ps = find_patches(np.asarray(load_image(row.path)), method)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "method": ps.method,
                "face": ps.face,
                "patches": [[p.name, list(p.box)] for p in ps.patches],
            }
        )
    )
    return ps


def rolling_items(
    base: list[Item], targets: np.ndarray, cfg: SeverityConfig, rng: np.random.Generator
) -> list[Item]:
    """Add circularly shifted (np.roll) copies of patches of rare grades until grades balance.

    Each grade is topped up towards the most frequent grade's patch count, at most
    ``max_rolls`` copies per patch; shifts are 15-85 % of the patch size.
    """
    grades = discretize(targets[[i for i, _, _ in base]], cfg.edges)
    counts = {g: int(np.sum(grades == g)) for g in np.unique(grades)}
    n_max = max(counts.values())
    extra: list[Item] = []
    for g, n in counts.items():
        members = [base[k] for k in np.flatnonzero(grades == g)]
        need = min(n_max - n, cfg.max_rolls * n)
        for k in range(need):
            i, patch, _ = members[k % n]
            x0, y0, x1, y1 = patch.box
            dx = int(rng.integers(int(0.15 * (x1 - x0)), int(0.85 * (x1 - x0)) + 1))
            dy = int(rng.integers(int(0.15 * (y1 - y0)), int(0.85 * (y1 - y0)) + 1))
            extra.append((i, patch, (dx, dy)))
    return base + extra


def fit_mlp(X: np.ndarray, t: np.ndarray, cfg: SeverityConfig, *, progress: Progress | None = None):
    """MSE regression of the patch targets; features standardised inside the model."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    mlp = SeverityMLP(tuple(cfg.hidden))
    mlp.mu.copy_(torch.from_numpy(X.mean(0)))
    mlp.sd.copy_(torch.from_numpy(X.std(0) + 1e-3))
    device = training_device()  # CUDA on a GPU worker, the CPU otherwise
    mlp.to(device)
    opt = torch.optim.AdamW(mlp.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs))
    Xt = torch.from_numpy(X).to(device)
    tt = torch.from_numpy(t.astype(np.float32)).to(device)
    loss_fn, epoch_s = nn.MSELoss(), []
    mlp.train()
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        perm = torch.from_numpy(rng.permutation(len(X))).to(device)
        for b in range(0, len(X), cfg.batch_size):
            idx = perm[b : b + cfg.batch_size]
            loss = loss_fn(mlp(Xt[idx]), tt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
        epoch_s.append(time.perf_counter() - t0)
        if progress:
            progress("train", epoch + 1, cfg.epochs)
    return mlp.cpu().eval(), epoch_s  # exported and evaluated on the CPU


def item_features(
    extractor: FeatureExtractor, rows: list[ManifestRow], items: list[Item], progress=None
):
    keys = [f"{rows[i].sha256}.{'_'.join(map(str, p.box))}.{r[0]}_{r[1]}" for i, p, r in items]
    last: dict[int, np.ndarray] = {}

    def load(k: int) -> np.ndarray:
        i, patch, roll = items[k]
        if i not in last:  # items are grouped by image: keep one decoded image
            last.clear()
            last[i] = np.asarray(load_image(rows[i].path))
        return crop_input(last[i], patch.box, roll)

    return extractor.features(keys, load, progress=progress)


def image_scores(patch_pred: np.ndarray, items: list[Item], n_rows: int, scale) -> np.ndarray:
    """Per image: the mean of its (clipped) patch scores, clipped to the scale."""
    lo, hi = scale
    idx = np.array([i for i, _, _ in items])
    clipped = np.clip(patch_pred, lo, hi)
    sums = np.bincount(idx, weights=clipped, minlength=n_rows)
    return np.clip(sums / np.maximum(np.bincount(idx, minlength=n_rows), 1), lo, hi)


def train_severity(
    manifest_path: str | Path,
    out_dir: str | Path,
    cache_dir: str | Path,
    *,
    seed: int = 0,
    epochs: int | None = None,
    config: SeverityConfig | None = None,
    progress: Progress | None = None,
) -> ModelInfo:
    """Train on the manifest's non-golden images with a severity consensus; write a model folder."""
    manifest = read_manifest(manifest_path)
    cfg = replace(config or SeverityConfig(), seed=seed)
    if epochs is not None:
        cfg = replace(cfg, epochs=epochs)
    if manifest.scale:
        # the project's scale (docs/domain.md section 4): scores clip to its ends, grades cut at its
        # midpoints and read as its values (the 1-5 defaults clipped a 0-4 project's zeros up to 1)
        values = [float(v) for v in manifest.scale]
        cfg = replace(
            cfg,
            scale=(values[0], values[-1]),
            edges=scale_edges(values),
            extra={**cfg.extra, "scale_values": values},
        )
    rows = manifest.severity_training_rows()
    if len(rows) < MIN_IMAGES:
        raise NotEnoughData(f"{len(rows)} images with a severity consensus; need {MIN_IMAGES}")
    targets = np.array([r.severity.mean for r in rows])
    groups = [r.group for r in rows]
    tr, va = group_split(groups, cfg.val_fraction, cfg.seed)
    assert_grouped(groups, tr, va)

    t0 = time.perf_counter()
    patchsets = []
    for k, r in enumerate(rows):
        patchsets.append(cached_patches(Path(cache_dir), r, cfg.landmarks))
        if progress:
            progress("patches", k + 1, len(rows))
    items_of = lambda idx: [(int(i), p, (0, 0)) for i in idx for p in patchsets[i].patches]
    rng = np.random.default_rng(cfg.seed)
    train_items = rolling_items(
        items_of(tr), targets, cfg, rng
    )  # augmented copies: training side only
    train_items.sort(key=lambda it: it[0])
    val_items = items_of(va)
    extractor = FeatureExtractor(cache_dir)
    Xtr = item_features(extractor, rows, train_items, progress)
    Xva = item_features(extractor, rows, val_items, progress)
    feature_s = time.perf_counter() - t0

    mlp, epoch_s = fit_mlp(Xtr, targets[[i for i, _, _ in train_items]], cfg, progress=progress)
    with torch.no_grad():
        pva = mlp(torch.from_numpy(Xva)).numpy()
    scores = image_scores(pva, val_items, len(rows), cfg.scale)[va]
    methods = [patchsets[i].method for i in range(len(rows))]
    metrics = {
        "validation": severity_figures(targets[va], scores, cfg.edges),
        "baseline_rmse_train_mean": float(
            np.sqrt(np.mean((targets[va] - targets[tr].mean()) ** 2))
        ),
        "n_train_images": len(tr),
        "n_val_images": len(va),
        "n_train_patches": len(train_items),
        "n_rolled_copies": sum(1 for it in train_items if it[2] != (0, 0)),
        "patch_methods": {m: methods.count(m) for m in sorted(set(methods))},
        "timing_s": {
            "features": round(feature_s, 2),
            "train": round(sum(epoch_s), 2),
            "epoch_mean": round(float(np.mean(epoch_s)), 4),
        },
    }
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmp:
        onnx = export_onnx(SeverityNet(mlp), Path(tmp) / "model.onnx", ["image"], ["score"])
        probe = [it for it in val_items[:2] if it[0] == val_items[0][0]]
        arr = np.asarray(load_image(rows[probe[0][0]].path))
        ort = session(onnx).run(
            ["score"], {"image": np.stack([crop_input(arr, p.box) for _, p, _ in probe])}
        )[0]
        metrics["onnx_vs_mlp_max_abs_diff"] = float(np.abs(ort - pva[: len(probe)]).max())
        labels = {"score": "severity", "scale": list(cfg.scale), "edges": list(cfg.edges)}
        info = write_model(
            out_dir,
            kind="severity",
            onnx_path=onnx,
            config=cfg,
            labels=labels,
            thresholds={},
            manifest_sha256=manifest.sha256,
            metrics=metrics,
        )
    log.info(
        "trained %s (%.1f MB) in %.0f s", info.id, info.size_bytes / 1e6, time.perf_counter() - t0
    )
    return info
