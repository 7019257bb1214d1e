"""Expected run times: this machine's measured speed × the work an operation does.

The unit is a *pass*: one forward and one backward of one image. Each attack
declares its passes per image (`AttackSpec.work`, an upper bound where it stops
at success); this module times one pass per model and device, once, and
multiplies. Pages use it to say what a setting costs before anyone waits for it.
"""

from __future__ import annotations

import math
import time

import torch

from engine import attacks
from engine.attacks.base import model_defaults, resolve_params

_SPEED: dict[tuple, tuple[float, float]] = {}
# A batch large enough that its cost is mostly per image: a few photos, or dozens of small images.
_TIMING_PIXELS = 200_000


def pass_seconds(model, batch: int = 1) -> float:
    """Seconds for one forward and backward of a batch of `batch` images through `model` here.

    Timed once per model and device at batch 1 and at a batch of about 200,000 pixels (4 photos,
    64 small images): a fixed cost per call (what dominates small models) plus a cost per image
    (what dominates large ones)."""
    key = (model.name, str(model.device), model.input_size, getattr(model, "precision", "fp32"))
    if key not in _SPEED:
        timing = min(64, max(4, _TIMING_PIXELS // math.prod(model.input_size)))
        x = torch.rand(timing, *model.input_size, device=model.device)
        _pass(model, x[:1])  # the first call pays for allocation and kernel selection
        # The fastest of a few: a busy moment only ever slows a pass down, and the price is kept.
        one = min(_timed(model, x[:1]) for _ in range(3))
        per_image = max((min(_timed(model, x) for _ in range(2)) - one) / (timing - 1), 0.0)
        _SPEED[key] = (max(one - per_image, 0.0), per_image)
    fixed, per_image = _SPEED[key]
    return fixed + per_image * batch


def _timed(model, x: torch.Tensor) -> float:
    start = time.perf_counter()
    _pass(model, x)
    return time.perf_counter() - start


def _pass(model, x: torch.Tensor) -> None:
    x = x.detach().requires_grad_(True)
    torch.autograd.grad(model(x).logsumexp(1).sum(), x)
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)


def attack_passes(model, name: str, params: dict | None = None) -> float:
    """Passes per image of attack `name` with `params` (defaults filled in; at most, if it stops at success)."""
    spec = attacks.get(name)
    values = resolve_params(spec, model_defaults(model), {k: v for k, v in (params or {}).items() if v is not None})
    return spec.work(values, tuple(model.input_size))


def attack_seconds(model, name: str, images: int = 1, params: dict | None = None) -> float:
    return attack_passes(model, name, params) * pass_seconds(model, images)


def averaged_seconds(name: str, models, images: int = 1, copies: int = 1, params: dict | None = None) -> float:
    """`engine.attacks.averaging.averaged`: the attack on every model × noisy copy of every image."""
    return sum(attack_passes(m, name, params) * pass_seconds(m, images * copies) for m in models)


def stops_early(name: str) -> bool:
    return attacks.get(name).stops_early


def phrase(seconds: float) -> str:
    """'under a second', 'about 12 s', 'about 3 min', 'about 2 h'."""
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"about {seconds:.0f} s"
    if seconds < 90 * 60:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"
