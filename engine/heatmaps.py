"""Heat maps (also Mask-FGSM's mask S): Grad-CAM, Grad-CAM++ and input-gradient saliency.

All three are functions over a batch with no state kept between calls. The
layer's activation is captured with a forward hook that exists only inside
`capture_activations` and only while the model's lock is held, so concurrent
app sessions never see each other's hooks. Maps are upsampled (bilinear) to the
input size and min–max normalised to [0, 1] per image, as pytorch-grad-cam does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.hooks import capture_activations

METHODS = ("gradcam", "gradcam++")
_EPS = 1e-7


def _class_scores(logits: torch.Tensor, target) -> torch.Tensor:
    """The logit of `target` per example; None means each example's predicted class."""
    if target is None:
        index = logits.argmax(1)
    else:
        index = torch.as_tensor(target, device=logits.device).long().reshape(-1)
        if index.numel() == 1:
            index = index.expand(logits.shape[0])
        if index.numel() != logits.shape[0]:
            raise ValueError(f"target has {index.numel()} entries for a batch of {logits.shape[0]}")
        if bool(((index < 0) | (index >= logits.shape[1])).any()):
            raise ValueError(f"target must be class indices in 0..{logits.shape[1] - 1}")
    return logits.gather(1, index[:, None]).squeeze(1)


def normalise(maps: torch.Tensor) -> torch.Tensor:
    """Per-map min–max scaling to [0, 1] (a constant map becomes all zeros)."""
    flat = maps.flatten(1)
    low = flat.min(1, keepdim=True).values
    flat = flat - low
    return (flat / (flat.max(1, keepdim=True).values + _EPS)).view_as(maps)


def grad_cam(
    model, x: torch.Tensor, layer: int | str | None = None, target=None, method: str = "gradcam"
) -> torch.Tensor:
    """N×H×W heat maps in [0, 1] for class `target` (default: predicted) at catalogue `layer` (default: cam_layer)."""
    if method not in METHODS:
        raise ValueError(f"unknown heat-map method {method!r}; choose one of {', '.join(METHODS)}")
    name = model.cam_layer if layer is None else model.layer(layer).name
    x = x.detach().requires_grad_(True)  # parameters are frozen: the graph must start at x
    with model.lock, capture_activations(model, [name]) as acts:
        scores = _class_scores(model(x), target)
        activation = acts[name]
        grads = torch.autograd.grad(scores.sum(), activation)[0]
    activation = activation.detach()
    if activation.dim() != 4:
        raise ValueError(f"layer {name!r} has no spatial map (output shape {tuple(activation.shape[1:])})")
    if method == "gradcam":
        weights = grads.mean(dim=(2, 3))
    else:  # Grad-CAM++ (Chattopadhay et al. 2018, Eq. 19), with the ReLU of Eq. 7
        g2 = grads.pow(2)
        g3 = g2 * grads
        sum_a = activation.sum(dim=(2, 3), keepdim=True)
        alpha = g2 / (2 * g2 + sum_a * g3 + 1e-6)
        alpha = torch.where(grads != 0, alpha, torch.zeros_like(alpha))
        weights = (grads.clamp_min(0) * alpha).sum(dim=(2, 3))
    cam = (weights[:, :, None, None] * activation).sum(1).clamp_min(0)
    cam = normalise(cam)
    cam = F.interpolate(cam[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return normalise(cam)


def saliency(model, x: torch.Tensor, target=None) -> torch.Tensor:
    """|∂ score / ∂x|, max over channels, normalised per image: the plain input-gradient map."""
    x = x.detach().requires_grad_(True)
    grads = torch.autograd.grad(_class_scores(model(x), target).sum(), x)[0]
    return normalise(grads.abs().amax(1))
