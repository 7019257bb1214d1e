"""Model registry and the `Classifier` every model is wrapped in (SPEC, notation)."""
from engine.models.classifier import Classifier, LayerInfo
from engine.models.registry import ModelUnavailable, available, load, names, register_model, unregister_model
from engine.models import efficientnet_lite, fmnist_zoo, torchvision_zoo  # noqa: F401  (registers the built-in models)


def open_model(spec: str, device=None, precision: str = "fp32", sidecar=None) -> Classifier:
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
