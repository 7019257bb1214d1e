"""What the decision-based attacks (HopSkipJump, Boundary) share: a label-only oracle, a start, a bisection.

These attacks see only the model's top label. Every image sent to the model is one
query of the example it belongs to (as Foolbox and ART count them), kept per example
in `ctx.queries`; the oracle never sends an image of an example whose budget is spent,
so no example ever exceeds it. The current point of every started example is always
one the oracle judged adversarial, so running out of budget mid-search loses nothing.
"""

from __future__ import annotations

import math

import torch

from engine.attacks.base import Context, Param
from engine.attacks.chunks import chunk_size


def queries_param(default: int) -> Param:
    return Param("n_queries", int, default, 1, 100000, "query budget per image (every image sent to the model counts)")


# Noise draws per example before giving up on a start (Foolbox's blended-noise search allows 1,000 with a shared
# batch; most models misclassify the first uniform image already).
NOISE_DRAWS = 100
CPU_CHUNK = 256
# A label-only attack cannot read its margin: its point is within one bisection (or one step of its walk) of the
# boundary, where the rounding of another device, precision or batch flips the label back. It returns the point
# this much further from the image along its own perturbation, past the band that rounding moves the boundary.
OUTWARD = 0.02


class Oracle:
    """Is each image adversarial for the example it belongs to? Counts one query per image."""

    def __init__(self, ctx: Context, budget: int):
        self.ctx, self.budget = ctx, budget
        if ctx.queries is None:
            ctx.queries = torch.zeros(ctx.x.shape[0], dtype=torch.long, device=ctx.x.device)
        self.chunk = chunk_size(ctx.x.shape[1:])
        if ctx.x.device.type == "cpu":
            # Measured on 2 cores: small CNNs run 1.5-2x slower per image in forwards of thousands than of 256
            # (the activations stop fitting in cache); the many probes of one estimate go in such pieces.
            self.chunk = min(self.chunk, CPU_CHUNK)

    def left(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        queries = self.ctx.queries if rows is None else self.ctx.queries[rows]
        return self.budget - queries

    def __call__(self, images: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Labels only: the logits never leave this method. `rows` may repeat an example (many probes of one)."""
        with torch.no_grad():
            pred = torch.cat(
                [
                    self.ctx.logits(images[i : i + self.chunk], rows[i : i + self.chunk]).argmax(1)
                    for i in range(0, rows.numel(), self.chunk)
                ]
            )
        self.ctx.queries.index_add_(0, rows, torch.ones_like(rows))
        return self.ctx.reached(pred, rows)


def outward(ctx: Context, adv: torch.Tensor) -> torch.Tensor:
    """The result a decision attack returns: its point moved OUTWARD further from the image (the clean image stays)."""
    return ctx.clamp(ctx.x + (1.0 + OUTWARD) * (adv - ctx.x))


def view(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.view(-1, *[1] * (like.dim() - 1))


def blend(x: torch.Tensor, far: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """(1 − a)·x + a·far per row: a = 1 is `far` itself, bit for bit."""
    a = view(a, x)
    return (1.0 - a) * x + a * far


def bisect(oracle: Oracle, rows: torch.Tensor, high: torch.Tensor, tol: torch.Tensor, point) -> torch.Tensor:
    """Per row, the smallest value in [0, high] whose image `point(value, k)` is adversarial, to within `tol`.

    `point(values, k)` builds the images of `rows[k]`; `high` must be adversarial. A row stops when its budget
    runs out or the midpoint no longer moves, with `high` still an adversarial value."""
    high, low = high.clone(), torch.zeros_like(high)
    while True:
        mid = (low + high) / 2
        open_ = (high - low > tol) & (oracle.left(rows) > 0) & (mid > low) & (mid < high)
        if not bool(open_.any()):
            return high
        k = open_.nonzero().squeeze(1)
        adv = oracle(point(mid[k], k), rows[k])
        high[k] = torch.where(adv, mid[k], high[k])
        low[k] = torch.where(adv, low[k], mid[k])


def _nearest_in_batch(ctx: Context, oracle: Oracle, start, found, allowed: torch.Tensor) -> None:
    """Start where not yet `found` from the nearest batch image with an allowed label, if the model agrees."""
    x = ctx.x
    dist = torch.cdist(x.flatten(1), x.flatten(1))
    dist = dist.masked_fill(~allowed, float("inf"))
    best, j = dist.min(1)
    rows = (~found & torch.isfinite(best) & (oracle.left() > 0)).nonzero().squeeze(1)
    if rows.numel() == 0:
        return
    ok = oracle(x[j[rows]], rows)
    start[rows[ok]] = x[j[rows[ok]]]
    found[rows[ok]] = True


def starting_points(ctx: Context, oracle: Oracle) -> tuple[torch.Tensor, torch.Tensor]:
    """(start, found): an adversarial image per example, or the clean image where none was found.

    Untargeted: uniform noise the model misclassifies (Foolbox's blended-noise start), else the nearest batch
    image of another class. Targeted: the nearest batch image of the target class (noise rarely lands in a
    given class), else noise drawn until the target label appears. An example with no start stays unfooled."""
    x, n = ctx.x, ctx.x.shape[0]
    start, found = x.clone(), torch.zeros(n, dtype=torch.bool, device=x.device)
    if ctx.targeted:
        _nearest_in_batch(ctx, oracle, start, found, ctx.y[None, :] == ctx.target[:, None])
    for _ in range(NOISE_DRAWS):
        rows = (~found & (oracle.left() > 0)).nonzero().squeeze(1)
        if rows.numel() == 0:
            break
        noise = ctx.rand(rows.numel(), *x.shape[1:])
        ok = oracle(noise, rows)
        start[rows[ok]] = noise[ok]
        found[rows[ok]] = True
    if not ctx.targeted:
        _nearest_in_batch(ctx, oracle, start, found, ctx.y[None, :] != ctx.y[:, None])
    return start, found


def to_boundary(ctx: Context, oracle: Oracle, start, found, tol: float) -> torch.Tensor:
    """Each found start moved along the line to its clean image until just before the label flips back."""
    out = start.clone()
    rows = found.nonzero().squeeze(1)
    if rows.numel() == 0:
        return out
    x, far = ctx.x[rows], start[rows]
    ones = torch.ones(rows.numel(), device=x.device)
    a = bisect(oracle, rows, ones, torch.full_like(ones, tol), lambda v, k: blend(x[k], far[k], v))
    out[rows] = blend(x, far, a)
    return out


def bisection_steps(tol: float) -> int:
    """Queries a bisection of [0, 1] down to `tol` takes (a float32 midpoint stops moving long before 64)."""
    return 64 if tol < 2.0**-64 else max(0, math.ceil(math.log2(1.0 / tol)))
