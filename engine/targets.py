"""The target policy: which class a targeted attack aims at, and AA's target image.

- an explicit class (an index, or one per image);
- the runner-up: each image's second most likely class (the nearest wrong class);
- a seeded random class ≠ the label, drawn among the classes the bank can show;
- AA's target image: from a bank of images the model classifies as their label,
  one of the target class chosen by an image rule at a layer: the one farthest
  from the source (the paper's), the one nearest the class mean, or a seeded
  random one (`IMAGE_RULES`, `pick_images`).

With no target given, an attack that has an untargeted form runs untargeted; one
that needs a target gets the runner-up, and AA (which needs target images too) a
random class the bank has. Transfer experiments draw random classes explicitly.
The app, the CLI, transfer, sweeps and averaging all ask here.
"""

from __future__ import annotations

import torch

RUNNER_UP = "runner-up"
RANDOM = "random"
POLICIES = (RUNNER_UP, RANDOM)

# AA's target-image rules: which bank image of the target class stands for it.
FARTHEST = "farthest"  # farthest from the source at the layer: Inkawhich et al.'s rule, the default
NEAREST_MEAN = "nearest-mean"  # nearest the class's mean activation: its most typical member at the layer
IN_CLASS_RANDOM = "random"  # a seeded random member: the control for the other two
IMAGE_RULES = (FARTHEST, NEAREST_MEAN, IN_CLASS_RANDOM)
_IMAGE_STREAM = 7919


def runner_up(model, x: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """Per image, the most likely class other than `exclude` (default: the model's own top-1)."""
    with torch.no_grad():
        logits = model(x)
    exclude = logits.argmax(1) if exclude is None else torch.as_tensor(exclude, device=logits.device)
    return logits.scatter(1, exclude.reshape(-1, 1).expand(logits.shape[0], 1), float("-inf")).argmax(1)


class NoTargetClass(ValueError):
    """Every class the bank can show is the image's own: no target class is left (AA's bank holds only images the
    model classifies correctly, so a model that gets one class right leaves none)."""

    def __init__(self, classes: list[int]):
        self.classes = classes
        super().__init__(
            f"no target class: the images the model classifies correctly are all of class "
            f"{', '.join(map(str, classes)) or 'none'}, and a target must be another class; give more "
            "labelled images, or a model that classifies more of them"
        )


def random_classes(
    y: torch.Tensor, num_classes: int, seed: int = 0, allowed: torch.Tensor | None = None
) -> torch.Tensor:
    """A uniformly random class ≠ y per example (among `allowed`, default all), from a seeded generator."""
    allowed = torch.arange(num_classes) if allowed is None else torch.unique(allowed.cpu())
    gen = torch.Generator().manual_seed(seed)
    scores = torch.rand(y.shape[0], allowed.numel(), generator=gen)
    scores = scores.masked_fill(allowed[None, :] == y.cpu()[:, None], -1.0)
    if bool((scores.max(1).values < 0).any()):
        raise NoTargetClass(allowed.tolist())
    return allowed[scores.argmax(1)].to(y.device)


def bank(model, x: torch.Tensor, y: torch.Tensor, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """The images of (x, y) that `model` classifies as their label: only those may stand for a class."""
    with torch.no_grad():
        pred = torch.cat(
            [model(x[lo : lo + batch].to(model.device)).argmax(1).cpu() for lo in range(0, x.shape[0], batch)]
        )
    keep = pred == y.cpu()
    return x[keep.to(x.device)], y[keep.to(y.device)]


def every_other(y: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, target) for every example and every class ≠ its own, example by example: the JSMA
    paper's setting of crafting each image towards each other class."""
    classes = torch.arange(num_classes, device=y.device)
    keep = classes[None, :] != y[:, None]
    rows = torch.arange(y.shape[0], device=y.device)[:, None].expand_as(keep)
    return rows[keep], classes[None, :].expand_as(keep)[keep]


def pick_images(
    bank_f: torch.Tensor,
    bank_y: torch.Tensor,
    target: torch.Tensor,
    rule: str = FARTHEST,
    *,
    source_f: torch.Tensor | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Per target in `target`, the bank index of its target image under `rule`, among the bank's images of
    that class. `bank_f` (B × F) are the bank's activations at the layer, `source_f` (N × F) the sources'
    (FARTHEST needs them). The bank must hold only images the model classifies as their label (`bank`;
    `engine.analysis.target_images.target_bank` ensures it)."""
    if rule not in IMAGE_RULES:
        raise ValueError(f"unknown target-image rule {rule!r}; choose one of {', '.join(IMAGE_RULES)}")
    device = bank_f.device
    bank_y, target = bank_y.to(device), target.to(device)
    other = bank_y[None, :] != target[:, None]  # N × B: not of that source's target class
    if rule == FARTHEST:
        if source_f is None:
            raise ValueError("the farthest-in-class rule needs the sources' activations")
        score = torch.cdist(source_f.to(device), bank_f)
    elif rule == NEAREST_MEAN:
        gap = torch.zeros(bank_y.shape[0], device=device)
        for c in target.unique().tolist():
            members = bank_y == c
            gap[members] = (bank_f[members] - bank_f[members].mean(0)).norm(dim=1)
        score = -gap.expand(target.shape[0], -1)  # the same for every source aiming at a class
    else:
        # A stream apart from the target-class draw's (random_classes uses `seed` itself).
        score = torch.rand(other.shape, generator=torch.Generator().manual_seed(seed + _IMAGE_STREAM)).to(device)
    return score.masked_fill(other, float("-inf")).argmax(1)


def first_per_class(x: torch.Tensor, y: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `count` images of each class of (x, y), in their order: a bank of the paper's size
    (100 per class on CIFAR-10) from a larger one."""
    if count < 1:
        raise ValueError(f"a bank needs at least 1 image per class (got {count})")
    cpu = y.cpu()
    rank = torch.zeros_like(cpu)
    for c in cpu.unique():
        members = cpu == c
        rank[members] = torch.arange(int(members.sum()))
    keep = rank < count
    return x[keep.to(x.device)], y[keep.to(y.device)]


def choose(
    model, x: torch.Tensor, policy, *, y: torch.Tensor | None = None, seed: int = 0, allowed: torch.Tensor | None = None
) -> torch.Tensor:
    """Target classes for `x` under `policy`: an int or tensor (explicit), RUNNER_UP or RANDOM.

    `y` are the source classes (default: the model's predictions); `allowed` limits random draws
    (e.g. to the classes a target-image bank holds)."""
    if y is None:
        with torch.no_grad():
            y = model(x).argmax(1)
    if isinstance(policy, str):
        if policy == RUNNER_UP:
            return runner_up(model, x, exclude=y)
        if policy == RANDOM:
            return random_classes(y, model.num_classes, seed, allowed=allowed)
        raise ValueError(f"unknown target policy {policy!r}; choose a class or one of {', '.join(POLICIES)}")
    target = torch.as_tensor(policy, device=y.device).long().reshape(-1)
    if target.numel() not in (1, y.shape[0]):
        raise ValueError(f"{target.numel()} targets for {y.shape[0]} images")
    return target.expand(y.shape[0]).clone()


def default_policy(spec) -> str | None:
    """What an attack aims at when no target is given: None (untargeted) where it can run untargeted."""
    if spec.untargeted:
        return None
    return RANDOM if spec.needs_target_images else RUNNER_UP
