"""A sweep's grid (attack × white-box × ε × layer × image shard) and the jobs it expands into."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine import attacks, domains, models
from engine.analysis.transfer import METHODS
from engine.models import ModelUnavailable
from engine.sweep import cache

AXES = ("eps", "steps", "layer")  # attack parameters the grid sweeps itself, not via `params`


@dataclass(frozen=True)
class Job:
    """One unit of work: one attack setting on one white-box model and one contiguous image shard.

    All black-box models are scored in the same job because the adversarial images are the
    expensive part and every black-box model needs the same ones.
    """

    attack: str
    white: str
    blacks: tuple[str, ...]
    eps: float | None
    layer: int | None
    steps: int | None
    params: tuple[tuple[str, Any], ...]
    seed: int
    images: int  # size of the whole image set; the shard is [start, stop)
    shard: int
    start: int
    stop: int
    domain: str
    device: str | None = "cpu"
    data: str | None = None  # a folder of the user's labelled images (engine.datasets); None: the domain's own

    @property
    def key(self) -> str:
        """A stable id for `resume`: every field that changes the result (the device does not)."""
        fields = asdict(self)
        fields.pop("device")
        if fields["data"] is None:  # keys of sweeps on built-in images stay those of earlier versions
            fields.pop("data")
        return hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]

    def attack_params(self) -> dict:
        given = {"eps": self.eps, "steps": self.steps, **dict(self.params)}
        return {k: v for k, v in given.items() if v is not None}


@dataclass(frozen=True)
class Grid:
    """A sweep: attack × white-box × ε × layer × image shard, each job scored on every black-box model.

    `attacks` are the transfer methods (aa, tmifgsm, tpgd, itcm: targeted, with one seeded random
    target class per image) or catalogue attacks (fgsm, pgd, deepfool, …: untargeted against the
    true label, unless the attack only has a targeted form). `eps=()` and `steps=None` mean each
    attack's default for the domain (ε = 0.2 on Fashion-MNIST); an attack without ε or steps gets
    one job with none. `layers` only varies attacks with a `layer` parameter (AA; None = the middle
    layer). `params` are further attack parameters, each given to the attacks that declare it.
    Images: the first `images` of the Fashion-MNIST test split (its second half is AA's
    target-image bank, as in `evaluation_split`), or the gallery photos for ImageNet models (at
    most as many as there are), cut into shards of `shard_size`.
    """

    attacks: Sequence[str]
    whites: Sequence[str]
    blacks: Sequence[str]
    eps: Sequence[float] = ()
    layers: Sequence[int | None] = (None,)
    images: int = 200
    shard_size: int = 50
    steps: int | None = None
    seed: int = 0
    params: Mapping[str, Any] = field(default_factory=dict)
    device: str | None = "cpu"
    data: str | None = None  # a folder of labelled images (engine.datasets) instead of the domain's own

    def jobs(self) -> list[Job]:
        """Every job, validated up front so that a typo fails now rather than in every worker."""
        if self.images < 1 or self.shard_size < 1:
            raise ValueError("the number of images and the shard size must be at least 1")
        domain = _grid_domain([*self.whites, *self.blacks])
        capacity = _image_capacity(domain) if self.data is None else _data_capacity(self.data, self.whites)
        count = min(self.images, capacity)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        settings = _attack_settings(self, domain)
        _check_layers(self.whites, {layer for _, _, layers, _, _ in settings for layer in layers} - {None})
        shards = [(i, lo, min(lo + self.shard_size, count)) for i, lo in enumerate(range(0, count, self.shard_size))]
        jobs = []
        for attack, eps_values, layers, steps, params in settings:
            for white in dict.fromkeys(self.whites):
                # A model is no black box to itself: its own transfer rate says nothing.
                blacks = tuple(b for b in dict.fromkeys(self.blacks) if b != white)
                if not blacks:
                    raise ValueError(f"white-box model {white} has no black-box model other than itself")
                for eps in eps_values:
                    for layer in layers:
                        jobs += [
                            Job(
                                attack,
                                white,
                                blacks,
                                eps,
                                layer,
                                steps,
                                params,
                                self.seed,
                                count,
                                shard,
                                lo,
                                hi,
                                domain,
                                self.device,
                                self.data,
                            )
                            for shard, lo, hi in shards
                        ]
        return jobs


def _grid_domain(names: Sequence[str]) -> str:
    """The one domain of every model named (registered, or a user's model file); unknown or unloadable models
    are refused here."""
    known = {row["name"]: row for row in models.available()}
    for name in names:
        if name not in known and not Path(name.partition("=")[2] or name.removeprefix("hf:")).exists():
            raise ValueError(f"unknown model {name!r}; known models: {', '.join(known)}, or a model file")
        if name in known and not known[name]["available"]:
            raise ModelUnavailable(f"{name}: {known[name]['reason']}")
    found = sorted({known[n]["domain"] if n in known else cache.model(n, "cpu")[0].domain for n in names})
    if len(found) != 1:
        raise ValueError(f"a sweep's models must share one domain (they see the same images), got {', '.join(found)}")
    return found[0]


def _check_layers(whites: Sequence[str], layers: set[int]) -> None:
    """Refuse a layer index a white-box model lacks here, not in every worker after its retries."""
    for white in dict.fromkeys(whites) if layers else ():
        model = cache.model(white, "cpu")[0]
        for layer in sorted(layers):
            model.layer(layer)


def _data_capacity(folder: str, whites: Sequence[str]) -> int:
    """The images of a user's folder, once its labels are known to map onto every white-box model."""
    from engine import datasets

    dataset = datasets.open_dataset(folder)
    for white in dict.fromkeys(whites):
        datasets.class_indices(dataset, cache.model(white, "cpu")[0])  # raises, naming the unmapped labels
    return len(dataset)


def _image_capacity(domain: str) -> int:
    return domains.get(domain).capacity()


def _attack_settings(grid: Grid, domain: str) -> list[tuple]:
    """Per attack: (name, ε values, layers, steps, other params), range-checked against its spec."""
    if not grid.attacks or not grid.whites or not grid.blacks:
        raise ValueError("a sweep needs at least one attack, one white-box and one black-box model")
    misplaced = sorted(set(grid.params) & {*AXES, "target_images"})
    if misplaced:
        raise ValueError(f"{misplaced[0]!r} is a sweep axis, not an extra parameter")
    used, out = set(), []
    for attack in dict.fromkeys(grid.attacks):
        name, fixed = METHODS.get(attack, (attack, {}))
        # A transfer method's fixed parameters (TMIFGSM's μ = 1) are part of its definition: not sweepable.
        spec = attacks.get(name)
        declared = {p.name: p for p in spec.params if p.name not in fixed}
        defaults = {p["name"]: p["default"] for p in spec.describe(domains.get(domain).attack_defaults)["params"]}
        eps_values = [None]
        if "eps" in declared:
            eps_values = [declared["eps"].check(e) for e in grid.eps] or [defaults["eps"]]
        layers = [None]
        if "layer" in declared:
            layers = [None if layer is None else declared["layer"].check(layer) for layer in grid.layers] or [None]
        steps = None
        if "steps" in declared:
            steps = declared["steps"].check(grid.steps) if grid.steps is not None else defaults["steps"]
        own = {k: declared[k].check(v) for k, v in grid.params.items() if k in declared}
        used |= set(own)
        out.append(
            (attack, list(dict.fromkeys(eps_values)), list(dict.fromkeys(layers)), steps, tuple(sorted(own.items())))
        )
    unused = sorted(set(grid.params) - used)
    if unused:
        raise ValueError(f"{unused[0]!r} is not a parameter of {', '.join(grid.attacks)}")
    return out
