"""The trainable heads (the ImageQX paper's quality blocks, the acne severity study's MLP) and export wrappers (torch).

Grad-CAM is computed inside the graph in closed form: in eval mode the heads are piecewise linear
in the pooled features p (BatchNorm is an affine map, ReLU a 0/1 mask), so the gradient of every
class/explanation logit with respect to p is a product of weight matrices and masks. Since p is
the spatial mean of the 7x7 feature map A, d logit / d A_k(h, w) = d logit / d p_k / 49 for every
cell: the Grad-CAM weights. CAM_t = ReLU(sum_k alpha_tk A_k), scaled to a maximum of 1. This needs
no autograd at predict time, so onnxruntime (and onnxruntime-web) produce the maps; tests check
it against autograd.
"""

from __future__ import annotations

import torch
from torch import nn

from .backbone import Lite0Features
from .config import FEATURE_DIM


def training_device() -> torch.device:
    """Where the heads train: CUDA when this machine (a GPU worker) has it, the CPU otherwise."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _block(hidden: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(FEATURE_DIM, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(dropout)
    )


class QualityHeads(nn.Module):
    """Explanation block (sigmoid) and class block fed with [its 64 units, the 5 explanations]."""

    def __init__(self, n_classes: int = 4, n_expl: int = 5, hidden: int = 64, dropout: float = 0.2):
        super().__init__()
        self.expl_block = _block(hidden, dropout)
        self.expl_out = nn.Linear(hidden, n_expl)
        self.class_block = _block(hidden, dropout)
        self.class_out = nn.Linear(hidden + n_expl, n_classes)

    def forward(self, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits and explanation logits of pooled features p [N, 1280]."""
        z_e = self.expl_out(self.expl_block(p))
        h_c = self.class_block(p)
        z_c = self.class_out(torch.cat([h_c, torch.sigmoid(z_e)], dim=1))
        return z_c, z_e

    def jacobian(self, p: torch.Tensor) -> torch.Tensor:
        """d[class logits, explanation logits] / dp in eval mode: [N, n_classes + n_expl, 1280]."""

        def slope(block: nn.Sequential) -> tuple[torch.Tensor, torch.Tensor]:
            lin, bn = block[0], block[1]
            a = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            pre = (lin(p) - bn.running_mean) * a + bn.bias
            return (pre > 0).to(p.dtype) * a, lin.weight  # [N, H], [H, 1280]

        me, w1e = slope(self.expl_block)
        mc, w1c = slope(self.class_block)
        j_e = torch.matmul(self.expl_out.weight.unsqueeze(0) * me.unsqueeze(1), w1e)  # [N, E, K]
        hidden = mc.shape[1]
        wc_h, wc_s = self.class_out.weight[:, :hidden], self.class_out.weight[:, hidden:]
        s = torch.sigmoid(self.expl_out(self.expl_block(p)))
        j_c = torch.matmul(wc_h.unsqueeze(0) * mc.unsqueeze(1), w1c)
        j_c = j_c + torch.matmul(wc_s.unsqueeze(0) * (s * (1 - s)).unsqueeze(1), j_e)
        return torch.cat([j_c, j_e], dim=1)


def grad_cam(jac: torch.Tensor, fmap: torch.Tensor) -> torch.Tensor:
    """Grad-CAM maps [N, T, h, w] from d logit / d pooled [N, T, K] and the feature map [N, K, h, w]."""
    n, k, h, w = fmap.shape
    alpha = jac / float(h * w)
    cam = torch.relu(torch.matmul(alpha, fmap.reshape(n, k, h * w)))
    cam = cam / (cam.amax(dim=2, keepdim=True) + 1e-8)
    return cam.reshape(n, -1, h, w)


class QualityNet(nn.Module):
    """What ships: raw pixels in; class probabilities, explanation probabilities, CAMs out."""

    def __init__(self, heads: QualityHeads, backbone: Lite0Features | None = None) -> None:
        super().__init__()
        self.backbone = backbone or Lite0Features()
        self.heads = heads.eval()

    def forward(self, image: torch.Tensor):
        p, fmap = self.backbone(image)
        z_c, z_e = self.heads(p)
        cams = grad_cam(self.heads.jacobian(p), fmap)
        return torch.softmax(z_c, dim=1), torch.sigmoid(z_e), cams


class SeverityMLP(nn.Module):
    """Standardised features -> MLP (1024, 512, 256) -> one severity score per patch."""

    def __init__(self, hidden: tuple[int, ...] = (1024, 512, 256)) -> None:
        super().__init__()
        self.register_buffer("mu", torch.zeros(FEATURE_DIM))
        self.register_buffer("sd", torch.ones(FEATURE_DIM))
        layers: list[nn.Module] = []
        d = FEATURE_DIM
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        layers.append(nn.Linear(d, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return self.mlp((p - self.mu) / self.sd).squeeze(1)


class SeverityNet(nn.Module):
    """What ships: raw 224x224 patches in; one (unclipped) score per patch out."""

    def __init__(self, mlp: SeverityMLP, backbone: Lite0Features | None = None) -> None:
        super().__init__()
        self.backbone = backbone or Lite0Features()
        self.mlp = mlp.eval()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.backbone(image)[0])
