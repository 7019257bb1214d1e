"""Target-image selection for the Activation Attack (SPEC §2, "target image choice").

A random target class ≠ source class is drawn (seeded) unless one is given;
from a bank of images of that class the one whose layer-L activation is
*farthest* from the source's is the target image.
"""
from __future__ import annotations

import torch

from engine import domains, targets
from engine.hooks import capture_activations


def features(model, x: torch.Tensor, layer: int | str, batch: int = 256) -> torch.Tensor:
    """Flattened activations of catalogue `layer` for a batch of images (no gradient)."""
    return features_of_layers(model, x, [layer], batch)[0]


def features_of_layers(model, x: torch.Tensor, layers, batch: int = 256) -> list[torch.Tensor]:
    """Flattened activations of every catalogue layer in `layers`, from one forward per batch."""
    names = [model.layer(layer).name for layer in layers]
    out: list[list[torch.Tensor]] = [[] for _ in names]
    with model.lock, capture_activations(model, list(dict.fromkeys(names))) as acts, torch.no_grad():
        for lo in range(0, x.shape[0], batch):
            model(x[lo:lo + batch])
            for kept, name in zip(out, names):
                kept.append(acts[name].flatten(1))
    return [torch.cat(kept) for kept in out]


def farthest_in_class(
    model, x: torch.Tensor, layer: int | str, bank_x: torch.Tensor, bank_y: torch.Tensor,
    target: torch.Tensor | int | None = None, y: torch.Tensor | None = None, seed: int = 0,
    bank_features: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(target classes, target images, their bank indices) for a batch of sources.

    `y` (default: the model's predictions) decides which classes a random target
    must avoid. `bank_features` may be passed to reuse the bank's activations.
    """
    if y is None:
        with torch.no_grad():
            y = model(x).argmax(1)
    target = targets.choose(model, x, targets.RANDOM if target is None else target, y=y, seed=seed, allowed=bank_y)
    bank_y = bank_y.to(y.device)
    missing = sorted(set(target.tolist()) - set(bank_y.tolist()))
    if missing:
        names = ", ".join(model.class_names[c] for c in missing[:3])
        raise ValueError(f"the target-image bank has no image of class {names}")
    source_f = features(model, x, layer)
    bank_f = features(model, bank_x, layer) if bank_features is None else bank_features
    distance = torch.cdist(source_f, bank_f.to(source_f.device))  # N × bank
    distance = distance.masked_fill(bank_y[None, :] != target[:, None], float("-inf"))
    index = distance.argmax(1)
    return target, bank_x[index.to(bank_x.device)].to(x.device), index


def evaluation_split(model, n: int):
    """((images, labels), (bank images, bank labels)) of up to n of the model's domain's built-in images
    (engine.domains); the bank keeps only images the model classifies as their label (engine.targets.bank)."""
    (x, y), (bank_x, bank_y) = domains.of(model).evaluation_split(model, n)
    key = (id(model), model.name, str(model.device), bank_x.shape[0])
    if key not in _BANKS:  # a pass over thousands of images: once per model
        if len(_BANKS) > 8:
            _BANKS.clear()
        _BANKS[key] = targets.bank(model, bank_x, bank_y)
    return (x, y), _BANKS[key]


_BANKS: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def choose_target_images(model, x: torch.Tensor, layer: int | None, target=None, seed: int = 0,
                         extra_images: torch.Tensor | None = None):
    """(target classes, target images) for AA from the domain's bank, farthest-in-class at `layer`
    (default: the middle of the catalogue, AA's own default). `extra_images` (e.g. a user's
    uploads, fitted to the model) join the bank, labelled by the model's predictions."""
    from engine.attacks.activation import layer_name

    _, (bank_x, bank_y) = evaluation_split(model, 1)
    if extra_images is not None and extra_images.shape[0] > 0:
        extra_images = extra_images.to(bank_x.device)
        with torch.no_grad():
            extra_y = model(extra_images.to(x.device)).argmax(1).to(bank_y.device)
        bank_x, bank_y = torch.cat([bank_x, extra_images]), torch.cat([bank_y, extra_y])
    index = model.layer(layer_name(model, layer)).index
    chosen, goal, _ = farthest_in_class(model, x, index, bank_x.to(x.device), bank_y.to(x.device), target=target, seed=seed)
    return chosen, goal
