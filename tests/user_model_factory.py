"""Entry points for tests/test_formats_graph.py ('user_model_factory:make'; tests/ is on sys.path)."""

import torch
from torch import nn

MEAN, STD = [0.5, 0.4, 0.3], [0.25, 0.2, 0.3]


class SmallCNN(nn.Module):
    """conv-relu-pool ×2 + linear on 3×32×32, 10 classes."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(16 * 8 * 8, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def make() -> nn.Module:
    torch.manual_seed(0)
    return SmallCNN().eval()


def make_classifier():
    from engine.models import Classifier

    return Classifier(
        make(),
        name="ready-made",
        domain="toy",
        input_size=(3, 32, 32),
        class_names=list("abcdefghij"),
        mean=MEAN,
        std=STD,
        block_names=["features.2", "features.5"],
    )


def not_a_model():
    return 42


def needs_args(depth):
    return make()
