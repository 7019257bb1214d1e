"""Small models for the tests, on scikit-learn's bundled 8×8 digits (offline).

Attacks are tested on a real, trained classifier rather than random weights, so
"beats random noise" and "reaches the boundary" mean what they say. The weights
the tests use are committed under tests/fixtures/ and made once by
`tests/fixtures/make_tiny_models.py`: trained here, at test time, they would
differ in their last bits from one CPU to the next and so would every rate the
tests measure on them. Setting PE_FIXTURE_SEED=S (with the script run once for
that S) gives the whole suite a fixture trained from another seed; that is how a
threshold shows it tests the code and not one set of weights.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

from engine.models import Classifier

MEAN, STD = 0.3, 0.4
EPOCHS = 30
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SEED_VARIABLE = "PE_FIXTURE_SEED"


class DigitsCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * 4 * 4, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def digits_data() -> tuple[torch.Tensor, torch.Tensor]:
    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(digits.target, dtype=torch.long)
    return x, y


def held_out() -> tuple[torch.Tensor, torch.Tensor]:
    """The last 300 digits, never trained on."""
    x, y = digits_data()
    return x[-300:], y[-300:]


def wrap(net: nn.Module, name: str = "digits-cnn") -> Classifier:
    net.zero_grad(set_to_none=True)
    return Classifier(
        net,
        name=name,
        domain="digits",
        input_size=(1, 8, 8),
        class_names=[str(i) for i in range(10)],
        mean=(MEAN,),
        std=(STD,),
        block_names=["features.1", "features.3", "features.4", "features.6"],
        cam_layer="features.6",
    )


def train_digits_net(seed: int = 0, epochs: int = EPOCHS) -> DigitsCNN:
    """A ~97 %-accurate CNN trained on all but the last 300 digits."""
    torch.manual_seed(seed)
    x, y = digits_data()
    x_train, y_train = x[:-300], y[:-300]
    net = DigitsCNN()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(x_train.shape[0], generator=gen)
        for idx in order.split(128):
            # Train on normalised pixels, as the Classifier will feed them.
            loss = nn.functional.cross_entropy(net((x_train[idx] - MEAN) / STD), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net


def fixture_seed() -> int:
    return int(os.environ.get(SEED_VARIABLE, "0"))


def fixture_path(seed: int) -> Path:
    return FIXTURES / f"digits-cnn-{seed}.pt"


def load_digits_classifier(which: int = 0) -> Classifier:
    """The committed digits CNN: `which` 0 is the tests' white-box model, 1 a second one (another seed)."""
    seed = fixture_seed() + which
    path = fixture_path(seed)
    if not path.exists():
        raise FileNotFoundError(
            f"{path.name} is missing: run `{SEED_VARIABLE}={fixture_seed()} python tests/fixtures/make_tiny_models.py`"
        )
    net = DigitsCNN()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return wrap(net, "digits-cnn" if which == 0 else f"digits-cnn-{which}")


def recorded_accuracy(seed: int) -> float | None:
    card = FIXTURES / "digits-cnn.json"
    return json.loads(card.read_text()).get(str(seed)) if card.exists() else None


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
        net,
        name="linear",
        domain="test",
        input_size=(3, 8, 8),
        class_names=list("abcd"),
        mean=(0.0,) * 3,
        std=(1.0,) * 3,
        block_names=["0"],
    )


def to_numpy_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
