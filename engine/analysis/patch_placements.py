"""Where the noise patch goes and what the model answers there (engine.analysis.patch_distance runs the
experiment): the heat map's centre, the one patch, the ring of placements around the centre and the random
control positions, the patched batch and the answers read from it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

CENTRES = ("peak", "centroid")
PATTERNS = ("sign", "uniform")


@dataclass(frozen=True)
class Placements:
    """Where the patch goes: per placement its photo, top-left pixel, distance and direction (radians).

    Ring placements carry the requested distance; control placements their measured one (and no angle)."""

    image: torch.Tensor
    top: torch.Tensor
    left: torch.Tensor
    distance: torch.Tensor
    angle: torch.Tensor

    def __len__(self) -> int:
        return int(self.image.numel())

    def take(self, keep: torch.Tensor) -> Placements:
        return Placements(self.image[keep], self.top[keep], self.left[keep], self.distance[keep], self.angle[keep])


def heat_centres(maps: torch.Tensor, how: str = "peak") -> torch.Tensor:
    """(row, col) per N×H×W heat map: its peak or its weighted centroid; NaN for an all-zero map."""
    if how not in CENTRES:
        raise ValueError(f"unknown centre {how!r}; choose one of {', '.join(CENTRES)}")
    n, h, w = maps.shape
    flat = maps.flatten(1).float()
    top = flat.max(1, keepdim=True).values
    # A peak of an upsampled map is often a flat top of several pixels (a coarse cell's centre between two
    # pixels; an edge cell clamped out to the border): its middle, not argmax's first pixel.
    weight = (flat >= top - 1e-6).float() if how == "peak" else flat
    rows = torch.arange(h, device=maps.device, dtype=torch.float32).repeat_interleave(w)
    cols = torch.arange(w, device=maps.device, dtype=torch.float32).repeat(h)
    mass = weight.sum(1).clamp_min(1e-12)
    centre = torch.stack([(weight * rows).sum(1) / mass, (weight * cols).sum(1) / mass], 1)
    empty = top.squeeze(1) <= 0
    return torch.where(empty[:, None], torch.full_like(centre, float("nan")), centre)


def make_patch(channels: int, size: int, amplitude: float, pattern: str = "sign", seed: int = 0) -> torch.Tensor:
    """The one patch every placement uses (C×size×size, values within ±amplitude): seeded ±amplitude
    signs, or uniform noise in [−amplitude, amplitude]."""
    if pattern not in PATTERNS:
        raise ValueError(f"unknown patch pattern {pattern!r}; choose one of {', '.join(PATTERNS)}")
    gen = torch.Generator().manual_seed(int(seed))
    if pattern == "sign":
        signs = torch.randint(0, 2, (channels, size, size), generator=gen).float() * 2 - 1
        return signs * float(amplitude)
    return (torch.rand((channels, size, size), generator=gen) * 2 - 1) * float(amplitude)


def top_left(centre_row, centre_col, distance, angle, size: int):
    """The patch's top-left pixel whose centre lies at `distance` from the centre in direction `angle`
    (0 = right, counter-clockwise on screen): each coordinate within half a pixel of the exact spot."""
    offset = (size - 1) / 2
    angle = torch.as_tensor(angle, dtype=torch.float64)
    # sin(π) is 1e-16 rather than 0: snapped, a spot exactly halfway between pixels rounds the same way (to even)
    # in every direction instead of by floating-point noise.
    sin, cos = (torch.where(v.abs() < 1e-12, torch.zeros_like(v), v) for v in (torch.sin(angle), torch.cos(angle)))
    row = torch.as_tensor(centre_row, dtype=torch.float64) - distance * sin - offset
    col = torch.as_tensor(centre_col, dtype=torch.float64) + distance * cos - offset
    return torch.round(row).long(), torch.round(col).long()


def patch_centre(top: torch.Tensor, left: torch.Tensor, size: int) -> torch.Tensor:
    return torch.stack([top.float(), left.float()], -1) + (size - 1) / 2


def within_image(top, left, size: int, shape) -> torch.Tensor:
    h, w = shape
    return (top >= 0) & (left >= 0) & (top + size <= h) & (left + size <= w)


def ring(centres: torch.Tensor, distances, directions: int, size: int, shape) -> tuple[Placements, torch.Tensor]:
    """Every photo's placements at each distance in `directions` evenly spread directions, duplicates
    (same photo, distance and pixel) once; and per photo and distance (N×D) how many were skipped
    because the patch would leave the image."""
    d = torch.as_tensor([float(v) for v in distances], dtype=torch.float64)
    angles = torch.arange(int(directions), dtype=torch.float64) * (2 * math.pi / int(directions))
    n, nd, nk = centres.shape[0], d.numel(), angles.numel()
    grid = (n, nd, nk)
    rows, cols = (centres[:, i].cpu().view(n, 1, 1).expand(grid) for i in (0, 1))
    dd, aa = d.view(1, nd, 1).expand(grid), angles.view(1, 1, nk).expand(grid)
    top, left = top_left(rows, cols, dd, aa, size)
    image = torch.arange(n).view(n, 1, 1).expand(grid)
    which = torch.arange(nd).view(1, nd, 1).expand(grid)
    key = torch.stack([t.flatten() for t in (image, which, top, left)], 1)  # one row per (photo, distance, pixel)
    first = torch.zeros(key.shape[0], dtype=torch.bool)
    if key.shape[0]:
        unique, inverse = torch.unique(key, dim=0, return_inverse=True)
        earliest = torch.full((unique.shape[0],), key.shape[0], dtype=torch.long)
        first[earliest.scatter_reduce_(0, inverse, torch.arange(key.shape[0]), "amin")] = True
    inside = within_image(top, left, size, shape).flatten()
    skipped = (first & ~inside).view(grid).sum(2)
    keep = first & inside
    placed = Placements(*(t.flatten()[keep] for t in (image, top, left, dd.float(), aa.float())))
    return placed, skipped


def random_positions(counts: torch.Tensor, centres: torch.Tensor, size: int, shape, seed: int = 0) -> Placements:
    """`counts[i]` uniformly random placements of the patch inside photo i, with their distance from its centre."""
    h, w = shape
    gen = torch.Generator().manual_seed(int(seed) + 1)  # not the patch's stream: positions independent of its signs
    image = torch.repeat_interleave(torch.arange(counts.numel()), counts.cpu())
    top = torch.randint(0, h - size + 1, (image.numel(),), generator=gen)
    left = torch.randint(0, w - size + 1, (image.numel(),), generator=gen)
    distance = (patch_centre(top, left, size) - centres.cpu()[image]).norm(dim=-1)
    return Placements(image, top, left, distance, torch.full_like(distance, float("nan")))


def apply_patch(
    x: torch.Tensor, patch: torch.Tensor, image: torch.Tensor, top: torch.Tensor, left: torch.Tensor
) -> torch.Tensor:
    """x[image[j]] with the patch added at (top[j], left[j]), clamped to [0, 1]: one batch, no Python loop."""
    c, s = patch.shape[0], patch.shape[-1]
    device = x.device
    image, top, left = image.to(device), top.to(device), left.to(device)
    out = x[image].clone()
    span = torch.arange(s, device=device)
    b = torch.arange(image.numel(), device=device).view(-1, 1, 1, 1)
    ch = torch.arange(c, device=device).view(1, -1, 1, 1)
    rows = (top.view(-1, 1) + span).view(-1, 1, s, 1)
    cols = (left.view(-1, 1) + span).view(-1, 1, 1, s)
    out[b, ch, rows, cols] += patch.to(device=device, dtype=out.dtype)
    return out.clamp_(0, 1)


def answers(logits: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """p(true), margin p(true) − max p(other) (below 0 exactly where the decision flips) and the predicted class."""
    p = torch.softmax(logits.float(), 1)
    p_true = p.gather(1, y.view(-1, 1)).squeeze(1)
    other = p.scatter(1, y.view(-1, 1), -1.0).max(1).values
    return {"p_true": p_true, "margin": p_true - other, "predicted": p.argmax(1)}
