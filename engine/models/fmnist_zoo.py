"""The project's own Fashion-MNIST models, registered from assets/models/zoo.json on the registry's first lookup."""

from __future__ import annotations

from engine.datasets import fashion_mnist
from engine.domains import FASHION_MNIST_NAME
from engine.models.classifier import Classifier
from engine.models.registry import apply_state_dict, load_state_dict_file, register_model
from engine.zoo import archs, manifest


def wrap(net, arch: str, name: str) -> Classifier:
    """A zoo network (training or trained) as the engine's classifier: pixel inputs, its layer catalogue."""
    blocks, cam = archs.catalogue(net, arch)
    return Classifier(
        net,
        name=name,
        domain=FASHION_MNIST_NAME,
        input_size=fashion_mnist.INPUT_SIZE,
        class_names=fashion_mnist.CLASS_NAMES,
        mean=(fashion_mnist.MEAN,),
        std=(fashion_mnist.STD,),
        block_names=blocks,
        cam_layer=cam,
    )


def build(entry: dict) -> Classifier:
    net, _, _ = archs.build(entry["arch"])
    path = manifest.MODELS_DIR / entry["file"]
    state = load_state_dict_file(path, entry["name"])
    # Weights are stored as float16 to keep the repository small; compute runs in float32.
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    apply_state_dict(net, state, entry["name"])
    return wrap(net, entry["arch"], entry["name"])


def _check(entry: dict):
    def check() -> str | None:
        path = manifest.MODELS_DIR / entry["file"]
        return (
            None
            if path.is_file()
            else f"weights file {path} is missing (train it: python -m engine.zoo.train --model {entry['name']})"
        )

    return check


def register_all() -> None:
    """Called once by `registry.ensure_builtins`; this is where the zoo manifest is read."""
    for entry in manifest.read().values():
        register_model(
            entry["name"],
            domain=FASHION_MNIST_NAME,
            description=f"{entry['arch']} on Fashion-MNIST, seed {entry['seed']}, {entry['role']} model, "
            f"test accuracy {entry['test_accuracy']:.1%}",
            check=_check(entry),
        )(lambda _e=entry: build(_e))
