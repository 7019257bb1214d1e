"""Target-image selection for the Activation Attack (Inkawhich et al. 2019).

A random target class ≠ source class is drawn (seeded) unless one is given;
from a bank of images of that class, the ones the white-box model classifies as
that class, a rule (engine.targets.IMAGE_RULES) picks the target image at layer
L: by default the one whose activation is *farthest* from the source's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine import domains, targets
from engine.hooks import capture_activations


def features(model, x: torch.Tensor, layer: int | str, batch: int = 256) -> torch.Tensor:
    """Flattened activations of catalogue `layer` for a batch of images (no gradient)."""
    return features_of_layers(model, x, [layer], batch)[0]


def features_of_layers(model, x: torch.Tensor, layers, batch: int = 256) -> list[torch.Tensor]:
    """Flattened activations of every catalogue layer in `layers`, from one forward per batch."""
    return _forward(model, x, layers, batch)[0]


def _forward(model, x: torch.Tensor, layers, batch: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """(activations of each of `layers`, predicted classes) from one forward per batch."""
    names = [model.layer(layer).name for layer in layers]
    out: list[list[torch.Tensor]] = [[] for _ in names]
    pred = []
    with model.lock, capture_activations(model, list(dict.fromkeys(names))) as acts, torch.no_grad():
        for lo in range(0, x.shape[0], batch):
            pred.append(model(x[lo : lo + batch]).argmax(1))
            for kept, name in zip(out, names):
                kept.append(acts[name].flatten(1))
    return [torch.cat(kept) for kept in out], torch.cat(pred)


@dataclass(frozen=True)
class TargetBank:
    """AA's bank at one layer: only images the model classifies as their label, with their activations."""

    x: torch.Tensor
    y: torch.Tensor
    features: torch.Tensor
    layer: int


def target_bank(model, bank_x: torch.Tensor, bank_y: torch.Tensor, layer: int | str, batch: int = 256) -> TargetBank:
    """The bank's images the model classifies as their label and their activations at `layer`: one forward pass
    gives both, so a bank is checked wherever it is used, whoever built it."""
    index = model.layer(layer).index
    (f,), pred = _forward(model, bank_x, [index], batch)
    keep = pred.to(bank_y.device) == bank_y
    return TargetBank(bank_x[keep.to(bank_x.device)], bank_y[keep], f[keep.to(f.device)], index)


def target_images(
    model,
    x: torch.Tensor,
    layer: int | str,
    bank: TargetBank | tuple[torch.Tensor, torch.Tensor],
    target: torch.Tensor | int | None = None,
    y: torch.Tensor | None = None,
    seed: int = 0,
    rule: str = targets.FARTHEST,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(target classes, target images, their indices in the checked bank) for a batch of sources.

    `bank` is a `TargetBank` at `layer` or (images, labels), checked here. `y` (default: the model's
    predictions) decides which classes a random target must avoid; `rule` is engine.targets'
    image rule (farthest from the source, nearest the class mean, or random in class, from `seed`).
    """
    if y is None:
        with torch.no_grad():
            y = model(x).argmax(1)
    index = model.layer(layer).index
    if not isinstance(bank, TargetBank):
        bank = target_bank(model, *bank, index)
    elif bank.layer != index:
        raise ValueError(f"the target-image bank holds layer {bank.layer}'s activations, not layer {index}'s")
    target = targets.choose(model, x, targets.RANDOM if target is None else target, y=y, seed=seed, allowed=bank.y)
    missing = sorted(set(target.tolist()) - set(bank.y.tolist()))
    if missing:
        names = ", ".join(model.class_names[c] for c in missing[:3])
        raise ValueError(f"the target-image bank has no image of class {names} that {model.name} classifies as such")
    source_f = features(model, x, index).to(bank.features.device) if rule == targets.FARTHEST else None
    chosen = targets.pick_images(bank.features, bank.y, target, rule, source_f=source_f, seed=seed)
    return target, bank.x[chosen.to(bank.x.device)].to(x.device), chosen


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


def choose_target_images(
    model,
    x: torch.Tensor,
    layer: int | None,
    target=None,
    seed: int = 0,
    extra_images: torch.Tensor | None = None,
    rule: str = targets.FARTHEST,
):
    """(target classes, target images) for AA from the domain's bank by `rule` at `layer` (default: the
    middle of the catalogue, AA's own default). `extra_images` (e.g. a user's uploads, fitted to the
    model) join the bank, labelled by the model's predictions."""
    from engine.attacks.activation import layer_name

    _, (bank_x, bank_y) = evaluation_split(model, 1)
    if extra_images is not None and extra_images.shape[0] > 0:
        extra_images = extra_images.to(bank_x.device)
        with torch.no_grad():
            extra_y = model(extra_images.to(x.device)).argmax(1).to(bank_y.device)
        bank_x, bank_y = torch.cat([bank_x, extra_images]), torch.cat([bank_y, extra_y])
    index = model.layer(layer_name(model, layer)).index
    chosen, goal, _ = target_images(
        model, x, index, (bank_x.to(x.device), bank_y.to(x.device)), target=target, seed=seed, rule=rule
    )
    return chosen, goal


def decide(
    spec,
    model,
    x: torch.Tensor,
    target=None,
    *,
    seed: int = 0,
    layer: int | str | None = None,
    rule: str = targets.FARTHEST,
    extra_images: torch.Tensor | None = None,
) -> tuple[object, dict]:
    """(target, extra attack arguments) for one run of attack `spec`: the one target decision of the app,
    the CLI and the sweeps.

    AA gets a target image by `rule` from the domain's bank (plus `extra_images`) and its class as the
    target; an attack that cannot run untargeted gets its default policy when `target` is None (JSMA:
    the runner-up); otherwise `target` passes through (None: untargeted)."""
    if spec.needs_target_images:
        goal, chosen = choose_target_images(model, x, layer, target, seed, extra_images=extra_images, rule=rule)
        return goal, {"target_images": chosen}
    if target is None and targets.default_policy(spec) is not None:
        target = targets.choose(model, x, targets.default_policy(spec), seed=seed)
    return target, {}
