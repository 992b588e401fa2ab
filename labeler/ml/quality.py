"""Train the quality model (the ImageQX paper) on cached frozen features (imports torch)."""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .artifacts import ModelInfo, write_model
from .backbone import Lite0Features, export_onnx
from .config import EXPLANATION_TEXT, QualityConfig
from .errors import NotEnoughData
from .finetune import SplitLite0, fine_tune_device, fit_fine_tuned, intermediates, pooled
from .heads import QualityHeads, QualityNet, training_device
from .images import DECODE_SIDE, load_image, to_input
from .manifest import ManifestRow, read_manifest
from .metrics import quality_figures
from .runtime import FeatureExtractor, Progress, session
from .splits import assert_grouped, group_split

log = logging.getLogger(__name__)
MIN_IMAGES = 20


def class_weights(y: np.ndarray, n_classes: int, cap: float) -> np.ndarray:
    """w_c = min(n_max / n_c, cap); a class absent from training gets weight 0."""
    counts = np.bincount(y, minlength=n_classes).astype(float)
    w = np.where(counts > 0, np.minimum(counts.max() / np.maximum(counts, 1), cap), 0.0)
    return w.astype(np.float32)


def fit_heads(
    X: np.ndarray,
    y: np.ndarray,
    E: np.ndarray,
    cfg: QualityConfig,
    *,
    progress: Progress | None = None,
) -> tuple[QualityHeads, list[float]]:
    """Train the two blocks: 1.0 weighted CE + 5.0 BCE, AdamW, cosine annealing with warm restarts."""
    threads = torch.get_num_threads()
    # The heads are tiny (165k parameters): one thread is faster than two, and far steadier on
    # a shared 2-core machine (measured 1.0-1.5 s vs 1.2-5.6 s per epoch at 30k features).
    torch.set_num_threads(1)
    try:
        return _fit_heads(X, y, E, cfg, progress)
    finally:
        torch.set_num_threads(threads)


