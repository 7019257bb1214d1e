"""Deletion and insertion curves (Petsiuk et al. 2018, RISE): does a heat map rank pixels the way the model uses them?

Pixels are ordered by the map, highest first; equal values (a CAM's zeros) in a seeded random order rather than in
raster order, which would favour one corner. For k = 0..K, deletion replaces the first k/K of the pixels (all
channels) with a baseline image and records the softmax probability of the class; insertion starts from the baseline
and puts the first k/K back. A faithful map makes deletion fall fast (low area under the curve) and insertion rise
fast (high area). Areas: trapezoid rule over the fraction of pixels, x in [0, 1].

The baseline is black ("zeros", the default): RISE's deletion substrate, the same for both curves so that deletion
ends where insertion starts, and the default baseline of integrated gradients. "blur" (RISE's insertion substrate,
a Gaussian of σ = 5 px at 224 px, scaled to the image side) keeps colours and shapes without detail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine import heatmaps
from engine.heatmaps.common import resolve_target, rows_per_chunk

BASELINES = ("zeros", "blur")


def baseline_image(x: torch.Tensor, kind: str = "zeros") -> torch.Tensor:
    if kind == "zeros":
        return torch.zeros_like(x)
    if kind != "blur":
        raise ValueError(f"unknown baseline {kind!r}: choose from {', '.join(BASELINES)}")
    sigma = max(1.0, 5.0 * max(x.shape[-2:]) / 224)
    radius = math.ceil(3 * sigma)
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).repeat(x.shape[1], 1, 1, 1)  # C × 1 × 1 × taps, one filter per channel
    out = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), kernel, groups=x.shape[1])
    return F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"), kernel.transpose(2, 3), groups=x.shape[1])


def pixel_order(heat: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """N × pixels: flat pixel indices, highest value first, ties in a seeded random order."""
    flat = heat.flatten(1)
    shuffle = torch.randperm(flat.shape[1], generator=torch.Generator().manual_seed(int(seed))).to(flat.device)
    rank = torch.argsort(flat[:, shuffle], dim=1, descending=True, stable=True)
    return shuffle[rank]


def path_images(x, base, heat, steps: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(deletion, insertion): N × (K+1) × C × H × W; step k changes the first round(k·P/K) of the P pixels."""
    n, c, h, w = x.shape
    order = pixel_order(heat, seed)
    position = torch.empty_like(order).scatter_(1, order, torch.arange(h * w, device=x.device).expand(n, -1))
    counts = torch.round(torch.arange(steps + 1, device=x.device) * (h * w) / steps)
    changed = (position[:, None, :] < counts[None, :, None]).view(n, steps + 1, 1, h, w)
    xs, bs = x[:, None], base[:, None]
    return torch.where(changed, bs, xs), torch.where(changed, xs, bs)


@dataclass
class Curves:
    fractions: torch.Tensor  # K+1 shares of pixels changed, 0 to 1
    deletion: torch.Tensor  # N × (K+1) probabilities of the class
    insertion: torch.Tensor

    @property
    def deletion_auc(self) -> torch.Tensor:
        return torch.trapezoid(self.deletion, self.fractions, dim=1)

    @property
    def insertion_auc(self) -> torch.Tensor:
        return torch.trapezoid(self.insertion, self.fractions, dim=1)


def curves(
    model, x, heat, target=None, steps: int = 16, baseline: str = "zeros", seed: int = 0, batch_size=None
) -> Curves:
    """Deletion and insertion curves of maps `heat` (N×H×W, x's size) for class `target` (default: predicted).

    Each image's 2(K+1) perturbed copies go through the model in one forward (several images per forward where
    the memory budget allows)."""
    if int(steps) < 1:
        raise ValueError(f"steps must be at least 1 (got {steps})")
    if heat.shape != (x.shape[0], *x.shape[-2:]):
        raise ValueError(f"heat maps of shape {tuple(heat.shape)} do not match images of shape {tuple(x.shape)}")
    steps, x = int(steps), x.detach()
    index = resolve_target(model, x, target)
    base = baseline_image(x, baseline)
    per_image = 2 * (steps + 1)
    images = max(1, rows_per_chunk(x.shape[1:], batch_size) // per_image)
    probs = []
    with torch.no_grad():
        for start in range(0, x.shape[0], images):
            part = slice(start, start + images)
            deletion, insertion = path_images(x[part], base[part], heat[part].to(x.device), steps, seed)
            batch = torch.stack([deletion, insertion], 1).flatten(0, 2)  # image, curve, step
            p = torch.softmax(model(batch).float(), dim=1)
            rows = index[part].repeat_interleave(per_image)
            probs.append(p.gather(1, rows[:, None]).view(-1, 2, steps + 1))
    probs = torch.cat(probs)
    fractions = torch.linspace(0.0, 1.0, steps + 1, device=x.device)
    return Curves(fractions, probs[:, 0], probs[:, 1])


def random_maps(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The control: uniform random attributions, one map per image."""
    noise = torch.rand(x.shape[0], *x.shape[-2:], generator=torch.Generator().manual_seed(int(seed)))
    return noise.to(x.device)


def evaluate(
    model, x, target=None, methods=("gradcam", "saliency"), steps=16, baseline="zeros", layer=None, seed=0
) -> dict:
    """Mean deletion and insertion AUC per heat-map method, and for random maps ("random"), on the same images."""
    index = resolve_target(model, x, target)
    maps = {"random": random_maps(x, seed)}
    for name in methods:
        cam = name in heatmaps.CAM_METHODS
        maps[name] = heatmaps.compute(model, x, name, layer=layer if cam else None, target=index)
    rows = {}
    for name, heat in maps.items():
        c = curves(model, x, heat, index, steps, baseline, seed)
        rows[name] = {
            "deletion_auc": float(c.deletion_auc.mean()),
            "insertion_auc": float(c.insertion_auc.mean()),
            "deletion_auc_per_image": [round(v, 6) for v in c.deletion_auc.tolist()],
            "insertion_auc_per_image": [round(v, 6) for v in c.insertion_auc.tolist()],
        }
    return {
        "settings": {"images": x.shape[0], "steps": int(steps), "baseline": baseline, "seed": int(seed)},
        "methods": rows,
    }
