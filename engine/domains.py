"""Domains: what a family of models sees, in one record each.

A domain holds its class names, image shape and normalisation, its default
budgets, how its built-in images are named and loaded, the labelled images its
analyses run on and the target-image bank drawn from them, how object masks
are made, and which of its models are sources and which are held-out judges.
Models carry their domain's name (`model.domain`); `of(model)` gives the record.
A user's own model gets a record of its own at load time (`adopt`): its classes, shape
and statistics, and defaults derived from its input size. Its images are the labelled
images the user brings (`with_images`: an uploaded zip or a folder), which then serve as
its evaluation split and target-image bank; masks are the dataset's own, else GrabCut.

This module imports nothing of the engine at import time (attacks never import it; the
models read their domain's attack defaults through `Classifier.attack_defaults`).
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

ASSETS = Path(__file__).resolve().parent.parent / "assets"
GALLERY_LABELS = ASSETS / "images" / "labels.json"


class NeedsImages(ValueError):
    """An analysis needs labelled images and the domain has none yet (a user's model without their images)."""


@dataclass(frozen=True)
class Domain:
    name: str
    title: str
    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    # Attack parameters that differ from the attacks' own defaults (small grey images need a larger ε).
    attack_defaults: dict = field(default_factory=dict)
    # The averaging analyses' budget ε, Gaussian copies and σ, the display peak of targeted perturbations, and the
    # classes a judge of recognisability chooses among (the true one and choices − 1 drawn; the thesis' 20).
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
    # A user's images: one fitted image by index, and every label (an indexed domain without `numbered`).
    fetch: Callable[[int, object], torch.Tensor] | None = None
    labels: Callable[[], torch.Tensor] | None = None
    mask_file: Callable[[int], object] | None = None  # the dataset's own mask of image i (masks/<file>), or None
    custom: bool = False  # made from what a user brought (a model's metadata, their images)
    origin: str = ""  # where the defaults come from, shown beside them ("3×32×32 colour images")

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
            rest = key[len(self.prefix) :] if key.startswith(self.prefix) else key
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
        if self.fetch is not None:
            return self.fetch(found, model)
        if self.indexed:
            return self.numbered()[0][found : found + 1].clone().to(model.device)
        from engine import images

        return images.load(images.gallery()[found], model)

    def label(self, key: str) -> int:
        found = self.parse_key(key)
        if found is None:
            raise ValueError(self.unknown_key(key))
        if self.labels is not None:
            return int(self.labels()[found])
        return int(self.numbered()[1][found]) if self.indexed else gallery_labels()[found]

    def class_labels(self) -> torch.Tensor:
        """The label of every image one can pick (indexed domains)."""
        return self.labels() if self.labels is not None else self.numbered()[1]

    @property
    def has_images(self) -> bool:
        return self.split is not None

    def with_images(self, source: str, *, count: int, split, fetch, labels, mask_file=None) -> Domain:
        """This record with a user's labelled images (key prefix "<source>#"), as its evaluation split and bank."""
        return dataclasses.replace(
            self,
            indexed=True,
            prefix=f"{source}#",
            split=split,
            capacity=lambda: count,
            count=lambda: count,
            fetch=fetch,
            labels=labels,
            numbered=None,
            mask_file=mask_file,
        )

    def unknown_key(self, key: str) -> str:
        if self.split is None:
            return f"{key[:40]!r}: {self.title} has no images of its own yet; give an image file or labelled images"
        if self.custom:
            return f"image {key[:40]!r}: {self.title}'s images are numbered 0–{self.count() - 1} ({self.prefix}0)"
        if self.indexed:
            return f"image {key[:40]!r}: {self.title} images are numbered 0–{self.count() - 1} (e.g. {self.prefix}17)"
        if key.isdigit():
            numbered = ", ".join(d.title for d in _builtin().values() if d.indexed)
            return (
                f"image {key!r}: a number picks a test image of a numbered domain ({numbered}); "
                "give a file path instead"
            )
        return f"{key[:40]!r} is neither a gallery photo ({', '.join(self.image_keys()[:5])}, …) nor an image file"

    def evaluation_split(self, model, n: int):
        if self.split is None:
            raise NeedsImages(
                f"{model.name} ({self.title}) has no images of its own: this needs labelled images "
                f"of its {len(model.class_names)} classes"
            )
        return self.split(model, n)

    def object_masks(self, model, x: torch.Tensor, keys: list[str] | None = None, threshold: float | None = None):
        """One mask per image: thresholded (dark-background domains), else the committed mask of a
        gallery photo or the user's own (`masks/<file>` in their dataset), else GrabCut from a centred box."""
        import torch

        from engine import masks

        if self.mask_threshold is not None:
            return masks.threshold_mask(x, self.mask_threshold if threshold is None else threshold)
        keys = keys or [None] * x.shape[0]
        found = [self.stored_mask(k, model) for k in keys]
        return torch.stack([m if m is not None else masks.grabcut_mask(x[i]) for i, m in enumerate(found)])

    def stored_mask(self, key: str | None, model):
        """The stored mask of a built-in or user image `key`, None where there is none (GrabCut then)."""
        from engine import masks

        found = None if key is None or self.split is None else self.parse_key(key)
        if found is None:
            return None
        if self.mask_file is not None:
            source = self.mask_file(found)
            return None if source is None else masks.from_file(source, model)
        return None if self.indexed or self.custom else masks.gallery_mask(found, model)


FASHION_MNIST_NAME = "fashion-mnist"
IMAGENET_NAME = "imagenet"


def _fmnist_split(model, n: int):
    """The first n test images, and the second half of the test split as the (disjoint) target-image bank."""
    from engine.datasets import fashion_mnist

    x, y = fashion_mnist.test_split()
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
    import torch

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
    import torch

    from engine import images

    photos = images.gallery()
    c, size, _ = input_size
    return torch.cat([images.to_tensor(images.fit(images.decode(photos[name]), c, size, resize)) for name in names])


def _imagenet_names() -> list[str]:
    from engine.datasets.imagenet import class_names

    return list(class_names())


def _gallery_size() -> int:
    from engine import images

    return len(images.gallery())


def _zoo_role(role: str, first: str) -> tuple[str, ...]:
    from engine.zoo import manifest

    named = [name for name, entry in manifest.read().items() if entry["role"] == role]
    return tuple(sorted(named, key=lambda n: (n != first, n)))


def _zoo_twins() -> tuple[tuple[str, str], ...]:
    from engine.zoo import manifest

    return tuple(
        sorted(
            (entry["adversarial_training"]["twin"], name)
            for name, entry in manifest.read().items()
            if "adversarial_training" in entry
        )
    )


def _fmnist_settings() -> dict:
    """Fashion-MNIST's budgets and page defaults (also those of a user's small grey images)."""
    return dict(
        attack_defaults={"eps": 0.2},
        averaging={"eps": 0.2, "copies": 20, "sigma": 0.2, "peak": 1.0, "choices": 10},
        defaults={
            "images": 50,
            "anatomy": {"copies": 20, "sigma": 0.2, "eps": 0.2, "steps": 20},
            "transfer": {"steps": 10, "eps": (0.03, 0.07, 0.1)},
            "features": {"images": 300, "eps": 0.2},
            # The paper's setting (ten classes, β over every other class); the curve's Υ runs to 0.3.
            "jsma": {
                "upsilon": 0.145,
                "pairs": 1,
                "against": "all",
                "curve_max": 0.3,
                "curve_target": "chosen",
                "images": 20,
            },
            "checkerboard_copies": 256,
            "noise_count": 512,
            # PGD accuracy of plain and adversarially trained models (the zoo card's 1,000 test images).
            "robust": {"images": 1000, "steps": 20},
            # DeepFool stops at the boundary: six sources × 4 copies stay cheap where BIM's fixed steps do not.
            "quiz": {
                "questions": 20,
                "choices": 10,
                "attack": "deepfool",
                "params": {"steps": 10},
                "copies": 4,
                "sigma": 0.2,
            },
            # Patch vs heat-map centre: side and reach as shares of the image side (engine.analysis.patch_distance).
            "patch": {"images": 100, "size": 0.25, "amplitude": 0.5, "reach": 0.5, "distances": 8, "directions": 8},
            # The Sweep results page's example: a few seconds here, error rising with ε.
            "sweep": {"attacks": ("fgsm", "pgd"), "eps": (0.05, 0.1, 0.2, 0.3), "images": 50},
            # Universal δ: fitted on the first images, judged on the next; minibatches of 8 DeepFool steps
            # take seconds where the paper's one-by-one loop takes half a minute on two cores.
            "universal": {"fit": 128, "held_out": 512, "params": {"eps": 0.2, "max_iter": 5, "steps": 10, "batch": 8}},
        },
    )


def _imagenet_settings() -> dict:
    """The photos' budgets and page defaults (also those of a user's larger images)."""
    return dict(
        attack_defaults={},
        averaging={"eps": 0.02, "copies": 10, "sigma": 0.05, "peak": 0.5, "choices": 20},
        defaults={
            "images": 8,
            "anatomy": {"copies": 4, "sigma": 0.05, "eps": 0.02, "steps": 10},
            # At ε 0.03 no targeted attack makes another photo model say its target; at 0.1 some do.
            "transfer": {"steps": 5, "eps": (0.03, 0.1)},
            "features": {"images": 36, "eps": 0.03},
            # Against all 999 other classes JSMA misses even the runner-up (engine.analysis.jsma_extras.
            # Rival); the curve's photos aim at their own runner-up, within Υ 2 % (seconds for 8 photos).
            "jsma": {"upsilon": 0.02, "pairs": 64, "against": "rival", "curve_max": 0.02, "curve_target": "runner-up"},
            "checkerboard_copies": 16,
            "noise_count": 128,
            "robust": {"images": 8, "steps": 10},
            # The thesis' human test: noisy multi-model BIM, 20 choices; α = 2ε/K.
            "quiz": {
                "questions": 8,
                "choices": 20,
                "attack": "bim",
                "params": {"eps": 0.02, "steps": 10, "alpha": 0.004},
                "copies": 4,
                "sigma": 0.05,
            },
            "patch": {"images": 4, "size": 1 / 7, "amplitude": 0.5, "reach": 0.5, "distances": 8, "directions": 8},
            # FGSM makes every ε from one gradient: the only attack whose whole grid takes seconds on photos.
            "sweep": {"attacks": ("fgsm",), "eps": (0.003, 0.01, 0.03, 0.1), "images": 8},
            # Query budgets of the Transfer lab's direct attack: each query is a forward of a photo model, so the
            # attacks' own defaults (1,000 and 5,000) take minutes here; these take about half a minute.
            "direct": {"hopskipjump": 200, "boundary": 400},
            # The gallery holds 36 photos: a third to fit on, the rest held out. DeepFool's per-class gradients
            # take minutes on a photo model; 3-step PGD (ε 0.04, about the paper's 10/255) takes seconds.
            "universal": {
                "fit": 12,
                "held_out": 24,
                "params": {"eps": 0.04, "max_iter": 3, "inner": "pgd", "steps": 3, "batch": 4},
            },
        },
    )


def _fmnist() -> Domain:
    from engine.datasets import fashion_mnist

    return Domain(
        FASHION_MNIST_NAME,
        "Fashion-MNIST",
        fashion_mnist.INPUT_SIZE,
        (fashion_mnist.MEAN,),
        (fashion_mnist.STD,),
        **_fmnist_settings(),
        # The zoo's card says which model is which (assets/models/zoo.json "role"); ResNet first: the
        # thesis' single-model setting.
        sources=_zoo_role("source", first="fmnist-resnet-0"),
        judges=_zoo_role("test", first="fmnist-resnet-1"),
        twins=_zoo_twins(),
        # Sizes and single images come from the cached split: a copy of all 10,000 per lookup is 31 MB.
        indexed=True,
        prefix="fmnist:",
        split=_fmnist_split,
        numbered=fashion_mnist.test_view,
        names=lambda: fashion_mnist.CLASS_NAMES,
        capacity=lambda: fashion_mnist.test_view()[1].shape[0] // 2,
        count=lambda: fashion_mnist.test_view()[1].shape[0],
        mask_threshold=0.05,
    )


def _imagenet() -> Domain:
    return Domain(
        IMAGENET_NAME,
        "ImageNet photos",
        (3, 224, 224),
        (0.485, 0.456, 0.406),
        (0.229, 0.224, 0.225),
        **_imagenet_settings(),
        sources=("efficientnet-lite0",),
        judges=("efficientnet-lite1", "efficientnet-lite2"),
        split=_gallery_split,
        capacity=_gallery_size,
        count=_gallery_size,
        wnids=True,
        names=_imagenet_names,
    )


@cache
def _builtin() -> dict[str, Domain]:
    return {d.name: d for d in (_fmnist(), _imagenet())}


# Records made at load time for users' models, by name; shared by the app's sessions, so they hold no images
# (a session's images are attached to its own models' records with `with_images`).
_CUSTOM: dict[str, Domain] = {}
_CUSTOM_LOCK = threading.Lock()
_MAX_CUSTOM = 256


def names() -> list[str]:
    """The built-in domains' names (users' records are made as their models load)."""
    return list(_builtin())


def get(name: str) -> Domain:
    if name in _builtin():
        return _builtin()[name]
    with _CUSTOM_LOCK:
        if name in _CUSTOM:
            return _CUSTOM[name]
    raise ValueError(f"unknown domain {name!r}; known: {', '.join(_builtin())}")


def derived_defaults(input_size: tuple[int, int, int]) -> tuple[dict, dict, dict, str]:
    """(attack defaults, averaging budgets, page defaults, what they were chosen for) of a user's domain,
    from its input alone: small grey images take Fashion-MNIST's, small colour images CIFAR-style budgets
    (ε = 8/255), larger ones the ImageNet photos'."""
    c, h, w = input_size
    if h <= 64 and w <= 64 and c == 1:
        d = _fmnist_settings()
        return d["attack_defaults"], d["averaging"], d["defaults"], f"{h}×{w} grey images (as Fashion-MNIST)"
    if h <= 64 and w <= 64:
        eps = 0.03
        defaults = {
            "images": 40,
            "anatomy": {"copies": 10, "sigma": 0.1, "eps": eps, "steps": 10},
            "transfer": {"steps": 10, "eps": (0.01, 0.03, 0.05)},
            "features": {"images": 200, "eps": eps},
            "jsma": {"upsilon": 0.1, "pairs": 4, "against": "all", "curve_max": 0.3, "curve_target": "chosen"},
            "checkerboard_copies": 64,
            "noise_count": 256,
            "quiz": {
                "questions": 10,
                "choices": 10,
                "attack": "bim",
                "params": {"eps": eps, "steps": 10, "alpha": 2 * eps / 10},
                "copies": 4,
                "sigma": 0.1,
            },
            "patch": {"images": 40, "size": 0.25, "amplitude": 0.5, "reach": 0.5, "distances": 8, "directions": 8},
            "universal": {"fit": 64, "held_out": 256, "params": {"eps": eps, "max_iter": 5, "steps": 10, "batch": 8}},
        }
        return (
            {"eps": eps},
            {"eps": eps, "copies": 10, "sigma": 0.1, "peak": 0.5, "choices": 10},
            defaults,
            f"{c}×{h}×{w} colour images (ε = 8/255, as on CIFAR-10)",
        )
    d = _imagenet_settings()
    return d["attack_defaults"], d["averaging"], d["defaults"], f"{c}×{h}×{w} photos (as the ImageNet photos)"


def _record(name: str, model) -> Domain:
    input_size = tuple(int(v) for v in model.input_size)
    mean = tuple(float(v) for v in model.mean.flatten()) if hasattr(model, "mean") else (0.5,) * input_size[0]
    std = tuple(float(v) for v in model.std.flatten()) if hasattr(model, "std") else (0.5,) * input_size[0]
    classes = tuple(model.class_names)
    attack, averaging, defaults, origin = derived_defaults(input_size)
    return Domain(
        name,
        name,
        input_size,
        mean,
        std,
        attack_defaults=attack,
        averaging=averaging,
        defaults=defaults,
        names=lambda: list(classes),
        custom=True,
        origin=origin,
    )


def _same_world(record: Domain, model) -> bool:
    return list(record.class_names) == list(model.class_names) and record.input_size[0] == model.input_size[0]


def adopt(model, name: str | None = None) -> Domain:
    """The domain record of a user's model, made at load time, of any name (default: "custom").

    A name already held by a record with other classes gets a suffix ("custom (2)"); an unnamed model joins a
    record with the same classes, so models with the same classes are each other's black boxes. Sets
    `model.domain` to the record's name."""
    if name in _builtin():
        builtin = _builtin()[name]
        if len(model.class_names) != len(builtin.class_names) or model.input_size[0] != builtin.input_size[0]:
            raise ValueError(
                f"domain {name!r} has {len(builtin.class_names)} classes of {builtin.input_size[0]}-channel "
                f"images; this model has {len(model.class_names)} classes of {model.input_size[0]}-channel "
                "images: give its domain another name"
            )
        model.domain = name
        return builtin
    with _CUSTOM_LOCK:
        same = [d for d in _CUSTOM.values() if _same_world(d, model)]
        if name is None and same:
            record = same[0]
        else:
            base = name or "custom"
            key, k = base, 1
            while key in _CUSTOM and not _same_world(_CUSTOM[key], model):
                k += 1
                key = f"{base} ({k})"
            record = _CUSTOM.get(key) or _record(key, model)
            if len(_CUSTOM) >= _MAX_CUSTOM:
                _CUSTOM.pop(next(iter(_CUSTOM)))
            _CUSTOM[key] = record
    model.domain = record.name
    return record


def of(model) -> Domain:
    """The domain record of a model: the one carrying its user's images, else a built-in or load-time one by name."""
    own = getattr(model, "domain_record", None)
    if own is not None:
        return own
    name = getattr(model, "domain", "")
    if name in _builtin():
        return _builtin()[name]
    with _CUSTOM_LOCK:
        if name in _CUSTOM and _same_world(_CUSTOM[name], model):
            return _CUSTOM[name]
    return adopt(model, name or None)


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


def stats(domain: str | Domain, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of a domain's training images (a built-in one by name, or a record such as
    `of(model)` gives for a user's model), as 1×C×1×1 tensors."""
    import torch

    d = domain if isinstance(domain, Domain) else get(domain)
    shape = (1, len(d.mean), 1, 1)
    return torch.tensor(d.mean, device=device).view(shape), torch.tensor(d.std, device=device).view(shape)
