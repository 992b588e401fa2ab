"""Fine-tune the last backbone blocks with the quality heads where the worker has a GPU (torch).

Issue 16 section 5: the frozen EfficientNet-Lite0 backbone stays the CPU path. With
``fine_tune_blocks = N > 0`` the last N MBConv blocks and the 1x1 head convolution after them
(320 -> 1280 channels) are trained together with the heads, at ``fine_tune_lr_scale`` (0.1) times
the heads' learning rate. The frozen part (stem and the earlier blocks) runs once per image: its
output, the input of the first unfrozen block, is cached per content hash (and flip), so an epoch
only runs the tail. The tail's BatchNorm layers keep their ImageNet running statistics (eval
mode; their scale and shift still train): batches of a few dozen photos would make poor estimates.

N > 0 trains on CUDA; without CUDA it is refused (FineTuneUnavailable) unless the caller forces
the CPU (``fine_tune_on_cpu``: the tests, and the small CPU benchmark in bench/ml.py).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .backbone import Lite0Features
from .config import BACKBONE_BLOCKS, FEATURE_VERSION, QualityConfig
from .errors import FineTuneUnavailable, MLError
from .heads import QualityHeads
from .images import DECODE_SIDE, load_image, to_input
from .manifest import ManifestRow
from .runtime import Progress

log = logging.getLogger(__name__)
N_BLOCKS = BACKBONE_BLOCKS  # MBConv blocks of EfficientNet-Lite0
BATCH = 32  # images per frozen-part forward pass


def fine_tune_device(blocks: int, on_cpu: bool) -> torch.device:
    """Where N > 0 blocks train: CUDA, or the CPU when forced; otherwise refuse in words."""
    if not isinstance(blocks, int) or isinstance(blocks, bool) or not 0 < blocks <= N_BLOCKS:
        raise MLError(f"fine_tune_blocks must be a whole number from 1 to {N_BLOCKS}")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if on_cpu:
        return torch.device("cpu")
    raise FineTuneUnavailable(
        f"Fine-tuning the last {blocks} backbone blocks needs a GPU (CUDA) on the training "
        "worker, and this worker has none. Train with 0 fine-tuned blocks (the frozen backbone), "
        "or run the training worker on a machine with a GPU."
    )


class SplitLite0:
    """A Lite0Features cut before its last ``blocks`` blocks: the frozen part and the tail.

    The tail's modules are the backbone's own, so training them changes the backbone that is
    exported afterwards.
    """

    def __init__(self, backbone: Lite0Features, blocks: int) -> None:
        self.backbone = backbone
        self.net = backbone.net
        self.n = len(self.net._blocks)
        self.cut = self.n - blocks
        self.tail_modules = nn.ModuleList(
            [*self.net._blocks[self.cut :], self.net._conv_head, self.net._bn1]
        )

    def frozen_modules(self) -> list[nn.Module]:
        return [self.net._conv_stem, self.net._bn0, *self.net._blocks[: self.cut]]

    def _rate(self, idx: int) -> float:
        rate = self.net._global_params.drop_connect_rate
        return rate * float(idx) / self.n if rate else rate

    @torch.no_grad()
    def frozen(self, image: torch.Tensor) -> torch.Tensor:
        """Raw NHWC pixels -> the input of the first unfrozen block (as Lite0Features computes)."""
        x = (image.permute(0, 3, 1, 2) - 127.0) / 128.0
        x = self.net._swish(self.net._bn0(self.net._conv_stem(x)))
        for idx in range(self.cut):
            x = self.net._blocks[idx](x, drop_connect_rate=self._rate(idx))
        return x

    def tail(self, h: torch.Tensor) -> torch.Tensor:
        """The cached intermediate -> the 7x7x1280 feature map."""
        for idx in range(self.cut, self.n):
            h = self.net._blocks[idx](h, drop_connect_rate=self._rate(idx))
        return self.net._swish(self.net._bn1(self.net._conv_head(h)))


def cache_folder(cache_dir: str | Path, cut: int) -> Path:
    return Path(cache_dir) / "features" / f"{FEATURE_VERSION}-cut{cut}"


def intermediates(
    split: SplitLite0,
    rows: Sequence[ManifestRow],
    cache_dir: str | Path,
    device: torch.device,
    *,
    flip: bool = False,
    progress: Progress | None = None,
) -> tuple[np.ndarray, int]:
    """The frozen part's outputs of ``rows`` (cached per sha256 and flip); and how many computed."""
    folder = cache_folder(cache_dir, split.cut)
    paths = [folder / r.sha256[:2] / f"{r.sha256}{'.flip' if flip else ''}.npy" for r in rows]
    out: list[np.ndarray | None] = [None] * len(rows)
    todo = []
    for i, p in enumerate(paths):
        try:
            out[i] = np.load(p)
        except (OSError, ValueError):
            todo.append(i)
    for start in range(0, len(todo), BATCH):
        chunk = todo[start : start + BATCH]
        batch = np.stack(
            [to_input(load_image(rows[i].path, max_side=DECODE_SIDE), flip=flip) for i in chunk]
        )
        h = split.frozen(torch.from_numpy(batch).to(device)).float().cpu().numpy()
        for i, arr in zip(chunk, h, strict=True):
            paths[i].parent.mkdir(parents=True, exist_ok=True)
            tmp = paths[i].with_name(f".{paths[i].name}.{os.getpid()}.tmp.npy")
            np.save(tmp, arr)
            tmp.replace(paths[i])
            out[i] = arr
        if progress:
            progress("features", min(start + BATCH, len(todo)), len(todo))
    return np.stack(out).astype(np.float32), len(todo)


