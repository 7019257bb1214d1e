"""Success that survives re-scoring: attacks that stop at the decision boundary must not stop within rounding of it.

On a GPU, TF32 convolutions move logits by about 1e-3 of their size, and another batch composition picks other
kernels: an image left just across the boundary flips back when scored again. A wrapper that multiplies every
logit by (1 + 1e-3·N(0, 1)), fresh on every call, emulates that on the CPU: the success an attack reports must be
the success of its images scored again, several times, in reverse order and one image at a time.
"""

from __future__ import annotations

import pytest
import torch

from engine import attacks

NOISE = 1e-3  # TF32 keeps 10 mantissa bits: ~1e-3 relative error on a logit after a few layers

N = 24  # images per case: each case takes a few seconds


class NoisyLogits(torch.nn.Module):
    """The classifier with TF32-sized relative noise on its logits, drawn afresh on every call."""

    def __init__(self, model, seed: int = 0):
        super().__init__()
        self.model = model
        self.generator = torch.Generator().manual_seed(seed)
        # What the engine reads off a Classifier besides calling it.
        for name in ("name", "num_classes", "attack_defaults", "input_size", "class_names"):
            if hasattr(model, name):
                setattr(self, name, getattr(model, name))

    def forward(self, x):
        z = self.model(x)
        return z * (1.0 + NOISE * torch.randn(z.shape, generator=self.generator).to(z))


def rescored(noisy, result) -> list[torch.Tensor]:
    """Success of the result's images scored again: three times as a batch, reversed, and one at a time."""
    x = result.x_adv
    with torch.no_grad():
        batches = [noisy(x) for _ in range(3)]
        batches.append(noisy(x.flip(0)).flip(0))
        batches.append(torch.cat([noisy(x[i : i + 1]) for i in range(x.shape[0])]))
    return [result.reached(z.argmax(1)) for z in batches]


CASES = [
    ("deepfool", {"steps": 50}),
    ("cw", {"steps": 20, "binary_search_steps": 1, "lr": 0.05}),
    ("cw", {"steps": 10, "binary_search_steps": 3, "lr": 0.1}),
    ("cw-linf", {"steps": 10, "c": 0.1, "c_max": 1.0, "tau_factor": 0.5}),
    ("ead", {"steps": 10, "binary_search_steps": 3, "c": 1.0, "lr": 0.05}),
    ("jsma", {"max_distortion": 0.3}),
    ("hopskipjump", {"n_queries": 150}),
    ("boundary", {"n_queries": 100}),
    ("apgd", {"eps": 0.3, "steps": 10, "loss": "dlr"}),
]


@pytest.mark.parametrize("name, params", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_reported_success_survives_rescoring(digits, name, params):
    model, x, y = digits
    x, y = x[:N], y[:N]
    noisy = NoisyLogits(model, seed=1)
    target = (y + 1) % 10 if name == "jsma" else None
    result = attacks.run(name, noisy, x, y=y, target=target, seed=0, **params)
    assert float(result.success.float().mean()) >= 0.5, "too few successes for the check to mean anything"
    for i, again in enumerate(rescored(noisy, result)):
        flipped = (again != result.success).nonzero().squeeze(1).tolist()
        assert not flipped, f"{name}: re-scoring {i} flips images {flipped} of {x.shape[0]}"
