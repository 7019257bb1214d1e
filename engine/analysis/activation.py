"""Target-image selection for the Activation Attack (SPEC §2, "target image choice").

A random target class ≠ source class is drawn (seeded) unless one is given;
from a bank of images of that class the one whose layer-L activation is
*farthest* from the source's is the target image.
"""
from __future__ import annotations

import torch

from engine import data, images
from engine.hooks import capture_activations


def features(model, x: torch.Tensor, layer: int | str, batch: int = 256) -> torch.Tensor:
    """Flattened activations of catalogue `layer` for a batch of images (no gradient)."""
    name = model.layer(layer).name
    out = []
    with model.lock, capture_activations(model, [name]) as acts, torch.no_grad():
        for lo in range(0, x.shape[0], batch):
            model(x[lo:lo + batch])
            out.append(acts[name].flatten(1))
    return torch.cat(out)


def random_targets(y: torch.Tensor, num_classes: int, seed: int = 0, allowed: torch.Tensor | None = None) -> torch.Tensor:
    """A uniformly random class ≠ y per example (among `allowed`, default all), from a seeded generator."""
    allowed = torch.arange(num_classes) if allowed is None else torch.unique(allowed.cpu())
    gen = torch.Generator().manual_seed(seed)
    scores = torch.rand(y.shape[0], allowed.numel(), generator=gen)
    scores = scores.masked_fill(allowed[None, :] == y.cpu()[:, None], -1.0)
    if bool((scores.max(1).values < 0).any()):
        raise ValueError("no target class is available besides the source class")
    return allowed[scores.argmax(1)].to(y.device)


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
    if target is None:
        target = random_targets(y, model.num_classes, seed, allowed=bank_y)
    else:
        target = torch.as_tensor(target, device=y.device).long().reshape(-1).expand(y.shape[0]).clone()
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
    """((images, labels), (bank images, bank labels)) for a model's domain.

    Fashion-MNIST: the first n test images, and the second half of the test split as the
    target-image bank (disjoint). Photos: the sample gallery for both, labelled by the model.
    """
    if model.domain == "fashion-mnist":
        x, y = data.test_split()
        half = x.shape[0] // 2
        if not 1 <= n <= half:
            raise ValueError(f"the number of images must be between 1 and {half}")
        return (x[:n], y[:n]), (x[half:], y[half:])
    photos = torch.cat([images.load(p, model) for p in images.gallery().values()])
    with torch.no_grad():
        labels = model(photos).argmax(1)
    return (photos[:n], labels[:n]), (photos, labels)


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
