"""Boundary Attack (Brendel, Rauber & Bethge 2018): a random walk along the decision boundary, labels only.

From a start on the boundary, each step draws a Gaussian direction orthogonal to the
line to the clean image, moves on the sphere around it (`spherical_step` × distance),
then towards it (`source_step` × distance), and keeps the candidate when the label
still says adversarial. Both step sizes adapt to the success rates (raised by
`step_adaptation` when more than half the spherical moves stay adversarial, lowered
below a fifth; the source step likewise at 25 % and 10 %), as in Foolbox 3, whose
bookkeeping this follows: one query per step, and every 10th step one more for the
spherical candidate, whose outcome feeds the statistics (windows of 100 and 30). The
noise is drawn per example (Foolbox shares one draw across the batch); examples whose
source step fell below 1e-7 have converged and are no longer queried.
"""

from __future__ import annotations

import math

import torch

from engine.attacks.base import FORWARD_PASS, AttackSpec, Context, Param
from engine.attacks.decision import Oracle, outward, queries_param, starting_points, to_boundary

N_QUERIES = queries_param(5000)
SPHERICAL = Param(
    "spherical_step", float, 0.01, 0.0, 1.0, "initial orthogonal step, relative to the distance", low_open=True
)
SOURCE = Param(
    "source_step", float, 0.01, 0.0, 1.0, "initial step towards the image, relative to the distance", low_open=True
)
ADAPT = Param(
    "step_adaptation", float, 1.5, 1.0, 10.0, "factor by which the success rates scale both steps", low_open=True
)

STATS_EVERY = 10  # steps between spherical checks
SPHERICAL_WINDOW, STEP_WINDOW = 100, 30
CONVERGED = 1e-7


def _planned_steps(left: int) -> int:
    """Steps that `left` queries pay for: one each, plus one every STATS_EVERY-th."""
    steps = (left * STATS_EVERY) // (STATS_EVERY + 1)
    while steps + 1 + (steps + 1) // STATS_EVERY <= left:
        steps += 1
    while steps > 0 and steps + steps // STATS_EVERY > left:
        steps -= 1
    return max(steps, 0)


class Window:
    """Per example, the last `size` outcomes (NaN where none yet), as Foolbox's ArrayQueue but per row."""

    @staticmethod
    def new(n: int, size: int, device) -> dict:
        return {
            "data": torch.full((n, size), float("nan"), device=device),
            "next": torch.zeros(n, dtype=torch.long, device=device),
        }

    @staticmethod
    def append(w: dict, rows: torch.Tensor, values: torch.Tensor) -> None:
        nxt = w["next"][rows]
        w["data"][rows, nxt] = values.float()
        w["next"][rows] = (nxt + 1) % w["data"].shape[1]

    @staticmethod
    def full(w: dict, rows: torch.Tensor) -> torch.Tensor:
        return ~torch.isnan(w["data"][rows]).any(1)

    @staticmethod
    def mean(w: dict, rows: torch.Tensor) -> torch.Tensor:
        return torch.nanmean(w["data"][rows], dim=1)


def _proposals(ctx: Context, x, adv, spherical, source):
    """(candidate, spherical candidate) per row: Foolbox's draw_proposals with a Gaussian per row."""
    shape = x.shape
    x, adv = x.flatten(1), adv.flatten(1)
    unnormalised = x - adv
    norms = unnormalised.norm(dim=1)
    direction = unnormalised / norms[:, None]
    # In place on the draw's buffer (the same arithmetic, fewer batch-sized allocations per query).
    eta = torch.randn(x.shape, generator=ctx.generator, device=x.device)
    eta.sub_((eta * direction).sum(1, keepdim=True) * direction)
    eta.mul_((spherical * norms / eta.norm(dim=1))[:, None])
    on_sphere = ctx.clamp(eta.sub_(unnormalised).div_((spherical.square() + 1).sqrt()[:, None]).add_(x))
    towards = x - on_sphere
    towards_norms = towards.norm(dim=1)
    # The step's length, corrected for how far the clip moved the point off the sphere.
    lengths = (source * norms + towards_norms - norms).clamp_min(0) / towards_norms
    candidate = ctx.clamp(towards.mul_(lengths[:, None]).add_(on_sphere))
    return candidate.view(shape), on_sphere.view(shape)


