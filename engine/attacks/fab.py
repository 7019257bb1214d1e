"""FAB, L∞ (Croce & Hein 2020): the fast adaptive boundary attack, and FAB-T, its targeted version.

Each step linearises the classifier at the iterate x1, picks the class whose
hyperplane f_j − f_y = 0 is nearest in L∞ (untargeted; FAB-T has one hyperplane,
f_t − f_y), and projects both x1 and the original image x0 onto it inside the
[0, 1] box (`projection_linf`, the reference code's exact algorithm). The step is
a convex combination of the two projections, biased towards x0 by α ≤ α_max that
grows with how far x1 already is, with overshoot η. Each success is kept when its
L∞ norm is the smallest so far, and the iterate is pulled back to x0 + β·δ, so
the search walks along the boundary towards x0. It minimises the norm: ε only
decides, at the end, which images count as fooled (the rest stay clean), and
restarts after the first start from a random point at ε/2 and attack only those.

Gradients: one forward of the batch, then one backward per other class on the kept
graph (Σ_i (f_j − f_y)(x_i) gives every row's ∇(f_j − f_y), as in DeepFool);
FAB-T needs one. Models with more than `CANDIDATES` other classes are linearised
only towards the clean image's highest-ranked ones: 1,000 backwards per step on
ImageNet are what the reference code would pay.
"""

from __future__ import annotations

import math

import torch

from engine.attacks.base import FORWARD_PASS, AttackSpec, Context, Param
from engine.attacks.chunks import chunk_size
from engine.attacks.params import EPS

STEPS = Param("steps", int, 100, 1, 1000, "iterations per restart")
RESTARTS = Param(
    "restarts", int, 1, 1, 100, "runs; after the first, from a random point at ε/2, on images not yet fooled"
)
ALPHA_MAX = Param("alpha_max", float, 0.1, 0.0, 1.0, "largest weight α of the step towards the original image")
ETA = Param("eta", float, 1.05, 1.0, 10.0, "overshoot η of each projection onto the linearised boundary")
BETA = Param(
    "beta", float, 0.9, 0.0, 1.0, "after a success the iterate moves back to x + β·δ (nearer the image)", low_open=True
)
# Other classes than y (the clean image's highest ranked) an untargeted step linearises.
CANDIDATES = 10