def fit_fine_tuned(
    H: np.ndarray,
    y: np.ndarray,
    E: np.ndarray,
    class_w: np.ndarray,
    split: SplitLite0,
    cfg: QualityConfig,
    device: torch.device,
    *,
    progress: Progress | None = None,
) -> tuple[QualityHeads, list[float]]:
    """Heads and the backbone's tail together: the same losses and schedule as fit_heads.

    ``class_w`` are quality.class_weights of y (the same cross-entropy weights as the heads alone).
    """
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    heads = QualityHeads(len(cfg.classes), len(cfg.explanations), cfg.hidden, cfg.dropout)
    heads.to(device)
    tail = split.tail_modules
    tail.to(device)
    tail_params = list(tail.parameters())
    for p in tail_params:
        p.requires_grad_(True)
    w = torch.from_numpy(class_w).to(device)
    ce, bce = nn.CrossEntropyLoss(weight=w), nn.BCEWithLogitsLoss()
    opt = torch.optim.AdamW(
        [
            {"params": heads.parameters(), "lr": cfg.lr},
            {"params": tail_params, "lr": cfg.lr * cfg.fine_tune_lr_scale},
        ],
        weight_decay=cfg.weight_decay,
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        opt, T_0=max(1, cfg.restart_period)
    )
    Ht = torch.from_numpy(H).to(device)
    yt, Et = torch.from_numpy(y).long().to(device), torch.from_numpy(E).float().to(device)
    n, bs = len(H), cfg.batch_size
    nb = max(1, n // bs)  # full batches only: the heads' BatchNorm needs more than one sample
    epoch_seconds = []
    heads.train()
    tail.eval()  # frozen BatchNorm statistics (and no drop-connect); weights still train
    try:
        for epoch in range(cfg.epochs):
            t0 = time.perf_counter()
            perm = torch.from_numpy(rng.permutation(n)).to(device)
            for b in range(nb):
                idx = perm[b * bs : (b + 1) * bs] if nb > 1 else perm
                p = split.tail(Ht[idx]).mean(dim=(2, 3))
                z_c, z_e = heads(p)
                loss = cfg.ce_weight * ce(z_c, yt[idx]) + cfg.bce_weight * bce(z_e, Et[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step(epoch + (b + 1) / nb)
            epoch_seconds.append(time.perf_counter() - t0)
            if progress:
                progress("train", epoch + 1, cfg.epochs)
    finally:
        for p in tail_params:
            p.requires_grad_(False)
    tail.cpu()
    return heads.cpu().eval(), epoch_seconds  # exported and evaluated on the CPU


@torch.no_grad()
def pooled(split: SplitLite0, H: np.ndarray) -> np.ndarray:
    """Pooled 1280-d features of cached intermediates through the (trained) tail, on the CPU."""
    out = [
        split.tail(torch.from_numpy(H[i : i + BATCH])).mean(dim=(2, 3)).numpy()
        for i in range(0, len(H), BATCH)
    ]
    return np.concatenate(out) if out else np.zeros((0, 1280), np.float32)
