"""Norm-ball projections and box clamping as pure functions: no model, no state, testable alone."""

from __future__ import annotations

import torch


def clamp_unit(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0.0, 1.0)


def project_linf(x_adv: torch.Tensor, x: torch.Tensor, eps: float, clip: bool = True) -> torch.Tensor:
    """Nearest point of the ε-ball around `x` that is also inside [0, 1] (unless `clip` is off).

    Written as x + clip(δ) (torchattacks' order of operations) so that iterates agree
    bit for bit; MI-FGSM's momentum amplifies last-bit differences into sign flips.
    """
    x_adv = x + (x_adv - x).clamp(-eps, eps)
    return x_adv.clamp(0.0, 1.0) if clip else x_adv


def project_l2(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    delta = x_adv - x
    norm = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))
    return (x + delta * torch.clamp(eps / norm, max=1.0)).clamp(0.0, 1.0)
