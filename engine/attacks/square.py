"""Square Attack, L∞ (Andriushchenko et al. 2020): random square patches of ±ε, kept when the margin drops.

Query-only: the model is called without gradients, once per iteration for the
images not yet fooled, and `queries` counts those calls per image (the starting
point included). The start is the paper's vertical ±ε stripes, or δ = 0 with
`zero_init` (as Menn 2023, §5.1, runs it), so that averaging many runs shows only what the
search chose rather than the stripes it began from. Patch size follows the
paper's schedule (p halves at fixed fractions of the query budget, rescaled to
`n_queries`). Each image gets its own patch position and signs, drawn from the
seeded generator.
"""

from __future__ import annotations

import math

import torch

from engine.attacks.base import FORWARD_PASS, AttackSpec, Context, Param
from engine.attacks.margins import margin
from engine.attacks.params import EPS

N_QUERIES = Param("n_queries", int, 1000, 1, 100000, "query budget per image")
P_INIT = Param(
    "p_init", float, 0.05, 0.0, 1.0, "initial share of pixels in a square (paper: 0.05 on ImageNet)", low_open=True
)
ZERO_INIT = Param(
    "zero_init",
    bool,
    False,
    help="start from δ = 0 instead of the paper's vertical ±ε stripes "
    "(an average of many runs then shows only what the searches chose)",
)

_SCHEDULE = (
    (10, 1),
    (50, 2),
    (200, 4),
    (500, 8),
    (1000, 16),
    (2000, 32),
    (4000, 64),
    (6000, 128),
    (8000, 256),
    (10000, 512),
)


def p_selection(p_init: float, it: int, n_iters: int) -> float:
    """The paper's piecewise-constant schedule, written for 10,000 iterations and rescaled."""
    it = int(it / n_iters * 10000)
    for bound, divisor in _SCHEDULE:
        if it <= bound:
            return p_init / divisor
    return p_init


def square(ctx: Context, eps: float, n_queries: int, p_init: float, zero_init: bool = False) -> torch.Tensor:
    x = ctx.x
    n, c, h, w = x.shape
    labels, targeted = ctx.labels, ctx.targeted

    if ctx.resume:  # the queries so far come back with ctx.queries
        first, x_best, best = ctx.resume["step"], ctx.resume["x_best"], ctx.resume["best"]
    else:
        first = 0
        if zero_init:
            x_best = x.clone()
        else:  # vertical stripes of ±ε are the paper's initialisation
            stripes = torch.where(ctx.rand(n, c, 1, w) < 0.5, -eps, eps)
            x_best = ctx.clamp(x + stripes)
        with torch.no_grad():
            best = margin(ctx.logits(x_best), labels, targeted)
        ctx.queries = torch.ones(n, dtype=torch.long, device=x.device)
    rows = torch.arange(h, device=x.device).view(1, 1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, 1, w)
    for it in range(first, n_queries - 1):
        idx = (best > 0).nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        m = idx.numel()
        side = min(max(round(math.sqrt(p_selection(p_init, it, n_queries) * h * w)), 1), min(h, w) - 1)
        top = ctx.randint(h - side + 1, (m,)).view(m, 1, 1, 1)
        left = ctx.randint(w - side + 1, (m,)).view(m, 1, 1, 1)
        window = (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)
        signs = torch.where(ctx.rand(m, c, 1, 1) < 0.5, -eps, eps)
        x_cur = x[idx]
        delta = torch.where(window, signs, x_best[idx] - x_cur)
        candidate = ctx.clamp(x_cur + delta)
        with torch.no_grad():
            new = margin(ctx.logits(candidate, idx), labels[idx], targeted)
        improved = new < best[idx]
        keep = idx[improved]
        best[keep] = new[improved]
        x_best[keep] = candidate[improved]
        ctx.queries[idx] += 1
        ctx.iterations[idx] += 1
        if not ctx.report(it + 1, n_queries - 1, x_adv=x_best, upper_bound=True):
            ctx.keep(step=it + 1, x_best=x_best, best=best)
            break
    return x_best


SPEC = AttackSpec(
    "square",
    "Square (black-box)",
    square,
    (EPS, N_QUERIES, P_INIT, ZERO_INIT),
    norm="linf",
    targeted=True,
    uses_gradients=False,
    stops_early=True,
    work=lambda v, shape: v["n_queries"] * FORWARD_PASS,  # forwards only
    reference="Andriushchenko et al. 2020, Square Attack: a query-efficient black-box adversarial attack",
    summary="random ±ε squares accepted when they lower the margin; needs only the model's outputs",
)
