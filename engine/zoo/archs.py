"""Small architectures for 1×28×28 images, one per family the source papers compare.

Each builder returns the network, its layer catalogue (dotted names of the
blocks from input to output) and its Grad-CAM layer (the last spatial block).
Every network is an `nn.Sequential` of named stages so the catalogue is just
its stage names.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn


def _conv_bn(cin, cout, k=3, stride=1, groups=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=False)
    )


def _pooled(stages: OrderedDict[str, nn.Module], width: int) -> nn.Sequential:
    """Convolutional stages followed by global average pooling and a linear read-out."""
    stages.update(pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), logits=nn.Linear(width, 10))
    return nn.Sequential(stages)


def lenet(width: int = 6) -> nn.Sequential:
    """LeNet-5 (LeCun et al. 1998) with ReLU and max pooling: the MNIST model of the
    JSMA paper (Papernot et al. 2016)."""
    second = 8 * width // 3  # LeNet's 6 → 16 channels
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Sequential(nn.Conv2d(1, width, 5, padding=2), nn.ReLU()),
            pool1=nn.MaxPool2d(2),
            conv2=nn.Sequential(nn.Conv2d(width, second, 5), nn.ReLU()),
            pool2=nn.MaxPool2d(2),
            flatten=nn.Flatten(),
            fc1=nn.Sequential(nn.Linear(second * 5 * 5, 120), nn.ReLU()),
            fc2=nn.Sequential(nn.Linear(120, 84), nn.ReLU()),
            logits=nn.Linear(84, 10),
        )
    )


def vgg(width: int = 16) -> nn.Sequential:
    """VGG-style: stacked 3×3 conv + batch norm, max pooling, a small MLP head."""
    w = width
    return nn.Sequential(
        OrderedDict(
            conv1=_conv_bn(1, w),
            conv2=_conv_bn(w, w),
            pool1=nn.MaxPool2d(2),
            conv3=_conv_bn(w, 2 * w),
            conv4=_conv_bn(2 * w, 2 * w),
            pool2=nn.MaxPool2d(2),
            conv5=_conv_bn(2 * w, 4 * w),
            pool3=nn.MaxPool2d(2),
            flatten=nn.Flatten(),
            fc1=nn.Sequential(nn.Linear(4 * w * 3 * 3, 8 * w), nn.ReLU(), nn.Dropout(0.3)),
            logits=nn.Linear(8 * w, 10),
        )
    )


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.skip = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.body(x) + self.skip(x))


def resnet(width: int = 16) -> nn.Sequential:
    """A small ResNet (He et al. 2016): a 16-channel stem, then basic blocks at 14×14 and 7×7."""
    w = width
    return _pooled(
        OrderedDict(
            stem=_conv_bn(1, w),
            block1=BasicBlock(w, 2 * w, 2),
            block2=BasicBlock(2 * w, 2 * w, 1),
            block3=BasicBlock(2 * w, 4 * w, 2),
            block4=BasicBlock(4 * w, 4 * w, 1),
        ),
        4 * w,
    )


class DenseLayer(nn.Module):
    def __init__(self, cin, growth):
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, growth, 3, 1, 1, bias=False))

    def forward(self, x):
        return torch.cat([x, self.body(x)], 1)


def _dense_block(cin, growth, layers):
    return nn.Sequential(*[DenseLayer(cin + i * growth, growth) for i in range(layers)]), cin + layers * growth


def _transition(cin, cout):
    return nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, cout, 1, bias=False), nn.AvgPool2d(2))


def densenet(width: int = 24) -> nn.Sequential:
    """A small DenseNet (Huang et al. 2017): a strided stem, two dense blocks of 4 layers, growth width / 2."""
    stages: OrderedDict[str, nn.Module] = OrderedDict(stem=_conv_bn(1, width, 3, 2))
    ch = width
    for i in (1, 2):
        stages[f"dense{i}"], ch = _dense_block(ch, width // 2, 4)
        if i < 2:
            stages[f"transition{i}"] = _transition(ch, ch // 2)
            ch //= 2
    stages["norm"] = nn.Sequential(nn.BatchNorm2d(ch), nn.ReLU())
    return _pooled(stages, ch)


def _separable(cin, cout, stride):
    return nn.Sequential(_conv_bn(cin, cin, 3, stride, groups=cin), _conv_bn(cin, cout, 1))


def mobilenet(width: int = 16) -> nn.Sequential:
    """MobileNet-style (Howard et al. 2017): depthwise-separable convolutions."""
    w = width
    return _pooled(
        OrderedDict(
            stem=_conv_bn(1, w),
            sep1=_separable(w, 2 * w, 2),
            sep2=_separable(2 * w, 4 * w, 1),
            sep3=_separable(4 * w, 8 * w, 2),
            sep4=_separable(8 * w, 8 * w, 1),
        ),
        8 * w,
    )


def mlp(width: int = 512) -> nn.Sequential:
    """A fully connected baseline: no convolution, no spatial prior."""
    return nn.Sequential(
        OrderedDict(
            flatten=nn.Flatten(),
            fc1=nn.Sequential(nn.Linear(784, width), nn.ReLU(), nn.Dropout(0.2)),
            fc2=nn.Sequential(nn.Linear(width, width // 2), nn.ReLU(), nn.Dropout(0.2)),
            logits=nn.Linear(width // 2, 10),
        )
    )


ARCHITECTURES: dict[str, Callable[[], nn.Sequential]] = {
    "lenet": lenet,
    "vgg": vgg,
    "resnet": resnet,
    "densenet": densenet,
    "mobilenet": mobilenet,
    "mlp": mlp,
}
CONVOLUTIONAL = {"lenet", "vgg", "resnet", "densenet", "mobilenet"}
_NOT_BLOCKS = (nn.Flatten, nn.Dropout, nn.AdaptiveAvgPool2d)


def build(arch: str, width: int | None = None) -> tuple[nn.Sequential, list[str], str | None]:
    """(network, layer catalogue, Grad-CAM layer) for an architecture name; `width`: its channels (units for the
    MLP) in place of the zoo's, where a lighter model will do."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown zoo architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    net = ARCHITECTURES[arch]() if width is None else ARCHITECTURES[arch](width)
    return (net, *catalogue(net, arch))


def catalogue(net: nn.Sequential, arch: str) -> tuple[list[str], str | None]:
    """(layer catalogue, Grad-CAM layer) of a network of architecture `arch`."""
    blocks = []
    for name, m in net.named_children():
        if name == "logits" or isinstance(m, _NOT_BLOCKS):
            continue
        if name.startswith("dense"):  # every dense layer is a depth of its own (a finer layer sweep)
            blocks += [f"{name}.{i}" for i in range(len(m))]
        else:
            blocks.append(name)
    spatial = [name for name in blocks if not name.startswith("fc")]
    cam = spatial[-1] if arch in CONVOLUTIONAL else None
    return blocks, cam
