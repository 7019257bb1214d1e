"""What a sweep's worker process keeps between jobs: models, image sets, target banks, one-step directions.

A local worker process or a Ray worker runs many jobs; keeping these at module level means each worker
loads each model and image set once, however many shards it is given. The grid's validation uses the
same model cache, so a serial sweep does not load its models twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from engine import domains, models
from engine.analysis.target_images import TargetBank, evaluation_split, target_bank


class ImageSet(NamedTuple):
    x: torch.Tensor
    y: torch.Tensor
    bank_x: torch.Tensor
    bank_y: torch.Tensor


_MODELS: dict[tuple[str, str | None], Any] = {}
_IMAGES: dict[tuple[str, int, str | None, str | None], ImageSet] = {}
_TARGET_BANKS: dict[tuple, Any] = {}  # one entry: a bank's activations can be large
# One-step attacks' (spec.one_step) directions per shard: the jobs of a shard at other ε reuse the
# gradient instead of recomputing it. Least recently used first out, beyond this many stored values.
_DIRECTIONS: dict[tuple, torch.Tensor] = {}
_DIRECTION_ELEMENTS = 64 * 2**20
_CLEAN: dict[tuple, list[torch.Tensor]] = {}  # a few integers per image: many shards fit
_CLEAN_KEYS = 1024


def model(name: str, device: str | None) -> tuple[Any, int]:
    """The cached model and how many loads this call did (0 or 1)."""
    key = (name, device)
    if key in _MODELS:
        return _MODELS[key], 0
    _MODELS[key] = models.open_model(name, device=device)
    return _MODELS[key], 1


def image_set(white, count: int, device: str | None, folder: str | None = None) -> ImageSet:
    """The first `count` evaluation images and the target-image bank, from the domain or a user's `folder`."""
    # Keyed by the white-box model: its bank holds the images it classifies correctly (evaluation_split).
    key = (white.name, count, device, folder)
    if key not in _IMAGES:
        from engine import datasets

        if folder is not None and domains.of(white).custom:  # a user's model: the folder is its domain's images
            white.domain_record = datasets.as_domain(
                domains.of(white), datasets.open_dataset(folder), f"data:{folder}", white
            )
        if folder is None or domains.of(white).custom:
            (x, y), (bank_x, bank_y) = evaluation_split(white, count)
        else:
            (x, y), (bank_x, bank_y) = datasets.evaluation_split(datasets.open_dataset(folder), white, count)
        _IMAGES[key] = ImageSet(*(t.to(white.device) for t in (x, y, bank_x, bank_y)))
    return _IMAGES[key]


def bank(white, layer: int, count: int, imageset: ImageSet) -> TargetBank:
    """The target-image bank's activations at `layer`, kept for the next job on the same (model, layer)."""
    # Consecutive jobs of a worker are usually shards of the same (model, layer): reuse the
    # bank's activations across them instead of recomputing 5,000 forwards per shard.
    key = (white.name, str(white.device), layer, count, id(imageset))  # imagesets are kept: ids stay unique
    if key not in _TARGET_BANKS:
        _TARGET_BANKS.clear()
        _TARGET_BANKS[key] = target_bank(white, imageset.bank_x, imageset.bank_y, layer)
    return _TARGET_BANKS[key]


def clean_labels(key: tuple, make: Callable[[], list[torch.Tensor]]) -> list[torch.Tensor]:
    """The clean images' labels stored under `key` (a shard of an image set on a white box and its black
    boxes), made by `make` when they are not: every attack and ε of the grid scores against the same ones."""
    if key not in _CLEAN:
        while len(_CLEAN) >= _CLEAN_KEYS:
            _CLEAN.pop(next(iter(_CLEAN)))
        _CLEAN[key] = make()
    return _CLEAN[key]


def direction(key: tuple, make: Callable[[], torch.Tensor]) -> torch.Tensor:
    """The one-step direction stored under `key`, made by `make` when it is not stored (least recently used
    directions are dropped beyond the size limit)."""
    if key in _DIRECTIONS:
        _DIRECTIONS[key] = _DIRECTIONS.pop(key)  # most recently used last
        return _DIRECTIONS[key]
    found = _DIRECTIONS[key] = make()
    while sum(d.numel() for d in _DIRECTIONS.values()) > _DIRECTION_ELEMENTS and len(_DIRECTIONS) > 1:
        _DIRECTIONS.pop(next(iter(_DIRECTIONS)))
    return found
