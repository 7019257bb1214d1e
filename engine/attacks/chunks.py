"""Splitting big batches so that memory stays bounded."""

from __future__ import annotations

import torch

# About 48 ImageNet images (3×224×224) or ~9,000 Fashion-MNIST images per forward/backward.
MAX_ELEMENTS_PER_CHUNK = 48 * 3 * 224 * 224


def chunk_size(sample_shape: torch.Size | tuple, budget: int = MAX_ELEMENTS_PER_CHUNK) -> int:
    per = 1
    for s in sample_shape:
        per *= int(s)
    return max(1, budget // max(per, 1))
