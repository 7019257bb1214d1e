"""Logit margins shared by the C&W and Square attacks."""

from __future__ import annotations

import torch


def margin(logits: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:
    """Per example: how far the attack still is from success (≤ 0 means it succeeded).

    Untargeted: z_y − max_{j≠y} z_j. Targeted: max_{j≠t} z_j − z_t.
    """
    own = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.masked_fill(torch.nn.functional.one_hot(labels, logits.shape[1]).bool(), float("-inf")).amax(1)
    return others - own if targeted else own - others
