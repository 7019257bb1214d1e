"""Model registry and the `Classifier` every model is wrapped in: a network that takes images in [0, 1]
(N×C×H×W) and returns logits, with its own normalisation inside. Built-in models register on the first lookup
(`engine.models.registry.ensure_builtins`), so importing this package reads no model file or manifest."""

from engine.models.classifier import Classifier, LayerInfo
from engine.models.registry import ModelUnavailable, available, load, names, register_model, unregister_model


def open_model(spec: str, device=None, precision: str = "auto", sidecar=None) -> Classifier:
    """A registered model by name, else a user's own from a file or spec (`engine.models.formats.load`)."""
    if spec in names():
        return load(spec, device=device, precision=precision)
    from engine.device import resolve
    from engine.models import formats

    return formats.load(spec, sidecar=sidecar).to(resolve(device)).set_precision(precision)


__all__ = [
    "Classifier",
    "LayerInfo",
    "ModelUnavailable",
    "available",
    "load",
    "names",
    "open_model",
    "register_model",
    "unregister_model",
]
