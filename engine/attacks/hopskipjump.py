"""HopSkipJumpAttack (Chen, Jordan & Wainwright 2020): label-only, the boundary's normal estimated from probes.

From a start on the boundary, each iteration estimates the boundary's normal from the
labels of random probes around the current point (√t·`grad_queries` of them, a baseline
subtracted as in the paper), steps along it by a geometrically shrinking size until the
image is adversarial again, and bisects back towards the clean image. As Foolbox does
it, except that only the examples still searching are queried (Foolbox sends the whole
batch until every example is done), and the smallest perturbation found is returned
rather than the last. The iterations are planned from the query budget; the last one
spends what is left of it on its estimate.
"""

from __future__ import annotations

import math

import torch

from engine.attacks.base import FORWARD_PASS, AttackSpec, Context, Param
from engine.attacks.chunks import chunk_size
from engine.attacks.decision import (
    Oracle,
    bisect,
    bisection_steps,
    blend,
    outward,
    queries_param,
    starting_points,
    view,
)

N_QUERIES = queries_param(1000)
NORM = Param(
    "norm", str, "l2", help="the norm minimised: l2, or linf (sign steps, box bisection)", choices=("l2", "linf")
)
GAMMA = Param("gamma", float, 1.0, 0.0, 1000.0, "bisection precision: θ = γ/d^1.5 (L2), γ/d² (L∞)", low_open=True)
GRAD_QUERIES = Param("grad_queries", int, 100, 1, 10000, "probes of the first normal estimate (× √t after)")

MAX_GRAD_QUERIES = 10000  # Foolbox's and the paper's cap on one estimate
HALVINGS = 30  # the step-size search gives up (the point stays put) after this many halvings


def distance(x: torch.Tensor, adv: torch.Tensor, norm: str) -> torch.Tensor:
    delta = (adv - x).flatten(1)
    return delta.norm(dim=1) if norm == "l2" else delta.abs().amax(1)


def _plan(left: int, grad_queries: int, steps: int) -> int:
    """How many iterations `left` queries allow at a typical cost: probes, two step-size trials, a bisection
    (at least one where a probe, a trial and the bisection fit: a small budget still takes a step)."""
    total = 0
    while True:
        cost = min(int(grad_queries * math.sqrt(total + 1)), MAX_GRAD_QUERIES) + 2 + steps
        if cost > left:
            return max(total, int(left >= steps + 2))
        left -= cost
        total += 1


def estimate_normal(ctx: Context, oracle: Oracle, adv, rows, samples, delta, norm) -> torch.Tensor:
    """The unit vector the labels of `samples` random probes at radius `delta` point to, per row (Chen et al.,
    Alg. 2 with the baseline). Probes go in chunks (order fixed, so a resumed run draws alike); the baseline is
    applied after the fact: Σ(s − s̄)·u = Σ s·u − s̄·Σ u."""
    m = rows.numel()
    pairs = (torch.arange(int(samples.max()), device=adv.device)[:, None] < samples[None, :]).nonzero()
    owners = pairs[:, 1]  # probe by probe: the first of each row, then the second of each row, ...
    signed = torch.zeros_like(adv)
    plain = torch.zeros_like(adv)
    votes = torch.zeros(m, device=adv.device)
    step = chunk_size(adv.shape[1:])
    for i in range(0, owners.numel(), step):
        own = owners[i : i + step]
        shape = (own.numel(), *adv.shape[1:])
        if norm == "l2":
            u = torch.randn(shape, generator=ctx.generator, device=adv.device)
        else:
            u = ctx.rand(*shape) * 2 - 1
        u = u / (view(u.flatten(1).norm(dim=1), u) + 1e-12)
        probe = ctx.clamp(adv[own] + view(delta[own], u) * u)
        u = (probe - adv[own]) / view(delta[own] + 1e-8, u)  # the direction the clipped probe really took
        s = oracle(probe, rows[own]).float() * 2 - 1
        signed.index_add_(0, own, view(s, u) * u)
        plain.index_add_(0, own, u)
        votes.index_add_(0, own, s)
    mean = votes / samples
    # All probes agreeing says nothing about a baseline: the paper then uses the plain average.
    mean = torch.where(mean.abs() == 1, torch.zeros_like(mean), mean)
    grad = (signed - view(mean, plain) * plain) / view(samples.float(), plain)
    return grad / (view(grad.flatten(1).norm(dim=1), grad) + 1e-12)


