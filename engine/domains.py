"""Domains: what a family of models sees, in one record each.

A domain holds its class names, image shape and normalisation, its default
budgets, how its built-in images are named and loaded, the labelled images its
analyses run on and the target-image bank drawn from them, how object masks
are made, and which of its models are sources and which are held-out judges.
Models carry their domain's name (`model.domain`); `of(model)` gives the record.
A model from elsewhere (a user's own) gets a record built from its own metadata:
no built-in images, so analyses need the user's labelled data (`--data`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import torch

ASSETS = Path(__file__).resolve().parent.parent / "assets"
GALLERY_LABELS = ASSETS / "images" / "labels.json"


@dataclass(frozen=True)
class Domain:
    name: str
    title: str
    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    # Attack parameters that differ from the attacks' own defaults (small grey images need a larger ε).
    attack_defaults: dict = field(default_factory=dict)
    # The averaging analyses' budget ε, Gaussian copies and σ, and the display peak of targeted perturbations.
    averaging: dict = field(default_factory=dict)
    # Per analysis, the settings the app and the CLI start from (each finishes in seconds on two cores).
    defaults: dict = field(default_factory=dict)
    sources: tuple[str, ...] = ()  # models whose perturbations are averaged
    judges: tuple[str, ...] = ()  # held-out models that judge them (the default black-box models)
    # (plain model, its adversarially trained twin): same architecture and seed, robust training only.
    twins: tuple[tuple[str, str], ...] = ()
    indexed: bool = False  # built-in images are numbered ("<prefix><i>") rather than named photos
    prefix: str = ""
    # ((images, labels), (bank images, bank labels)) of up to n built-in images; None: the domain has none.
    split: Callable[[int], tuple] | None = None
    capacity: Callable[[], int] = lambda: 0  # the most evaluation images a multi-image analysis can take
    count: Callable[[], int] = lambda: 0  # built-in images one can pick (an indexed domain's whole test split)
    mask_threshold: float | None = None  # object masks by thresholding the image (dark background)
    numbered: Callable[[], tuple] | None = None  # an indexed domain's (images, labels) that "<prefix><i>" picks from
    wnids: bool = False  # its classes are the 1000 ILSVRC-2012 synsets: dataset labels may be WordNet ids
    names: Callable[[], list[str]] | None = None  # class names, index order (None: each model's own)

    @property
    def class_names(self) -> list[str]:
        if self.names is None:
            raise ValueError(f"{self.title} has no class list of its own; its models name their classes")
        return list(self.names())

    def twin(self, model_name: str) -> str | None:
        """The other half of a plain/robust pair: a plain model's robust twin or a robust model's plain one."""
        for plain, robust in self.twins:
            if model_name in (plain, robust):
                return robust if model_name == plain else plain
        return None

    def is_robust(self, model_name: str) -> bool:
        return any(model_name == robust for _, robust in self.twins)

    def image_keys(self) -> list[str]:
        """Names of the built-in images, in order (indexed domains: the evaluation images)."""
        if self.indexed:
            return [f"{self.prefix}{i}" for i in range(self.capacity())]
        from engine import images

        return list(images.gallery())

    def parse_key(self, key: str) -> int | str | None:
        """The index (indexed domains) or photo name of a built-in image key, None if it is not one."""
        if self.indexed:
            rest = key[len(self.prefix):] if key.startswith(self.prefix) else key
            if rest.isdigit() and int(rest) < self.count():
                return int(rest)
            return None
        from engine import images

        return key if key in images.gallery() else None

    def load(self, key: str, model) -> torch.Tensor:
        """A built-in image by key (a photo name, "<prefix><i>" or "<i>"), fitted to `model`."""
        found = self.parse_key(key)
        if found is None:
            raise ValueError(self.unknown_key(key))
        if self.indexed:
            return self.numbered()[0][found:found + 1].clone().to(model.device)
        from engine import images

        return images.load(images.gallery()[found], model)

    def label(self, key: str) -> int:
        found = self.parse_key(key)
        if found is None:
            raise ValueError(self.unknown_key(key))
        return int(self.numbered()[1][found]) if self.indexed else gallery_labels()[found]

    def unknown_key(self, key: str) -> str:
        if self.split is None:
            return f"{key[:40]!r}: {self.title} has no built-in images; give an image file"
        if self.indexed:
            return f"image {key[:40]!r}: {self.title} images are numbered 0–{self.count() - 1} (e.g. {self.prefix}17)"
        if key.isdigit():
            numbered = ", ".join(d.title for d in _builtin().values() if d.indexed)
            return f"image {key!r}: a number picks a test image of a numbered domain ({numbered}); give a file path instead"
        return f"{key[:40]!r} is neither a gallery photo ({', '.join(self.image_keys()[:5])}, …) nor an image file"

    def evaluation_split(self, model, n: int):
        if self.split is None:
            raise ValueError(f"{model.name} ({self.title}) has no built-in images: give labelled images (--data DIR)")
        return self.split(model, n)

    def object_masks(self, model, x: torch.Tensor, keys: list[str] | None = None, threshold: float | None = None):
        """One mask per image: thresholded (dark-background domains), else the committed mask of a
        gallery photo, else GrabCut from a centred box."""
        from engine.analysis import masking

        if self.mask_threshold is not None:
            return masking.threshold_mask(x, self.mask_threshold if threshold is None else threshold)
        keys = keys or [None] * x.shape[0]
        committed = set(self.image_keys()) if self.split is not None else set()
        return torch.stack([masking.gallery_mask(k, model) if k in committed else masking.grabcut_mask(x[i])
                            for i, k in enumerate(keys)])


FASHION_MNIST_NAME = "fashion-mnist"
IMAGENET_NAME = "imagenet"


def _fmnist_split(model, n: int):
    """The first n test images, and the second half of the test split as the (disjoint) target-image bank."""
    from engine import data

    x, y = data.test_split()
    half = x.shape[0] // 2
    if not 1 <= n <= half:
        raise ValueError(f"the number of images must be between 1 and {half}")
    return (x[:n], y[:n]), (x[half:], y[half:])


@lru_cache(maxsize=1)
def gallery_labels() -> dict[str, int]:
    """Photo name → the ImageNet class the three Lite models agree on (assets/images/labels.json)."""
    table = json.loads(GALLERY_LABELS.read_text())
    return {Path(file).stem: int(row["imagenet_index"]) for file, row in table.items()}


def _gallery_split(model, n: int):
    """The first n gallery photos with their recorded labels; the bank is the whole gallery."""
    from engine import images

    photos = images.gallery()
    if not 1 <= n <= len(photos):
        raise ValueError(f"the number of images must be between 1 and {len(photos)} (the gallery's photos)")
    x = _fitted_gallery(tuple(model.input_size), getattr(model, "resize_size", None), tuple(photos))
    labels = gallery_labels()
    y = torch.tensor([labels[name] for name in photos])
    return (x[:n], y[:n]), (x, y)


@lru_cache(maxsize=4)
def _fitted_gallery(input_size: tuple, resize: int | None, names: tuple[str, ...]) -> torch.Tensor:
    """Every gallery photo fitted to one input geometry, decoded once (read-only: callers never write into it)."""
    from engine import images

    photos = images.gallery()
    c, size, _ = input_size
    return torch.cat([images.to_tensor(images.fit(images.decode(photos[name]), c, size, resize)) for name in names])


def _imagenet_names() -> list[str]:
    from engine.models.efficientnet_lite import _IMAGENET_CATEGORIES

    return _IMAGENET_CATEGORIES


def _gallery_size() -> int:
    from engine import images

    return len(images.gallery())


def _zoo_role(role: str, first: str) -> tuple[str, ...]:
    from engine.zoo import manifest

    named = [name for name, entry in manifest.read().items() if entry["role"] == role]
    return tuple(sorted(named, key=lambda n: (n != first, n)))


def _zoo_twins() -> tuple[tuple[str, str], ...]:
    from engine.zoo import manifest

    return tuple(sorted((entry["adversarial_training"]["twin"], name) for name, entry in manifest.read().items()
                        if "adversarial_training" in entry))


def _fmnist() -> Domain:
    from engine import data

    return Domain(
        FASHION_MNIST_NAME, "Fashion-MNIST", data.INPUT_SIZE, (data.MEAN,), (data.STD,),
        attack_defaults={"eps": 0.2},
        averaging={"eps": 0.2, "copies": 20, "sigma": 0.2, "peak": 1.0},
        defaults={"images": 50, "anatomy": {"copies": 20, "sigma": 0.2, "eps": 0.2, "steps": 20}, "transfer": {"steps": 10, "eps": (0.03, 0.07, 0.1)}, "features": {"images": 300, "eps": 0.2},
                  "jsma": {"upsilon": 0.145, "pairs": 1}, "checkerboard_copies": 256, "noise_count": 512,
                  # DeepFool stops at the boundary: six sources × 4 copies stay cheap where BIM's fixed steps do not.
                  "quiz": {"questions": 20, "choices": 10, "attack": "deepfool", "params": {"steps": 10},
                           "copies": 4, "sigma": 0.2},
                  # Patch vs heat-map centre: side and reach as shares of the image side (engine.analysis.patch_distance).
                  "patch": {"images": 100, "size": 0.25, "amplitude": 0.5, "reach": 0.5, "distances": 8, "directions": 8}},
        # The zoo's card says which model is which (assets/models/zoo.json "role"); ResNet first: the
        # thesis' single-model setting.
        sources=_zoo_role("source", first="fmnist-resnet-0"), judges=_zoo_role("test", first="fmnist-resnet-1"),
        twins=_zoo_twins(),
        # Sizes and single images come from the cached split: a copy of all 10,000 per lookup is 31 MB.
        indexed=True, prefix="fmnist:", split=_fmnist_split, numbered=data.test_view, names=lambda: data.CLASS_NAMES,
        capacity=lambda: data.test_view()[1].shape[0] // 2, count=lambda: data.test_view()[1].shape[0],
        mask_threshold=0.05,
    )


def _imagenet() -> Domain:
    return Domain(
        IMAGENET_NAME, "ImageNet photos", (3, 224, 224), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
        averaging={"eps": 0.02, "copies": 10, "sigma": 0.05, "peak": 0.5},
        defaults={"images": 8, "anatomy": {"copies": 4, "sigma": 0.05, "eps": 0.02, "steps": 10}, "transfer": {"steps": 5, "eps": (0.03,)}, "features": {"images": 36, "eps": 0.03},
                  "jsma": {"upsilon": 0.02, "pairs": 64}, "checkerboard_copies": 16, "noise_count": 128,
                  # The thesis' human test: noisy multi-model BIM, 20 choices; α = 2ε/K.
                  "quiz": {"questions": 8, "choices": 20, "attack": "bim",
                           "params": {"eps": 0.02, "steps": 10, "alpha": 0.004}, "copies": 4, "sigma": 0.05},
                  "patch": {"images": 4, "size": 1 / 7, "amplitude": 0.5, "reach": 0.5, "distances": 8, "directions": 8}},
        sources=("efficientnet-lite0",), judges=("efficientnet-lite1", "efficientnet-lite2"),
        split=_gallery_split, capacity=_gallery_size, count=_gallery_size, wnids=True, names=_imagenet_names,
    )


@lru_cache(maxsize=None)
def _builtin() -> dict[str, Domain]:
    return {d.name: d for d in (_fmnist(), _imagenet())}


def names() -> list[str]:
    return list(_builtin())


def get(name: str) -> Domain:
    try:
        return _builtin()[name]
    except KeyError:
        raise ValueError(f"unknown domain {name!r}; known: {', '.join(_builtin())}") from None


def of(model) -> Domain:
    """The domain record of a model: a built-in one by name, else one made from the model's own metadata."""
    name = getattr(model, "domain", "")
    if name in _builtin():
        return _builtin()[name]
    mean = tuple(float(v) for v in model.mean.flatten()) if hasattr(model, "mean") else (0.5,) * model.input_size[0]
    std = tuple(float(v) for v in model.std.flatten()) if hasattr(model, "std") else (0.5,) * model.input_size[0]
    return Domain(name or "custom", name or "custom", tuple(model.input_size), mean, std,
                  averaging=dict(_builtin()[IMAGENET_NAME].averaging), defaults=dict(_builtin()[IMAGENET_NAME].defaults))


def owner(key: str) -> Domain | None:
    """The built-in domain one of whose images `key` names ("fmnist:17", "chelsea"), if any."""
    for d in _builtin().values():
        if (key.startswith(d.prefix) if d.indexed else True) and d.parse_key(key) is not None:
            return d
    return None


def canonical(key: str) -> str:
    """A built-in image key as links and caches write it ("fmnist:017" → "fmnist:17")."""
    d = owner(key)
    if d is None:
        raise ValueError(f"{key[:40]!r} names no built-in image")
    return f"{d.prefix}{d.parse_key(key)}" if d.indexed else key


def attack_defaults(name: str) -> dict:
    return _builtin()[name].attack_defaults if name in _builtin() else {}


def stats(domain: "str | Domain", device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of a domain's training images (a built-in one by name, or a record such as
    `of(model)` gives for a user's model), as 1×C×1×1 tensors."""
    d = domain if isinstance(domain, Domain) else get(domain)
    shape = (1, len(d.mean), 1, 1)
    return torch.tensor(d.mean, device=device).view(shape), torch.tensor(d.std, device=device).view(shape)
