"""Class activation maps: a layer's feature maps A (N×C×h×w) combined into one map per image.

Each method is a function of A, the class score's gradient G at A (None for the gradient-free ones) and a
context for Score-CAM, which needs more forwards. Formulas follow pytorch-grad-cam 1.5.7, the tests' oracle.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.hooks import capture_activations

from .common import EPS, class_index, rows_per_chunk, to_input_size


def capture(model, x: torch.Tensor, layer, target, gradients: bool):
    """(A, G or None, class index) at catalogue `layer` (default: cam_layer), with the hook alive only here."""
    name = model.cam_layer if layer is None else model.layer(layer).name
    with model.lock, capture_activations(model, [name]) as acts:
        if gradients:
            x = x.detach().requires_grad_(True)  # parameters are frozen: the graph must start at x
            logits = model(x)
            index = class_index(logits, target)
            activation = acts[name]
            grads = torch.autograd.grad(logits.gather(1, index[:, None]).sum(), activation)[0]
        else:
            with torch.no_grad():
                logits = model(x)
            index, activation, grads = class_index(logits, target), acts[name], None
    if activation.dim() != 4:
        raise ValueError(f"layer {name!r} has no spatial map (output shape {tuple(activation.shape[1:])})")
    return activation.detach().float(), None if grads is None else grads.float(), index


def weighted(weights: torch.Tensor, activation: torch.Tensor) -> torch.Tensor:
    return (weights[:, :, None, None] * activation).sum(1)


def gradcam(a, g, **_):
    """Selvaraju et al. 2017: channel weights are the spatial mean of the gradient."""
    return weighted(g.mean(dim=(2, 3)), a)


def gradcam_pp(a, g, **_):
    """Chattopadhay et al. 2018, Eq. 19 with the ReLU of Eq. 7; alpha is zero where the gradient is."""
    g2 = g.pow(2)
    alpha = g2 / (2 * g2 + a.sum(dim=(2, 3), keepdim=True) * g2 * g + 1e-6)
    alpha = torch.where(g != 0, alpha, torch.zeros_like(alpha))
    return weighted((g.clamp_min(0) * alpha).sum(dim=(2, 3)), a)


def xgradcam(a, g, **_):
    """Fu et al. 2020: gradients weighted by each channel's share of its own activation mass."""
    return weighted((g * a / (a.sum(dim=(2, 3), keepdim=True) + EPS)).sum(dim=(2, 3)), a)


def layercam(a, g, **_):
    """Jiang et al. 2021: a weight per position, the positive part of the gradient there."""
    return (g.clamp_min(0) * a).sum(1)


def eigencam(a, g=None, **_):
    """Muhammad & Yasin 2020: the activations projected on their first principal component (no class).

    An SVD's sign is arbitrary (pytorch-grad-cam's EigenCAM keeps whatever LAPACK returns); the projection is
    flipped when its most negative value outweighs its largest, the correction of Seg-Eigen-CAM's Eq. 13.
    """
    n, c, h, w = a.shape
    rows = torch.nan_to_num(a).flatten(2).transpose(1, 2)  # N × positions × channels
    rows = rows - rows.mean(1, keepdim=True)
    # MPS has no SVD; elsewhere it runs where the activations are.
    solve = rows.cpu() if rows.device.type == "mps" else rows
    top = torch.linalg.svd(solve, full_matrices=False).Vh[:, 0, :].to(rows.device)
    projection = (rows @ top[:, :, None]).squeeze(2)
    flip = projection.min(1).values.abs() > projection.max(1).values.abs()
    return torch.where(flip[:, None], -projection, projection).view(n, h, w)


def scorecam(a, g=None, *, model, x, index, batch_size=None, **_):
    """Wang et al. 2020: each channel, upsampled and scaled to [0, 1], masks the input; its weight is the
    softmax over channels of the masked images' class logits. One forward per channel, batched over images
    and channels alike."""
    n, c, h, w = a.shape
    masks = a.reshape(n * c, 1, h, w)
    owner = torch.arange(n, device=a.device).repeat_interleave(c)
    step = rows_per_chunk(x.shape[1:], batch_size)
    scores = []
    with torch.no_grad():
        for start in range(0, n * c, step):
            # align_corners=True: pytorch-grad-cam upsamples with nn.UpsamplingBilinear2d.
            up = F.interpolate(masks[start : start + step], size=x.shape[-2:], mode="bilinear", align_corners=True)
            low = up.flatten(1).min(1).values[:, None, None, None]
            high = up.flatten(1).max(1).values[:, None, None, None]
            rows = owner[start : start + step]
            masked = x[rows] * ((up - low) / (high - low + 1e-8)).to(x.dtype)
            scores.append(model(masked).gather(1, index[rows, None])[:, 0].float())
    return weighted(torch.softmax(torch.cat(scores).view(n, c), dim=1), a)


def run(fn, model, x: torch.Tensor, layer, target, gradients: bool, **options) -> torch.Tensor:
    a, g, index = capture(model, x, layer, target, gradients)
    raw = fn(a, g, model=model, x=x.detach(), index=index, **options)
    return to_input_size(raw.clamp_min(0), x.shape[-2:])