def hopskipjump(ctx: Context, n_queries: int, norm: str, gamma: float, grad_queries: int) -> torch.Tensor:
    x = ctx.x
    d = x[0].numel()
    theta = gamma / (d * math.sqrt(d)) if norm == "l2" else gamma / (d * d)
    steps = bisection_steps(theta)
    reserve = 1 + steps  # after the probes: one step-size trial and a bisection
    oracle = Oracle(ctx, n_queries)

    def to_boundary(rows, far):
        """Bisect from each far (adversarial) image of `rows` back towards its clean image."""
        near = x[rows]
        if norm == "l2":
            ones = torch.ones(rows.numel(), device=x.device)
            a = bisect(oracle, rows, ones, torch.full_like(ones, theta), lambda v, k: blend(near[k], far[k], v))
            return blend(near, far, a)
        high = distance(near, far, "linf")
        box = lambda v, k: torch.minimum(torch.maximum(far[k], near[k] - view(v, near)), near[k] + view(v, near))  # noqa: E731
        r = bisect(oracle, rows, high, high * theta, box)
        return box(r, torch.arange(rows.numel(), device=x.device))

    if ctx.resume:
        first, total = ctx.resume["step"], ctx.resume["total"]
        found, adv, best = ctx.resume["found"], ctx.resume["adv"], ctx.resume["best"]
    else:
        first = 0
        start, found = starting_points(ctx, oracle)
        adv = start.clone()
        rows = found.nonzero().squeeze(1)
        if rows.numel():
            adv[rows] = to_boundary(rows, start[rows])
        best = adv.clone()
        spent = int(ctx.queries[found].min()) if bool(found.any()) else n_queries
        total = _plan(n_queries - spent, grad_queries, steps)
    dist = distance(x, adv, norm)
    best_dist = distance(x, best, norm)
    for t in range(first, total):
        active = found & (oracle.left() >= reserve + 1)
        if not bool(active.any()):
            break
        rows = active.nonzero().squeeze(1)
        left = oracle.left(rows)
        wanted = min(int(grad_queries * math.sqrt(t + 1)), MAX_GRAD_QUERIES)
        samples = left - reserve if t == total - 1 else (left - reserve).clamp(max=wanted)
        delta = torch.full_like(dist[rows], 0.1) if t == 0 else gamma / d * dist[rows]
        grad = estimate_normal(ctx, oracle, adv[rows], rows, samples, delta, norm)
        update = grad if norm == "l2" else grad.sign()

        # Geometric step-size search: halve until the step lands on the adversarial side.
        eps = dist[rows] / math.sqrt(t + 1)
        landed = torch.zeros(rows.numel(), dtype=torch.bool, device=x.device)
        for _ in range(HALVINGS):
            k = (~landed & (oracle.left(rows) > 0)).nonzero().squeeze(1)
            if k.numel() == 0:
                break
            proposal = ctx.clamp(adv[rows[k]] + view(eps[k], update) * update[k])
            ok = oracle(proposal, rows[k])
            landed[k[ok]] = True
            eps[k[~ok]] = eps[k[~ok]] / 2
        moved = rows[landed]
        if moved.numel():
            far = ctx.clamp(adv[moved] + view(eps[landed], update) * update[landed])
            adv[moved] = to_boundary(moved, far)
            dist[moved] = distance(x[moved], adv[moved], norm)
            closer = moved[dist[moved] < best_dist[moved]]
            best[closer] = adv[closer]
            best_dist[closer] = dist[closer]
        ctx.iterations[rows] += 1
        if not ctx.report(t + 1, total, x_adv=best, queries=ctx.queries, upper_bound=True):
            ctx.keep(step=t + 1, total=total, found=found, adv=adv, best=best)
            break
    return outward(ctx, best)


SPEC = AttackSpec(
    "hopskipjump",
    "HopSkipJump (label-only)",
    hopskipjump,
    (N_QUERIES, NORM, GAMMA, GRAD_QUERIES),
    # Unbounded minimal perturbation: finalize only clamps to [0, 1], whichever norm is minimised.
    norm="l2",
    targeted=True,
    uses_gradients=False,
    work=lambda v, shape: v["n_queries"] * FORWARD_PASS,  # forwards only
    reference="Chen, Jordan & Wainwright 2020, HopSkipJumpAttack: A Query-Efficient Decision-Based Attack",
    summary="walks along the decision boundary towards the image, the boundary's normal estimated from labels alone",
)
