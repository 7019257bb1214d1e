"""Small models trained in seconds on scikit-learn's bundled 8×8 digits (offline).

Attacks are tested on a real, trained classifier rather than random weights, so
"beats random noise" and "reaches the boundary" mean what they say.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

from engine.models import Classifier


MEAN, STD = 0.3, 0.4


class DigitsCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * 4 * 4, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def digits_data() -> tuple[torch.Tensor, torch.Tensor]:
    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(digits.target, dtype=torch.long)
    return x, y


def train_digits_classifier(seed: int = 0, epochs: int = 30) -> tuple[Classifier, torch.Tensor, torch.Tensor]:
    """A ~97 %-accurate CNN, plus held-out test images and labels (last 300 digits)."""
    torch.manual_seed(seed)
    x, y = digits_data()
    x_train, y_train, x_test, y_test = x[:-300], y[:-300], x[-300:], y[-300:]
    net = DigitsCNN()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(x_train.shape[0], generator=gen)
        for idx in order.split(128):
            # Train on normalised pixels, as the Classifier below will feed them.
            loss = nn.functional.cross_entropy(net((x_train[idx] - MEAN) / STD), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.zero_grad(set_to_none=True)
    model = Classifier(
        net,
        name="digits-cnn",
        domain="digits",
        input_size=(1, 8, 8),
        class_names=[str(i) for i in range(10)],
        mean=(MEAN,),
        std=(STD,),
        block_names=["features.1", "features.3", "features.4", "features.6"],
        cam_layer="features.6",
    )
    return model, x_test, y_test


def accuracy(model: Classifier, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def linear_classifier(seed: int = 0) -> Classifier:
    """A linear model on 3×8×8 whose input gradient is known in closed form."""
    gen = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
    with torch.no_grad():
        net[1].weight.copy_(torch.randn(4, 3 * 8 * 8, generator=gen))
        net[1].bias.zero_()
    return Classifier(
        net, name="linear", domain="test", input_size=(3, 8, 8), class_names=list("abcd"),
        mean=(0.0,) * 3, std=(1.0,) * 3, block_names=["0"],
    )


def to_numpy_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
