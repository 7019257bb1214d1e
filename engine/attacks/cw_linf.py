"""Carlini & Wagner L∞ (2017): Adam in tanh space on Σ max(|δ| − τ, 0) + c·max(margin + κ, 0), τ shrinking.

A round runs at most `steps` Adam steps from where the last one ended, and stops early once both terms
vanish (loss < 10⁻⁴·c). A round that improves on the smallest L∞ success so far sets τ to
`tau_factor`·min(τ, that L∞); one that does not multiplies c by `c_factor`. An image is done once τ ≤ 1/255
or c ≥ `c_max`. This is adv-lib's `carlini_wagner_linf` (after Carlini's code) with its abort and rounds
kept per image: an image whose round aborts starts its next round at once instead of waiting for the batch,
so its result does not depend on what else is in the batch.
"""

from __future__ import annotations

import math

import torch

from engine.attacks.base import AttackSpec, Context, Param
from engine.attacks.margins import margin, robust, tolerance

C = Param("c", float, 1e-2, 1e-8, 1e4, "initial weight of the classification term (grows on each failed round)")
C_MAX = Param("c_max", float, 20.0, 1e-8, 1e4, "an image stops once its c reaches this")
C_FACTOR = Param("c_factor", float, 2.0, 1.1, 100.0, "c grows by this factor after a round without a better success")
TAU_FACTOR = Param("tau_factor", float, 0.9, 0.5, 0.99, "τ shrinks by this factor after a round with a better success")
KAPPA = Param("kappa", float, 0.0, 0.0, 1000.0, "confidence κ: logit margin required beyond the boundary")
LR = Param("lr", float, 0.02, 0.0, 1.0, "Adam learning rate in tanh space", low_open=True)
STEPS = Param("steps", int, 50, 1, 10000, "most Adam steps per round (adv-lib's default is 1000)")

# adv-lib's defaults (c = 10⁻⁵, lr = 0.01, 1,000 steps) take about 3× the iterations of these for the same median
# L∞ on the digits CNN: most of a run is rounds that fail at a c too small to cross the boundary.
TAU_MIN = 1 / 255  # below one grey level a smaller τ changes no 8-bit image
_BETAS = (0.9, 0.999)


def max_rounds(c: float, c_max: float, c_factor: float, tau_factor: float) -> int:
    """The most rounds an image can take: every round either shrinks τ or grows c, and each is bounded."""
    shrinks = math.ceil(math.log(TAU_MIN) / math.log(tau_factor)) + 1  # +1: float rounding at the boundary
    grows = max(math.ceil(math.log(c_max / c) / math.log(c_factor)), 0) + 1
    return shrinks + grows


