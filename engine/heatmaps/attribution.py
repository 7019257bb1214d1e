"""Attributions in pixel space: gradients of the class logit with respect to the [0, 1] input.

Formulas follow captum 0.9.0 (the tests' oracle): Saliency, NoiseTunnel(Saliency) in smoothgrad mode and
IntegratedGradients. Each per-channel attribution is then reduced to one value per pixel.
"""

from __future__ import annotations

import numpy as np
import torch

from .common import rows_per_chunk, target_gradients

RULES = ("gausslegendre", "riemann_trapezoid")


def saliency(model, x, index, batch_size=None):
    """Simonyan et al. 2014: |∂ score / ∂x|, the largest over channels."""
    return target_gradients(model, x, index, batch_size).abs().amax(1)


def smoothgrad(model, x, index, samples=25, noise=0.15, seed=0, batch_size=None):
    """Smilkov et al. 2017: the saliency map averaged over `samples` copies of the image with Gaussian noise of
    standard deviation `noise` (pixel scale, not clipped) added.

    The noise comes from a generator seeded by `seed` and made for this call (no global random state), drawn
    for a chunk of images at once in captum's layout, so with the same seed captum's NoiseTunnel sees the same
    noise."""
    if int(samples) < 1 or float(noise) < 0:
        raise ValueError(f"smoothgrad needs samples ≥ 1 and noise ≥ 0 (got {samples}, {noise})")
    samples = int(samples)
    generator = torch.Generator(device=x.device).manual_seed(int(seed))
    images = max(1, rows_per_chunk(x.shape[1:], batch_size) // samples)
    maps = []
    for start in range(0, x.shape[0], images):
        part = x[start : start + images].detach().repeat_interleave(samples, dim=0)
        part = part + torch.normal(0.0, float(noise), size=part.shape, generator=generator, device=x.device)
        rows = index[start : start + images].repeat_interleave(samples)
        grads = target_gradients(model, part, rows, batch_size).abs()
        maps.append(grads.view(-1, samples, *x.shape[1:]).mean(1))
    return torch.cat(maps).amax(1)


def quadrature(steps: int, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """(alphas, weights) of the path integral over [0, 1]."""
    if rule == "gausslegendre":
        if steps < 1:
            raise ValueError(f"steps must be at least 1 (got {steps})")
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return 0.5 * (1 + nodes), 0.5 * weights
    if rule == "riemann_trapezoid":
        if steps < 2:
            raise ValueError(f"the trapezoid rule needs at least 2 steps (got {steps})")
        # Weights sum to 1 (captum's sum to (n − 1)/n): completeness holds; the map is the same up to scale.
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] /= 2
        return np.linspace(0.0, 1.0, steps), weights
    raise ValueError(f"unknown integration rule {rule!r}: choose from {', '.join(RULES)}")


def integrated_gradients(model, x, index, steps=32, rule="gausslegendre", baseline=0.0, batch_size=None):
    """Sundararajan et al. 2017: (x − b) · ∫₀¹ ∂ score(b + α(x − b)) / ∂x dα, from a constant-grey baseline
    b (0.0: black) in [0, 1] pixel space; the map is |Σ over channels|, as captum's visualiser shows it.

    All steps × images path points go through the model in chunks, not one forward per step."""
    alphas, weights = quadrature(int(steps), rule)
    alphas = torch.as_tensor(alphas, dtype=x.dtype, device=x.device)
    weights = torch.as_tensor(weights, dtype=x.dtype, device=x.device)
    x = x.detach()
    base = torch.full_like(x, float(baseline))
    per_step = max(1, rows_per_chunk(x.shape[1:], batch_size) // x.shape[0])
    total = torch.zeros_like(x)
    for start in range(0, alphas.numel(), per_step):
        a = alphas[start : start + per_step]
        # Step-major, as captum lays out the path: row s·N + i is image i at alpha s.
        path = (base[None] + a[:, None, None, None, None] * (x - base)[None]).flatten(0, 1)
        grads = target_gradients(model, path, index.repeat(a.numel()), batch_size)
        total += (grads.view(a.numel(), *x.shape) * weights[start : start + per_step, None, None, None, None]).sum(0)
    return ((x - base) * total).sum(1).abs()
