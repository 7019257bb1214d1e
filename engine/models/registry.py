"""Model registry: an explicit dict of builders, `available()` and `load()`.

The built-in models (EfficientNet-Lite, the Fashion-MNIST zoo from assets/models/zoo.json, torchvision) are
registered on the first lookup, not at import: importing `engine.models` reads no file, and a process that
never asks for a model never opens the zoo manifest. Each built-in module exposes `register_all()`.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch

from engine.device import resolve
from engine.models.classifier import PRECISIONS, Classifier


class ModelUnavailable(RuntimeError):
    """A known model that cannot be loaded here; the message says why and how to fix it."""


@dataclass(frozen=True)
class ModelEntry:
    name: str
    domain: str
    description: str
    build: Callable[[], Classifier]
    check: Callable[[], str | None]  # None when loadable, else the reason it is not


_REGISTRY: dict[str, ModelEntry] = {}

# In listing order: `names()` and `available()` keep the order the built-ins were registered in.
BUILTIN_MODULES = ("engine.models.efficientnet_lite", "engine.models.fmnist_zoo", "engine.models.torchvision_zoo")

# "pending" until the first lookup, "loading" while one thread registers them, then "done".
_builtins = "pending"
# Re-entrant: registering a built-in goes through `register_model`, which asks for the built-ins again.
_BUILTINS_LOCK = threading.RLock()


def ensure_builtins() -> None:
    """Register the built-in models once. Another thread waits until they are all there; the registering
    thread itself passes straight through. A failure leaves nothing half-registered and is retried next time."""
    global _builtins
    if _builtins == "done":
        return
    with _BUILTINS_LOCK:
        if _builtins != "pending":
            return
        _builtins = "loading"
        before = set(_REGISTRY)
        try:
            for module in BUILTIN_MODULES:
                importlib.import_module(module).register_all()
        except BaseException:
            for name in set(_REGISTRY) - before:
                del _REGISTRY[name]
            _builtins = "pending"
            raise
        _builtins = "done"


def _always() -> None:
    return None


def register_model(name: str, *, domain: str, description: str = "", check: Callable[[], str | None] = _always):
    """Register a builder returning a CPU `Classifier`; raises on a duplicate name (built-ins included)."""

    def wrapper(build: Callable[[], Classifier]) -> Callable[[], Classifier]:
        ensure_builtins()
        if name in _REGISTRY:
            raise ValueError(f"a model is already registered under the name {name!r}")
        _REGISTRY[name] = ModelEntry(name, domain, description, build, check)
        return build

    return wrapper


def unregister_model(name: str) -> None:
    ensure_builtins()
    _REGISTRY.pop(name, None)


def names() -> list[str]:
    ensure_builtins()
    return list(_REGISTRY)


def available() -> list[dict]:
    """Every known model, whether it can be loaded here, and if not, why."""
    ensure_builtins()
    rows = []
    for entry in list(_REGISTRY.values()):
        reason = entry.check()
        rows.append(
            {
                "name": entry.name,
                "domain": entry.domain,
                "description": entry.description,
                "available": reason is None,
                "reason": reason or "",
            }
        )
    return rows


def load(name: str, device: str | torch.device | None = None, precision: str = "auto") -> Classifier:
    """Build model `name` in eval mode with frozen weights on `device` (default: best present),
    computing in `precision` (engine.precision: 'auto', 'fp32', 'tf32', or 'bf16'/'fp16' autocast)."""
    ensure_builtins()
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(_REGISTRY)}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: choose from {', '.join(PRECISIONS)}")
    entry = _REGISTRY[name]
    reason = entry.check()
    if reason is not None:
        raise ModelUnavailable(f"{name}: {reason}")
    model = entry.build()
    return model.to(resolve(device)).set_precision(precision)


def load_state_dict_file(path, what: str) -> dict:
    """Read a weights file safely (`weights_only=True`), turning a corrupt file into a clear error."""
    where = path if isinstance(path, (str, os.PathLike)) else "the uploaded file"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for truncated or foreign files
        raise ModelUnavailable(
            f"{what}: the weights file {where} could not be read ({type(err).__name__}: {str(err)[:200]})"
        ) from err
    if not isinstance(state, dict):
        raise ModelUnavailable(f"{what}: {where} does not hold a state_dict")
    return state


def apply_state_dict(net: torch.nn.Module, state: dict, what: str) -> None:
    """Load `state` strictly; a mismatch names the first missing/unexpected keys."""
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0:3]
        raise ModelUnavailable(f"{what}: the weights do not fit the architecture ({' '.join(first)[:300]})") from err
