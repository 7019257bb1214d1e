"""EAD, the elastic-net attack (Chen et al. 2018): c·max(margin + κ, 0) + ‖δ‖₂² + β‖δ‖₁ by FISTA.

Each step takes a gradient step on the smooth part at the momentum point y (step size decaying as
lr·√(1 − k/K)), then shrinks towards the image: pixels within β of it snap back, the rest move β closer
(the L1 term's proximal map), inside [0, 1]. The shrunk iterate is the candidate; the best success by the
decision rule (elastic net ‖δ‖₂² + β‖δ‖₁, or L1) is kept. c is searched per image as in C&W: halved
towards the last success, multiplied by 10 while none is found; with ten or more search steps the last
runs at the smallest c that succeeded, as the authors' code does. Each search step restarts from the image.
"""

from __future__ import annotations

import torch

from engine.attacks.base import FORWARD_PASS, AttackSpec, Context, Param
from engine.attacks.cw import next_const
from engine.attacks.margins import margin, robust

C = Param("c", float, 1e-3, 0.0, 1e4, "weight of the classification term (initial value of the search)", low_open=True)
BETA = Param("beta", float, 1e-3, 0.0, 1.0, "weight β of the L1 term: the shrinkage threshold")
KAPPA = Param("kappa", float, 0.0, 0.0, 1000.0, "confidence κ: logit margin required beyond the boundary")
LR = Param("lr", float, 0.01, 0.0, 1.0, "initial step size (decays to 0 over the steps)", low_open=True)
STEPS = Param("steps", int, 100, 1, 10000, "FISTA iterations per search step (the paper uses 1000)")
SEARCH = Param("binary_search_steps", int, 9, 1, 20, "binary search steps over c (1 = fixed c)")
RULE = Param(
    "decision_rule",
    str,
    "en",
    help="which success to keep: least elastic-net (en) or L1 distortion",
    choices=("en", "l1"),
)

_REPEAT = 10  # from this many search steps on, the last one reruns the smallest successful c


def ead(
    ctx: Context,
    c: float,
    beta: float,
    kappa: float,
    lr: float,
    steps: int,
    binary_search_steps: int,
    decision_rule: str,
) -> torch.Tensor:
    """The attack; `ctx.iterations` and the progress steps count steps × binary_search_steps."""
    x, n = ctx.x, ctx.x.shape[0]
    view = (-1,) + (1,) * (x.dim() - 1)
    resume = ctx.resume
    if resume:
        first_search = resume["search"]
        const, lower, upper = resume["const"], resume["lower"], resume["upper"]
        best_dist, best_adv = resume["best_dist"], resume["best_adv"]
    else:
        first_search = 0
        const = torch.full((n,), float(c), device=x.device)
        lower = torch.zeros(n, device=x.device)
        upper = torch.full((n,), float("inf"), device=x.device)
        best_dist = torch.full((n,), float("inf"), device=x.device)
        best_adv = x.clone()
    total = steps * binary_search_steps
    x_k = x
    for search in range(first_search, binary_search_steps):
        if resume and search == first_search:
            first, x_k, y_k, found = resume["step"], resume["x_k"], resume["y_k"], resume["found"]
        else:
            first, x_k, y_k = 0, x.clone(), x.clone()
            found = torch.zeros(n, dtype=torch.bool, device=x.device)
            if binary_search_steps >= _REPEAT and search == binary_search_steps - 1:
                const = torch.where(torch.isfinite(upper), upper, const)
        for k in range(first, steps):
            y_k.requires_grad_(True)
            logits_y = ctx.logits(y_k)
            m = margin(logits_y, ctx.labels, ctx.targeted)
            smooth = (const * (m + kappa).clamp_min(0.0)).sum() + (y_k - x).pow(2).sum()
            g = torch.autograd.grad(smooth, y_k)[0]
            with torch.no_grad():
                z = y_k.detach() - lr * (1.0 - k / steps) ** 0.5 * g
                d = z - x
                # The L1 term's proximal map: a soft threshold of δ at β, then the box.
                x_next = x + d.sign() * (d.abs() - beta).clamp_min(0.0)
                x_next = ctx.clamp(x_next)
                y_k = x_next + (k + 1) / (k + 4) * (x_next - x_k)
                x_k = x_next
                logits = ctx.logits(x_k)
                delta = (x_k - x).flatten(1)
                l1 = delta.abs().sum(1)
                dist = l1 if decision_rule == "l1" else delta.pow(2).sum(1) + beta * l1
                mk = margin(logits, ctx.labels, ctx.targeted)
                # Only a success by a margin rounding cannot undo (margins.robust) is kept.
                ok = robust(logits, ctx.labels, ctx.targeted) & (mk <= -kappa)
                found |= ok
                better = ok & (dist < best_dist)
                best_dist = torch.where(better, dist, best_dist)
                best_adv = torch.where(better.view(view), x_k, best_adv)
            ctx.iterations.fill_(search * steps + k + 1)
            if not ctx.report(search * steps + k + 1, total, x_adv=best_adv):
                ctx.keep(
                    search=search,
                    step=k + 1,
                    x_k=x_k,
                    y_k=y_k,
                    found=found,
                    const=const,
                    lower=lower,
                    upper=upper,
                    best_dist=best_dist,
                    best_adv=best_adv,
                )
                return torch.where(torch.isfinite(best_dist).view(view), best_adv, x_k)
        with torch.no_grad():
            const, lower, upper = next_const(found, const, lower, upper)
    return torch.where(torch.isfinite(best_dist).view(view), best_adv, x_k)


SPEC = AttackSpec(
    "ead",
    "EAD (elastic net)",
    ead,
    (C, BETA, KAPPA, LR, STEPS, SEARCH, RULE),
    norm="l1",
    targeted=True,
    reference="Chen et al. 2018, EAD: Elastic-Net Attacks to Deep Neural Networks via Adversarial Examples",
    summary="FISTA on C&W's loss plus β·L1: a soft threshold zeroes small changes, giving sparse perturbations",
    # Per step: a gradient at the momentum point and a forward of the shrunk iterate it is judged by.
    work=lambda v, shape: float(v["steps"] * v["binary_search_steps"] * (1 + FORWARD_PASS)),
)
