"""Model registry and the `Classifier` every model is wrapped in (SPEC, notation)."""
from engine.models.classifier import Classifier, LayerInfo
from engine.models.registry import ModelUnavailable, available, load, names, register_model, unregister_model
from engine.models import efficientnet_lite, fmnist_zoo, torchvision_zoo  # noqa: F401  (registers the built-in models)

__all__ = [
    "Classifier",
    "LayerInfo",
    "ModelUnavailable",
    "available",
    "load",
    "names",
    "register_model",
    "unregister_model",
]