def _fit_heads(X, y, E, cfg: QualityConfig, progress: Progress | None):
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = training_device()
    heads = QualityHeads(len(cfg.classes), len(cfg.explanations), cfg.hidden, cfg.dropout)
    heads.to(device)
    w = torch.from_numpy(class_weights(y, len(cfg.classes), cfg.max_class_weight)).to(device)
    ce, bce = nn.CrossEntropyLoss(weight=w), nn.BCEWithLogitsLoss()
    opt = torch.optim.AdamW(heads.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        opt, T_0=max(1, cfg.restart_period)
    )
    Xt = torch.from_numpy(X).to(device)
    yt, Et = torch.from_numpy(y).long().to(device), torch.from_numpy(E).float().to(device)
    n, bs = len(X), cfg.batch_size
    nb = max(1, n // bs)  # full batches only: BatchNorm needs more than one sample
    epoch_seconds = []
    heads.train()
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        perm = torch.from_numpy(rng.permutation(n)).to(device)
        for b in range(nb):
            idx = perm[b * bs : (b + 1) * bs] if nb > 1 else perm
            z_c, z_e = heads(Xt[idx])
            loss = cfg.ce_weight * ce(z_c, yt[idx]) + cfg.bce_weight * bce(z_e, Et[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step(epoch + (b + 1) / nb)
        epoch_seconds.append(time.perf_counter() - t0)
        if progress:
            progress("train", epoch + 1, cfg.epochs)
    return heads.cpu().eval(), epoch_seconds  # exported and evaluated on the CPU


@torch.no_grad()
def head_outputs(heads: QualityHeads, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class and explanation probabilities of pooled features (eval mode)."""
    z_c, z_e = heads.eval()(torch.from_numpy(X))
    return torch.softmax(z_c, 1).numpy(), torch.sigmoid(z_e).numpy()


def choose_thresholds(probs: np.ndarray, truth: np.ndarray, names) -> dict[str, float]:
    """Per explanation, the threshold maximising validation F1 (0.5 when there is no positive)."""
    grid = np.round(np.arange(0.05, 0.951, 0.05), 2)
    out = {}
    for j, name in enumerate(names):
        t = truth[:, j].astype(bool)
        if not t.any():
            out[name] = 0.5
            continue
        pred = probs[:, j][None, :] >= grid[:, None]
        tp = (pred & t).sum(1)
        f1 = 2 * tp / (pred.sum(1) + t.sum())
        best = np.flatnonzero(f1 == f1.max())
        out[name] = float(grid[best[np.argmin(np.abs(grid[best] - 0.5))]])
    return out


def quality_targets(rows: list[ManifestRow], cfg: QualityConfig) -> tuple[np.ndarray, np.ndarray]:
    y = np.array([cfg.classes.index(r.quality.cls) for r in rows], np.int64)
    E = np.array(
        [[e in r.quality.explanations for e in cfg.explanations] for r in rows], np.float32
    )
    return y, E


def row_features(
    extractor: FeatureExtractor,
    rows: list[ManifestRow],
    *,
    flip: bool = False,
    progress: Progress | None = None,
) -> np.ndarray:
    keys = [r.sha256 + (".flip" if flip else "") for r in rows]
    load = lambda i: to_input(load_image(rows[i].path, max_side=DECODE_SIDE), flip=flip)
    return extractor.features(keys, load, progress=progress)


def train_quality(
    manifest_path: str | Path,
    out_dir: str | Path,
    cache_dir: str | Path,
    *,
    seed: int = 0,
    epochs: int | None = None,
    config: QualityConfig | None = None,
    fine_tune_blocks: int | None = None,
    fine_tune_on_cpu: bool | None = None,
    progress: Progress | None = None,
) -> ModelInfo:
    """Train on the manifest's non-golden, resolved images; write a model folder in out_dir.

    ``progress(stage, done, total)`` is called during feature extraction and training.
    ``fine_tune_blocks`` > 0 also trains the backbone's last blocks (finetune.py): on CUDA, or
    on the CPU when ``fine_tune_on_cpu``; otherwise FineTuneUnavailable, before any work.
    """
    manifest = read_manifest(manifest_path)
    cfg = replace(config or QualityConfig(), seed=seed)
    if epochs is not None:
        cfg = replace(cfg, epochs=epochs)
    if fine_tune_blocks is not None:
        cfg = replace(cfg, fine_tune_blocks=fine_tune_blocks)
    if fine_tune_on_cpu is not None:
        cfg = replace(cfg, fine_tune_on_cpu=fine_tune_on_cpu)
    device = (
        fine_tune_device(cfg.fine_tune_blocks, cfg.fine_tune_on_cpu)
        if cfg.fine_tune_blocks
        else None
    )
    rows = manifest.quality_training_rows()
    if len(rows) < MIN_IMAGES:
        raise NotEnoughData(
            f"{len(rows)} usable images with a resolved quality class; need {MIN_IMAGES}"
        )
    y, E = quality_targets(rows, cfg)
    if len(np.unique(y)) < 2:
        raise NotEnoughData("the training images cover only one quality class")
    groups = [r.group for r in rows]
    tr, va = group_split(groups, cfg.val_fraction, cfg.seed)
    assert_grouped(groups, tr, va)

    t0 = time.perf_counter()
    backbone = split = None
    if device is None:  # the frozen backbone: cached 1280-d features, heads alone
        extractor = FeatureExtractor(cache_dir)
        features = lambda rs, flip=False: row_features(extractor, rs, flip=flip, progress=progress)
    else:  # cached outputs of the frozen part; the tail trains with the heads
        backbone = Lite0Features().to(device)
        split = SplitLite0(backbone, cfg.fine_tune_blocks)
        computed = 0

        def features(rs, flip=False):
            nonlocal computed
            H, n = intermediates(split, rs, cache_dir, device, flip=flip, progress=progress)
            computed += n
            return H

    X = features(rows)
    Xtr, ytr, Etr = X[tr], y[tr], E[tr]
    if cfg.flip_augment:  # flipped copies of training images only: never on the validation side
        Xf = features([rows[i] for i in tr], flip=True)
        Xtr, ytr, Etr = (
            np.concatenate([Xtr, Xf]),
            np.concatenate([ytr, ytr]),
            np.concatenate([Etr, Etr]),
        )
    feature_s = time.perf_counter() - t0

    if split is None:
        heads, epoch_s = fit_heads(Xtr, ytr, Etr, cfg, progress=progress)
        p_val, e_val = head_outputs(heads, X[va])
    else:
        class_w = class_weights(ytr, len(cfg.classes), cfg.max_class_weight)
        heads, epoch_s = fit_fine_tuned(
            Xtr, ytr, Etr, class_w, split, cfg, device, progress=progress
        )
        backbone.cpu().eval()
        p_val, e_val = head_outputs(heads, pooled(split, X[va]))
    thresholds = choose_thresholds(e_val, E[va], cfg.explanations)
    thr = np.array([thresholds[e] for e in cfg.explanations])
    metrics = {
        "validation": quality_figures(
            y[va], p_val.argmax(1), E[va].astype(bool), e_val >= thr, cfg.classes, cfg.explanations
        ),
        "n_train_images": len(tr),
        "n_val_images": len(va),
        "n_train_samples": len(Xtr),
        "class_weights": dict(
            zip(cfg.classes, class_weights(ytr, 4, cfg.max_class_weight).tolist(), strict=True)
        ),
        "timing_s": {
            "features": round(feature_s, 2),
            "train": round(sum(epoch_s), 2),
            "epoch_mean": round(float(np.mean(epoch_s)), 4),
        },
        "features_computed": extractor.computed if split is None else computed,
        "backbone_fine_tuned_blocks": cfg.fine_tune_blocks,
    }
    if split is not None:
        metrics["fine_tune"] = {
            "blocks": cfg.fine_tune_blocks,
            "device": device.type,
            "lr_scale": cfg.fine_tune_lr_scale,
            "trainable_backbone_parameters": sum(
                p.numel() for p in split.tail_modules.parameters()
            ),
        }
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmp:
        onnx = export_onnx(
            QualityNet(heads, backbone),
            Path(tmp) / "model.onnx",
            ["image"],
            ["class_probs", "expl_probs", "cams"],
        )
        # The shipped graph must agree with the heads on the cached features it was trained on.
        probe = [int(i) for i in va[:2]]
        inputs = np.stack([to_input(load_image(rows[i].path, max_side=DECODE_SIDE)) for i in probe])
        ort_p = session(onnx).run(["class_probs"], {"image": inputs})[0]
        metrics["onnx_vs_heads_max_abs_diff"] = float(np.abs(ort_p - p_val[: len(probe)]).max())
        labels = {
            "classes": list(cfg.classes),
            "explanations": list(cfg.explanations),
            "explanation_text": {e: EXPLANATION_TEXT[e] for e in cfg.explanations},
        }
        info = write_model(
            out_dir,
            kind="quality",
            onnx_path=onnx,
            config=cfg,
            labels=labels,
            thresholds=thresholds,
            manifest_sha256=manifest.sha256,
            metrics=metrics,
            extra={"backbone_fine_tuned_blocks": cfg.fine_tune_blocks},
        )
    log.info(
        "trained %s (%.1f MB) in %.0f s", info.id, info.size_bytes / 1e6, time.perf_counter() - t0
    )
    return info
