"""Logit margins shared by the C&W and Square attacks, and the margin a success needs to survive re-scoring."""

from __future__ import annotations

import torch

# Logits computed elsewhere differ by rounding: TF32 convolutions (PyTorch's CUDA default) move them by ~1e-3 of
# their size, and another batch composition picks other kernels. An attack that stops the moment the argmax flips
# leaves its image within that of the boundary, and it flips back when scored again; so a success counts only
# past a margin five times TF32's error (3.5 standard deviations of a 1e-3 relative error on two logits; a wider one
# costs the minimal-norm attacks more distance than their references for nothing). Lower-precision logits (bf16,
# fp16) widen it to 8 of their own ulps.
RELATIVE_MARGIN = 5e-3


def margin(logits: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:
    """Per example: how far the attack still is from success (≤ 0 means it succeeded).

    Untargeted: z_y − max_{j≠y} z_j. Targeted: max_{j≠t} z_j − z_t.
    """
    own = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.masked_fill(torch.nn.functional.one_hot(labels, logits.shape[1]).bool(), float("-inf")).amax(1)
    return others - own if targeted else own - others


def tolerance(logits: torch.Tensor) -> torch.Tensor:
    """Per row: the margin below which a success may not survive other arithmetic (relative to the logits' size)."""
    relative = max(RELATIVE_MARGIN, 8 * torch.finfo(logits.dtype).eps)
    return relative * logits.detach().abs().amax(1)


def robust(logits: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:
    """Per row: succeeded by more than `tolerance`, so that re-scoring on any device or batch agrees."""
    return margin(logits.detach(), labels, targeted) < -tolerance(logits)
