"""torchvision ImageNet models, loaded from the local torch cache only.

Nothing is downloaded implicitly: the app and tests run offline. `download(name)`
fetches a checkpoint into the cache when a network is there; when the file is
missing, `load` fails with the URL to fetch and the path to save it under.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from torch import nn

from engine.domains import IMAGENET_NAME
from engine.models.classifier import Classifier
from engine.models.registry import ModelUnavailable, apply_state_dict, load_state_dict_file, register_model

ARCHITECTURES = ("resnet18", "resnet50", "densenet121", "vgg16_bn", "vgg19_bn", "mobilenet_v3_large")

# Old DenseNet checkpoints name layers "norm.1"; torchvision renames them the same way on load.
_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
)


def _models():
    # Imported on first use: torchvision's models bring torch._dynamo with them (about a second), which a command
    # or a worker process that never touches a torchvision model should not pay for at start-up.
    import torchvision.models

    return torchvision.models


def _weights(arch: str):
    return _models().get_model_weights(arch).DEFAULT


def checkpoint_path(arch: str) -> Path:
    """Where torchvision itself caches the default weights (honours TORCH_HOME)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(_weights(arch).url)


def _missing_message(arch: str) -> str:
    return (
        f"weights not in the local torch cache; download {_weights(arch).url} "
        f"and save it as {checkpoint_path(arch)} (or run `python -m engine download {arch}` with network access)"
    )


def download(arch: str) -> Path:
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown torchvision model {arch!r}; known: {', '.join(ARCHITECTURES)}")
    path = checkpoint_path(arch)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(_weights(arch).url, str(path), progress=False)
    except Exception as err:  # no network here is the usual case: say what to do by hand
        raise ModelUnavailable(f"{arch}: download failed ({type(err).__name__}); {_missing_message(arch)}") from err
    return path


def block_names(arch: str, net: nn.Module) -> tuple[list[str], str]:
    """The layer catalogue (input → output) and the Grad-CAM layer for an architecture.

    ValueError for a family without a rule (the caller falls back to `formats.common.auto_blocks`)."""
    if arch.startswith(("resnet", "resnext", "wide_resnet")):
        blocks = ["relu", "maxpool"]
        for stage in ("layer1", "layer2", "layer3", "layer4"):
            blocks += [f"{stage}.{i}" for i in range(len(net.get_submodule(stage)))]
        return blocks, "layer4"
    if arch.startswith("densenet"):
        names = [n for n, _ in net.features.named_children() if n.startswith(("pool0", "denseblock", "transition"))]
        blocks = [f"features.{n}" for n in names] + ["features.norm5"]
        return blocks, "features.norm5"
    if arch.startswith(("vgg", "alexnet")):
        relus = [f"features.{i}" for i, m in enumerate(net.features) if isinstance(m, nn.ReLU)]
        return relus, relus[-1]
    if arch.startswith(("mobilenet", "efficientnet", "convnext")):
        blocks = [f"features.{i}" for i in range(len(net.features))]
        return blocks, blocks[-1]
    if arch.startswith("squeezenet"):
        # features.0 is the stem convolution; its ReLU (features.1) is the first post-activation map.
        blocks = [f"features.{i}" for i in range(1, len(net.features))]
        return blocks, blocks[-1]
    if arch.startswith("regnet"):
        blocks = ["stem"] + [f"trunk_output.{n}" for n, _ in net.trunk_output.named_children()]
        return blocks, blocks[-1]
    if arch.startswith("shufflenet"):
        return ["conv1", "maxpool", "stage2", "stage3", "stage4", "conv5"], "conv5"
    if arch in ("googlenet", "inception_v3"):
        # Their top-level modules run in order; the auxiliary heads only in training, the rest is the head.
        head = ("aux1", "aux2", "AuxLogits", "avgpool", "dropout", "fc")
        blocks = [n for n, _ in net.named_children() if n not in head]
        return blocks, blocks[-1]
    if arch.startswith("maxvit"):
        blocks = ["stem"] + [f"blocks.{i}" for i in range(len(net.blocks))]
        return blocks, blocks[-1]
    if arch.startswith("swin"):
        # The stages keep channels last (N×H×W×C), which Grad-CAM would read wrongly; `permute` turns the
        # final normalised map into N×C×H×W.
        return ["permute"], "permute"
    raise ValueError(f"no layer catalogue rule for {arch}")


def _check(arch: str):
    def check() -> str | None:
        return None if checkpoint_path(arch).is_file() else _missing_message(arch)

    return check


def build(arch: str, state: dict | None = None, name: str | None = None) -> Classifier:
    """A torchvision architecture wrapped as a Classifier; `state` defaults to the cached checkpoint."""
    weights = _weights(arch)
    net = _models().get_model(arch, weights=None)
    if state is None:
        state = load_state_dict_file(checkpoint_path(arch), arch)
    if arch.startswith("densenet"):
        state = {(_DENSENET_KEY.sub(r"\1\2", k)): v for k, v in state.items()}
    apply_state_dict(net, state, name or arch)
    transforms = weights.transforms()
    blocks, cam = block_names(arch, net)
    crop = int(transforms.crop_size[0])
    return Classifier(
        net,
        name=name or arch,
        domain=IMAGENET_NAME,
        input_size=(3, crop, crop),
        class_names=weights.meta["categories"],
        mean=transforms.mean,
        std=transforms.std,
        block_names=blocks,
        cam_layer=cam,
        resize_size=int(transforms.resize_size[0]),
    )


def register_all() -> None:
    """Called once by `registry.ensure_builtins` on the first model lookup."""
    for arch in ARCHITECTURES:
        register_model(
            arch,
            domain=IMAGENET_NAME,
            description=f"torchvision {arch}, ImageNet (weights from the local torch cache)",
            check=_check(arch),
        )(lambda _a=arch: build(_a))
