"""The 1000 ILSVRC-2012 classes in the models' order: their English names, from torchvision's
published weight metadata (a public API; no download: the metadata ships in the wheel)."""
from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def class_names() -> tuple[str, ...]:
    from torchvision.models import ResNet18_Weights

    names = tuple(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])
    if len(names) != 1000:
        raise RuntimeError(f"torchvision lists {len(names)} ImageNet classes, not 1000")
    return names