def cw_linf(
    ctx: Context,
    c: float,
    c_max: float,
    c_factor: float,
    tau_factor: float,
    kappa: float,
    lr: float,
    steps: int,
) -> torch.Tensor:
    """The attack; a progress step is one gradient of every image still running, out of an upper bound."""
    x, n = ctx.x, ctx.x.shape[0]
    view = (-1,) + (1,) * (x.dim() - 1)
    if ctx.clip:
        z0 = torch.atanh((2.0 * x - 1.0) * (1 - 1e-6))
        to_image = lambda z: (torch.tanh(z) + 1.0) / 2.0  # noqa: E731 - the box constraint by construction
    else:
        # Noisy averaging turns clipping off (it would bias the average): optimise δ itself, unbounded.
        z0 = x
        to_image = lambda z: z  # noqa: E731
    total = steps * max_rounds(c, c_max, c_factor, tau_factor)
    if ctx.resume:
        full, best_adv, active, first = (
            ctx.resume["rows"],
            ctx.resume["best_adv"],
            ctx.resume["active"],
            ctx.resume["step"],
        )
    else:
        first = 0
        full = {
            "modifier": torch.zeros_like(x),
            "exp_avg": torch.zeros_like(x),
            "exp_avg_sq": torch.zeros_like(x),
            "t": torch.zeros(n, dtype=torch.long, device=x.device),  # Adam steps in the image's current round
            "const": torch.full((n,), float(c), device=x.device),
            "tau": torch.ones(n, device=x.device),
            "improved": torch.zeros(n, dtype=torch.bool, device=x.device),  # this round beat the best L∞ so far
            "best_linf": torch.full((n,), float("inf"), device=x.device),
        }
        best_adv = x.clone()
        active = (full["tau"] > TAU_MIN) & (full["const"] < c_max)
    b1, b2 = _BETAS
    step = first

    # The loop works on compact copies of the running images' state, so that a step gathers nothing; they go
    # back into `full` only when images finish (rarely) or the run stops.
    def gather():
        rows = active.nonzero().squeeze(1)
        return rows, {k: v[rows] for k, v in full.items()}, x[rows], z0[rows], ctx.labels[rows]

    def scatter(rows, w):
        for k, v in w.items():
            full[k][rows] = v

    rows, w, xw, z0w, labels = gather()
    while rows.numel():
        z = (z0w + w["modifier"]).requires_grad_(True)
        adv = to_image(z)
        logits = ctx.logits(adv, rows)
        m = margin(logits, labels, ctx.targeted)
        over = ((adv - xw).abs() - w["tau"].view(view)).clamp_min(0.0).flatten(1).sum(1)
        # The loss keeps pushing until the margin a success needs (margins.robust), at least κ.
        loss = over + w["const"] * (m + tolerance(logits).clamp_min(kappa)).clamp_min(0.0)
        g = torch.autograd.grad(loss.sum(), z)[0]
        with torch.no_grad():
            adv = adv.detach()
            linf = (adv - xw).flatten(1).abs().amax(1)
            ok = robust(logits, labels, ctx.targeted) & (m <= -kappa)
            better = ok & (linf < w["best_linf"])
            if bool(better.any()):
                w["best_linf"] = torch.where(better, linf, w["best_linf"])
                best_adv[rows[better]] = adv[better]
                w["improved"] |= better
            # Both terms gone: this round has nothing left to do (adv-lib tests this before stepping). An
            # aborted image's moments are reset below, so only its point must not move.
            abort = loss < 1e-4 * w["const"]
            moves = ~abort
            w["t"] += moves
            w["exp_avg"].mul_(b1).add_(g, alpha=1 - b1)
            w["exp_avg_sq"].mul_(b2).addcmul_(g, g, value=1 - b2)
            t = w["t"].clamp_min(1).double()
            bc1 = (1 - b1**t).float().view(view)
            bc2 = (1 - b2**t).float().sqrt().view(view)
            update = lr / bc1 * w["exp_avg"] / (w["exp_avg_sq"].sqrt() / bc2 + 1e-8)
            w["modifier"] -= update * moves.view(view)
            ctx.iterations[rows] += 1
            ended = abort | (w["t"] >= steps)
            if bool(ended.any()):
                won, lost = ended & w["improved"], ended & ~w["improved"]
                w["tau"] = torch.where(won, torch.minimum(w["tau"], w["best_linf"]) * tau_factor, w["tau"])
                w["const"] = torch.where(lost, w["const"] * c_factor, w["const"])
                kept = (~ended).view(view)
                w["exp_avg"].mul_(kept)
                w["exp_avg_sq"].mul_(kept)
                w["t"].masked_fill_(ended, 0)
                w["improved"] &= ~ended
                done = ended & ((w["tau"] <= TAU_MIN) | (w["const"] >= c_max))
                if bool(done.any()):
                    scatter(rows, w)
                    active[rows[done]] = False
                    rows, w, xw, z0w, labels = gather()
        step += 1
        if not ctx.report(step, total, x_adv=best_adv, upper_bound=True):
            scatter(rows, w)
            ctx.keep(step=step, rows=full, best_adv=best_adv, active=active)
            break
    with torch.no_grad():
        last = to_image(z0 + full["modifier"])
    return torch.where(torch.isfinite(full["best_linf"]).view(view), best_adv, last)


SPEC = AttackSpec(
    "cw-linf",
    "C&W L∞",
    cw_linf,
    (C, C_MAX, C_FACTOR, TAU_FACTOR, KAPPA, LR, STEPS),
    # Not "linf": that projects to an ε this attack does not have; its L∞ is what it minimises.
    norm="linf-min",
    targeted=True,
    stops_early=True,
    reference="Carlini & Wagner 2017, Towards Evaluating the Robustness of Neural Networks",
    summary="minimises the L∞ of a perturbation that crosses the boundary: penalises pixels beyond τ, shrinks τ",
    work=lambda v, shape: float(v["steps"] * max_rounds(v["c"], v["c_max"], v["c_factor"], v["tau_factor"])),
)
