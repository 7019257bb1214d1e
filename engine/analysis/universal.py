"""One universal perturbation for a whole image set (Moosavi-Dezfooli et al. 2017), fitted and judged.

`fit` runs the "universal" attack on training images and returns its v; `evaluate` puts the same v on images
it never saw: the held-out fooling rate, the classes the flipped images land in (a universal δ tends to push
most images into a few dominant classes), a random-noise control of the same norm and v shown as an image.
"""

from __future__ import annotations

import numpy as np
import torch

from engine import attacks, images, progress
from engine.attacks.universal import perturbation
from engine.metrics import norms


def fit(
    model,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    seed: int = 0,
    callback: progress.Callback | None = None,
    **params,
) -> tuple[torch.Tensor, attacks.AttackResult]:
    """(v as 1×C×H×W, the attack's result on `x`): the universal perturbation of `x` with `params`."""
    seen = {}

    def watch(step, total, state):
        seen["v"] = state["perturbation"]
        return callback(step, total, state) if callback is not None else True

    result = attacks.run("universal", model, x, y=y, seed=seed, callback=watch, **params)
    # The last report carries the final v; a run that reported nothing has v = 0.
    v = seen["v"] if "v" in seen else perturbation(result)
    return v.detach(), result


def _predict(model, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(x[i : i + batch]).argmax(1) for i in range(0, x.shape[0], batch)])


def random_like(v: torch.Tensor, norm: str = "linf", seed: int = 0) -> torch.Tensor:
    """Noise with v's size: ±‖v‖∞ with random signs (linf), or a Gaussian direction of v's L2 length (l2)."""
    generator = torch.Generator(device=v.device).manual_seed(seed)
    if norm == "linf":
        signs = torch.rand(v.shape, generator=generator, device=v.device) < 0.5
        return torch.where(signs, -1.0, 1.0).to(v.dtype) * v.abs().max()
    noise = torch.randn(v.shape, generator=generator, device=v.device, dtype=v.dtype)
    return noise * (v.norm() / noise.norm().clamp_min(1e-12))


def evaluate(
    model,
    v: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    norm: str = "linf",
    top: int = 5,
    seed: int = 0,
) -> dict:
    """The universal v on images `x` (labels `y`, default the model's predictions on x).

    fooling_rate: the share of images whose prediction under clamp(x + v) differs from y (the paper's measure is
    against the clean prediction; with y = None the two agree). dominant: class name → share of the flipped
    images predicted as it, largest first (at most `top`). noise_fooling_rate: the same for random noise of v's
    norm (`random_like`), the control v has to beat."""
    v = v.to(x.device)
    clean = _predict(model, x)
    y = clean if y is None else y.to(x.device)
    pred = _predict(model, (x + v).clamp(0.0, 1.0))
    noisy = _predict(model, (x + random_like(v, norm, seed)).clamp(0.0, 1.0))
    flipped = pred != y
    names = list(getattr(model, "class_names", None) or range(int(pred.max()) + 1))
    counts = torch.bincount(pred[flipped], minlength=len(names)).tolist()
    total = max(1, int(flipped.sum()))
    dominant = sorted(((str(names[c]), k / total) for c, k in enumerate(counts) if k > 0), key=lambda item: -item[1])[
        :top
    ]
    size = norms(v)
    return {
        "n": int(x.shape[0]),
        "clean_accuracy": float((clean == y).float().mean()),
        "fooling_rate": float(flipped.float().mean()),
        "noise_fooling_rate": float((noisy != y).float().mean()),
        "dominant": dict(dominant),
        "linf": float(size["linf"][0]),
        "l2": float(size["l2"][0]),
    }


def display(v: torch.Tensor) -> np.ndarray:
    """v as an H×W×3 uint8 image: mid-grey is no change, ±max|v| the ends of the range, one scale for every
    channel so that colours keep their balance."""
    v = v.reshape(-1, *v.shape[-2:]) if v.dim() == 4 else v
    peak = float(v.abs().max())
    shown = (0.5 + 0.5 * v / peak).clamp(0.0, 1.0) if peak > 0 else torch.full_like(v, 0.5)
    return images.to_uint8(shown)