def boundary(
    ctx: Context, n_queries: int, spherical_step: float, source_step: float, step_adaptation: float
) -> torch.Tensor:
    x, n = ctx.x, ctx.x.shape[0]
    d = x[0].numel()
    oracle = Oracle(ctx, n_queries)
    if ctx.resume:
        state = ctx.resume
        first, total, found, adv = state["step"], state["total"], state["found"], state["adv"]
        spherical, source, stats_spherical, stats_step = (
            state["spherical"],
            state["source"],
            state["stats_spherical"],
            state["stats_step"],
        )
    else:
        first = 0
        start, found = starting_points(ctx, oracle)
        # The start is bisected to the boundary (Foolbox searches its blend on a grid of 50): a closer start.
        tol = 1.0 / (d * math.sqrt(d))
        adv = to_boundary(ctx, oracle, start, found, tol)
        spent = int(ctx.queries[found].min()) if bool(found.any()) else n_queries
        total = _planned_steps(n_queries - spent)
        spherical = torch.full((n,), spherical_step, device=x.device)
        source = torch.full((n,), source_step, device=x.device)
        stats_spherical = Window.new(n, SPHERICAL_WINDOW, x.device)
        stats_step = Window.new(n, STEP_WINDOW, x.device)
    distance = (adv - x).flatten(1).norm(dim=1)  # kept up to date below: each step changes few rows
    for t in range(first, total):
        check = (t + 1) % STATS_EVERY == 0
        active = found & (source >= CONVERGED) & (distance > 0) & (oracle.left() >= (2 if check else 1))
        if not bool(active.any()):
            break
        rows = active.nonzero().squeeze(1)
        every = rows.numel() == n  # then the batch itself, not a copy of all its rows
        x_rows = x if every else x[rows]
        candidate, on_sphere = _proposals(ctx, x_rows, adv if every else adv[rows], spherical[rows], source[rows])
        is_adv = oracle(candidate, rows)
        lengths = (candidate - x_rows).flatten(1).norm(dim=1)
        better = is_adv & (lengths < distance[rows])
        adv[rows[better]] = candidate[better]
        distance[rows[better]] = lengths[better]
        if check:
            Window.append(stats_spherical, rows, oracle(on_sphere, rows))
            Window.append(stats_step, rows, is_adv)
            full = Window.full(stats_spherical, rows)
            if bool(full.any()):
                rate = Window.mean(stats_spherical, rows)
                up, down = full & (rate > 0.5), full & (rate < 0.2)
                scale = torch.where(up, step_adaptation, torch.where(down, 1 / step_adaptation, 1.0))
                spherical[rows] *= scale
                source[rows] *= scale
                stats_spherical["data"][rows[up | down]] = float("nan")
            full = Window.full(stats_step, rows)
            if bool(full.any()):
                rate = Window.mean(stats_step, rows)
                up, down = full & (rate > 0.25), full & (rate < 0.1)
                source[rows] *= torch.where(up, step_adaptation, torch.where(down, 1 / step_adaptation, 1.0))
                stats_step["data"][rows[up | down]] = float("nan")
        ctx.iterations[rows] += 1
        if not ctx.report(t + 1, total, x_adv=adv, queries=ctx.queries, upper_bound=True):
            ctx.keep(
                step=t + 1,
                total=total,
                found=found,
                adv=adv,
                spherical=spherical,
                source=source,
                stats_spherical=stats_spherical,
                stats_step=stats_step,
            )
            break
    return outward(ctx, adv)


SPEC = AttackSpec(
    "boundary",
    "Boundary (label-only)",
    boundary,
    (N_QUERIES, SPHERICAL, SOURCE, ADAPT),
    norm="l2",  # unbounded minimal perturbation: finalize only clamps to [0, 1]
    targeted=True,
    uses_gradients=False,
    work=lambda v, shape: v["n_queries"] * FORWARD_PASS,  # forwards only
    reference="Brendel, Rauber & Bethge 2018, Decision-Based Adversarial Attacks: Reliable Attacks Against "
    "Black-Box Machine Learning Models",
    summary="a random walk along the decision boundary that shrinks the perturbation, from labels alone",
)