def projection_linf(points: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per row, the smallest-L∞ step d with ⟨w, t + d⟩ = b and t + d in [0, 1] (or the box's best try).

    The reference implementation's algorithm (auto-attack's fab_projections.py, as in torchattacks):
    sort the coordinates by how far each may move, then bisect for the level λ of the optimal step."""
    t, w, b = points, w.clone(), b.clone()
    sign = 2 * ((w * t).sum(1) - b >= 0) - 1
    w.mul_(sign.unsqueeze(1))
    b.mul_(sign)

    a = (w < 0).float()
    d = (a - t) * (w != 0).float()
    p = a - t * (2 * a - 1)
    indp = torch.argsort(p, dim=1)

    b = b - (w * t).sum(1)
    b0 = (w * d).sum(1)

    indp2 = indp.flip((1,))
    ws = w.gather(1, indp2)
    bs2 = -ws * d.gather(1, indp2)
    s = torch.cumsum(ws.abs(), dim=1)
    sb = torch.cumsum(bs2, dim=1) + b0.unsqueeze(1)

    b2 = sb[:, -1] - s[:, -1] * p.gather(1, indp[:, 0:1]).squeeze(1)
    c_l = b - b2 > 0
    c2 = (b - b0 > 0) & (~c_l)
    lb = torch.zeros(int(c2.sum()), device=t.device)
    ub = torch.full_like(lb, w.shape[1] - 1)
    indp_, sb_, s_, p_, b_ = indp[c2], sb[c2], s[c2], p[c2], b[c2]
    for _ in range(math.ceil(math.log2(w.shape[1]))):
        middle = torch.floor((lb + ub) / 2)
        column = middle.long().unsqueeze(1)
        current = indp_.gather(1, indp_.size(1) - 1 - column)
        b2 = (sb_.gather(1, column) - s_.gather(1, column) * p_.gather(1, current)).squeeze(1)
        c = b_ - b2 > 0
        lb = torch.where(c, middle, lb)
        ub = torch.where(c, ub, middle)
    lb = lb.long()

    if c_l.any():
        lmbd = torch.clamp_min((b[c_l] - sb[c_l, -1]) / (-s[c_l, -1]), min=0).unsqueeze(-1)
        d[c_l] = (2 * a[c_l] - 1) * lmbd
    lmbd = torch.clamp_min((b[c2] - sb[c2, lb]) / (-s[c2, lb]), min=0).unsqueeze(-1)
    d[c2] = torch.min(lmbd, d[c2]) * a[c2] + torch.max(-lmbd, d[c2]) * (1 - a[c2])
    return d * (w != 0).float()


def _hyperplanes(ctx: Context, x1: torch.Tensor, rows: torch.Tensor, candidates: torch.Tensor | None):
    """f_j − f_y and ∇(f_j − f_y) at x1 (batch rows `rows`): m×k and m×k×D.

    Untargeted, j runs over `candidates` (m×k, never y); targeted (`candidates` None) over the target alone."""
    y = ctx.y[rows]
    k = 1 if candidates is None else candidates.shape[1]
    per_chunk = chunk_size(x1.shape[1:])
    diffs, grads = [], []
    for lo in range(0, x1.shape[0], per_chunk):
        xs = x1[lo : lo + per_chunk].detach().requires_grad_(True)
        rs, ys = rows[lo : lo + per_chunk], y[lo : lo + per_chunk]
        with torch.enable_grad():
            logits = ctx.logits(xs, rs)
            others = logits.gather(
                1, ctx.target[rs][:, None] if candidates is None else candidates[lo : lo + per_chunk]
            )
            diff = others - logits.gather(1, ys[:, None])
            # Rows are independent (eval mode): the gradient of a column's sum is every row's own gradient.
            columns = [
                torch.autograd.grad(diff[:, j].sum(), xs, retain_graph=j < k - 1)[0].flatten(1) for j in range(k)
            ]
        diffs.append(diff.detach())
        grads.append(torch.stack(columns, 1))
    return torch.cat(diffs), torch.cat(grads)


def fab_step(x1, x0, df, dg, alpha_max: float, eta: float) -> torch.Tensor:
    """One FAB step from x1 (m×D) for the original images x0, given the hyperplanes (df m×k, dg m×k×D)."""
    m = x1.shape[0]
    u = torch.arange(m, device=x1.device)
    dist = df.abs() / (1e-12 + dg.abs().sum(dim=-1))
    nearest = dist.argmin(dim=1)
    w = dg[u, nearest]
    b = -df[u, nearest] + (w * x1).sum(dim=-1)
    d3 = projection_linf(torch.cat((x1, x0), 0), torch.cat((w, w), 0), torch.cat((b, b), 0))
    d1, d2 = d3[:m], d3[m:]
    a0 = d3.abs().amax(dim=1, keepdim=True).clamp_min(1e-8)
    a1, a2 = a0[:m], a0[m:]
    # α grows with x1's distance to the boundary relative to x0's: far iterates are pulled back towards x0.
    alpha = (a1 / (a1 + a2)).clamp(0.0, alpha_max)
    return (x1 + eta * d1) * (1 - alpha) + (x0 + eta * d2) * alpha


def fab(ctx: Context, eps: float, steps: int, restarts: int, alpha_max: float, eta: float, beta: float) -> torch.Tensor:
    x = ctx.x
    shape = x.shape[1:]
    flat = x.flatten(1)
    total = steps * restarts
    if ctx.resume:
        state = ctx.resume
        restart, first, todo, out = state["restart"], state["step"], state["todo"], state["out"]
        candidates, x1, run_best, run_norm = state["candidates"], state["x1"], state["run_best"], state["run_norm"]
    else:
        with torch.no_grad():
            logits = ctx.logits(x)
        todo = ~ctx.reached(logits.argmax(1))  # an image already fooled needs no search
        out = x.clone()
        candidates = None
        if not ctx.targeted:
            # The other classes, highest ranked first: y's own hyperplane f_y − f_y would cost a backward for nothing.
            others = logits.scatter(1, ctx.y[:, None], -float("inf"))
            candidates = others.topk(min(CANDIDATES, logits.shape[1] - 1), dim=1).indices
        restart, first, x1 = 0, 0, None
    while restart < restarts:
        idx = todo.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        x0 = flat[idx]
        if x1 is None:  # a new run: the first from the image, later ones from a random point at ε/2
            if restart == 0:
                x1 = x0.clone()
            else:
                t = 2 * ctx.rand(*x0.shape) - 1
                x1 = ctx.clamp(x0 + eps * t / t.abs().amax(dim=1, keepdim=True) * 0.5)
            run_best, run_norm = x0.clone(), torch.full((idx.numel(),), float("inf"), device=x.device)
        cand = None if candidates is None else candidates[idx]
        for step in range(first, steps):
            df, dg = _hyperplanes(ctx, x1.view(-1, *shape), idx, cand)
            with torch.no_grad():
                x1 = ctx.clamp(fab_step(x1, x0, df, dg, alpha_max, eta))
                hit = ctx.reached(ctx.logits(x1.view(-1, *shape), idx).argmax(1), idx)
                norm = (x1 - x0).abs().amax(dim=1)
                better = hit & (norm < run_norm)
                run_best[better], run_norm[better] = x1[better], norm[better]
                x1[hit] = x0[hit] + (x1[hit] - x0[hit]) * beta
            ctx.iterations[idx] += 1
            current = None  # the merged picture costs a copy of the batch per step: made only for a callback
            if ctx.callback is not None:
                current = out.clone()
                within = run_norm <= eps
                current[idx[within]] = run_best[within].view(-1, *shape)
            if not ctx.report(restart * steps + step + 1, total, x_adv=current, upper_bound=restarts > 1):
                ctx.keep(
                    restart=restart,
                    step=step + 1,
                    todo=todo,
                    out=out,
                    candidates=candidates,
                    x1=x1,
                    run_best=run_best,
                    run_norm=run_norm,
                )
                return current
        within = run_norm <= eps  # only a success within the budget counts and ends the image's search
        out[idx[within]] = run_best[within].view(-1, *shape)
        todo[idx[within]] = False
        restart, first, x1 = restart + 1, 0, None
    return out


SPEC = AttackSpec(
    "fab",
    "FAB (fast adaptive boundary)",
    fab,
    (EPS, STEPS, RESTARTS, ALPHA_MAX, ETA, BETA),
    norm="linf",
    targeted=True,
    stops_early=True,
    # The box-constrained projection assumes iterates in [0, 1], which noisy averaging lets them leave.
    averageable=False,
    # Per step: one forward with one backward per linearised class (untargeted) or one (FAB-T), one forward more.
    work=lambda v, shape: v["steps"] * v["restarts"] * (2 + 2 * CANDIDATES) * FORWARD_PASS,
    reference="Croce & Hein 2020, Minimally distorted adversarial examples with a fast adaptive boundary attack",
    summary="steps to the nearest linearised boundary with a bias towards the image, keeping the smallest success",
)
