"""The shipped ONNX graph agrees with torch, and the in-graph Grad-CAM with autograd Grad-CAM."""

from __future__ import annotations

import numpy as np

from labeler.ml.images import to_input
from labeler.ml.runtime import session


def _heads_and_images():
    import synth
    import torch
    from PIL import Image

    from labeler.ml.heads import QualityHeads

    torch.manual_seed(0)
    heads = QualityHeads()
    with torch.no_grad():  # non-trivial BatchNorm statistics, as after training
        for bn in (heads.expl_block[1], heads.class_block[1]):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.3, 0.3)
    rng = np.random.default_rng(0)
    ims = [
        Image.fromarray(synth.photo("coffee")),
        synth.skin(rng, lesion=True),
        synth.skin(rng, lesion=False),
    ]
    return heads.eval(), np.stack([to_input(im) for im in ims])


def test_onnx_matches_torch_within_1e4(tmp_path):
    import torch

    from labeler.ml.backbone import export_onnx
    from labeler.ml.heads import QualityNet

    heads, x = _heads_and_images()
    net = QualityNet(heads).eval()
    path = export_onnx(net, tmp_path / "q.onnx", ["image"], ["class_probs", "expl_probs", "cams"])
    ort = session(path).run(None, {"image": x})
    with torch.no_grad():
        ref = [t.numpy() for t in net(torch.from_numpy(x))]
    for a, b in zip(ort, ref, strict=True):
        assert a.shape == b.shape
        assert np.abs(a - b).max() < 1e-4


def test_closed_form_grad_cam_equals_autograd():
    import torch

    from labeler.ml.backbone import Lite0Features
    from labeler.ml.heads import grad_cam

    heads, x = _heads_and_images()
    _, fmap = Lite0Features()(torch.from_numpy(x))
    fmap = fmap.detach().requires_grad_(True)
    z_c, z_e = heads(fmap.mean(dim=(2, 3)))
    logits = torch.cat([z_c, z_e], dim=1)
    closed = grad_cam(heads.jacobian(fmap.mean(dim=(2, 3))), fmap).detach()
    for t in range(logits.shape[1]):
        (grad,) = torch.autograd.grad(logits[:, t].sum(), fmap, retain_graph=True)
        alpha = grad.mean(dim=(2, 3), keepdim=True)
        cam = torch.relu((alpha * fmap).sum(1))
        cam = cam / (cam.flatten(1).amax(1)[:, None, None] + 1e-8)
        assert torch.allclose(closed[:, t], cam.detach(), atol=1e-4), t
