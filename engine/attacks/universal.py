"""Universal adversarial perturbation (Moosavi-Dezfooli et al. 2017): one δ = v for a whole set of images.

Passes over the images in a seeded random order; for each image that x + v still leaves correctly classified,
an inner attack (DeepFool by default, or FGSM/PGD) finds a small extra perturbation r from x + v, and v becomes
the projection of v + r onto the ε-ball (L∞, or L2 with norm="l2", where ε is the L2 radius). The passes end
once the share of fooled images reaches `target_rate` (the paper's 1 − δ) or after `max_iter` passes.

`batch` = 1 is the paper's sequential loop (as ART's UniversalPerturbation). `batch` = b > 1 runs the inner
attack on b not-yet-fooled images at once and adds the sum of their perturbations before projecting: one
batched inner attack instead of b, so much faster, but each r is computed from the same v rather than from
the v its predecessors left, which the projection then has to reconcile.

As a catalogue attack every image of the batch gets clamp(x + v) with the same v; the last progress report
carries v itself as `perturbation` (`perturbation(result)` recovers it from a result where it can).
"""

from __future__ import annotations

import math

import torch

from engine.attacks import deepfool as _deepfool
from engine.attacks import gradient as _gradient
from engine.attacks.base import FORWARD_PASS, AttackResult, AttackSpec, Context, Param

EPS = Param(
    "eps",
    float,
    0.03,
    0.0,
    100.0,
    "budget ε of the universal δ: L∞ in [0, 1] pixel units, or the L2 radius when norm is l2",
)
NORM = Param("norm", str, "linf", help="the ball δ is projected onto: linf or l2", choices=("linf", "l2"))
INNER = Param(
    "inner",
    str,
    "deepfool",
    help="the per-image attack whose perturbation is added to δ: deepfool (the paper's), fgsm or pgd",
    choices=("deepfool", "fgsm", "pgd"),
)
MAX_ITER = Param("max_iter", int, 5, 1, 50, "passes (epochs) over the images at most")
TARGET_RATE = Param(
    "target_rate", float, 0.8, 0.0, 1.0, "stop once this share of the images is fooled (the paper's 1 − δ)"
)
BATCH = Param(
    "batch",
    int,
    1,
    1,
    4096,
    "images per inner-attack call: 1 is the paper's sequential loop; more adds a minibatch's summed "
    "perturbations at once (faster)",
)
STEPS = Param("steps", int, 50, 1, 1000, "inner attack iterations: DeepFool's maximum, PGD's K")


def _inner(ctx: Context, xs, rows, inner, eps, steps, overshoot, num_classes) -> torch.Tensor:
    """The inner attack's images for xs (batch rows `rows`), from a context of their own."""
    sub = Context(
        model=ctx.model, x=xs, y=ctx.y[rows], target=None, generator=ctx.generator, callback=None, clip=ctx.clip
    )
    if inner == "deepfool":
        return _deepfool.deepfool(sub, steps, overshoot, num_classes)
    if inner == "fgsm":
        return sub.clamp(_gradient.fgsm(sub, eps))
    # BIM-like PGD from xs itself: a random start would only add noise to the sum that builds v.
    return _gradient.pgd(sub, eps, None, steps, random_start=False)


def project(v: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """The nearest point of the ε-ball (L∞ or L2) to v."""
    if norm == "linf":
        return v.clamp(-eps, eps)
    length = float(v.norm())
    return v * (eps / length) if length > eps else v


def universal(
    ctx: Context,
    eps: float,
    norm: str,
    inner: str,
    max_iter: int,
    target_rate: float,
    batch: int,
    steps: int,
    overshoot: float,
    num_classes: int,
) -> torch.Tensor:
    x, y = ctx.x, ctx.y
    n = x.shape[0]
    chunks = math.ceil(n / batch)
    total = max_iter * chunks
    if ctx.resume:
        first_pass, first_chunk = ctx.resume["pass"], ctx.resume["chunk"]
        v, order = ctx.resume["v"], ctx.resume["order"]
    else:
        first_pass, first_chunk, v, order = 0, 0, torch.zeros_like(x[:1]), None
    for epoch in range(first_pass, max_iter):
        if order is None:  # a resumed pass keeps the order it drew
            order = ctx.rand(n).argsort()
        for chunk in range(first_chunk, chunks):
            idx = order[chunk * batch : (chunk + 1) * batch]
            xs = ctx.clamp(x[idx] + v)
            with torch.no_grad():
                right = ctx.logits(xs, idx).argmax(1) == y[idx]
            if bool(right.any()):
                rows = idx[right]
                adv = _inner(ctx, xs[right], rows, inner, eps, steps, overshoot, num_classes)
                with torch.no_grad():
                    flipped = ctx.logits(adv, rows).argmax(1) != y[rows]
                # As ART: only a perturbation that does fool its image joins v.
                if bool(flipped.any()):
                    r = (adv - xs[right])[flipped].sum(0, keepdim=True)
                    v = project(v + r, eps, norm)
            step = epoch * chunks + chunk + 1
            ctx.iterations.fill_(step)
            x_adv = ctx.clamp(x + v)
            if not ctx.report(step, total, x_adv=x_adv, perturbation=v, upper_bound=True):
                # After a pass's last chunk the resumed run starts with that pass's fooling-rate check.
                ctx.keep(**{"pass": epoch, "chunk": chunk + 1}, v=v, order=order)
                return x_adv
        first_chunk, order = 0, None
        with torch.no_grad():
            fooled = float((ctx.logits(ctx.clamp(x + v)).argmax(1) != y).float().mean())
        if fooled >= target_rate:
            break
    return ctx.clamp(x + v)


def perturbation(result: AttackResult) -> torch.Tensor:
    """The universal v (1×C×H×W) of a "universal" result, read off its per-image deltas.

    clamp(x + v) − x has v's sign and at most its size, and equals v wherever some image left room: per pixel
    the largest delta is v except where every image clamped it (a pixel no image of the batch could move)."""
    delta = result.delta
    pick = delta.abs().argmax(0, keepdim=True)
    return delta.gather(0, pick)


def _work(v: dict, shape) -> float:
    per_image = (1 + 2 * (v["num_classes"] - 1)) * FORWARD_PASS if v["inner"] == "deepfool" else 1.0
    inner_steps = 1 if v["inner"] == "fgsm" else v["steps"]
    return v["max_iter"] * (inner_steps * per_image + 3 * FORWARD_PASS)


SPEC = AttackSpec(
    "universal",
    "Universal perturbation",
    universal,
    (EPS, NORM, INNER, MAX_ITER, TARGET_RATE, BATCH, STEPS, _deepfool.OVERSHOOT, _deepfool.NUM_CLASSES),
    # The one δ lies in the ε-ball in either norm, and an L2 ball of radius ε lies inside the L∞ one:
    # the L∞ projection that finalize() applies never changes it.
    norm="linf",
    targeted=False,
    # Its inner attacks address rows of their own sub-batch, not the row-wise model's rows.
    averageable=False,
    stops_early=True,
    work=_work,
    reference="Moosavi-Dezfooli et al. 2017, Universal adversarial perturbations",
    summary="one δ for the whole batch: per-image DeepFool steps added up and projected to the ε-ball, pass after pass",
)
