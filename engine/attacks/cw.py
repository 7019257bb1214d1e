"""Carlini & Wagner L2 (2017): Adam in tanh space on ‖δ‖₂² + c·max(margin, −κ).

With `binary_search_steps` > 1, c is searched per example as in the paper:
halved towards the last success, multiplied by 10 while none is found. Each
search step restarts from the clean image with a fresh Adam state. The result
is the smallest-L2 successful example found, or the last iterate if none was.
"""

from __future__ import annotations

import torch

from engine.attacks.base import AttackSpec, Context, Param
from engine.attacks.margins import margin, robust, tolerance

C = Param("c", float, 1.0, 0.0, 1e4, "weight of the classification term (initial value when searching)", low_open=True)
KAPPA = Param("kappa", float, 0.0, 0.0, 1000.0, "confidence κ: logit margin required beyond the boundary")
LR = Param("lr", float, 0.01, 0.0, 1.0, "Adam learning rate in tanh space", low_open=True)
STEPS = Param("steps", int, 100, 1, 10000, "Adam iterations per search step (the paper uses 1000)")
SEARCH = Param("binary_search_steps", int, 1, 1, 20, "binary search steps over c (1 = fixed c)")

_EDGE = 1.0 - 1e-6  # atanh(±1) is infinite; pixels at 0 or 1 start just inside


def cw(ctx: Context, c: float, kappa: float, lr: float, steps: int, binary_search_steps: int) -> torch.Tensor:
    """The attack; `ctx.iterations` and the progress steps count the schedule of steps × binary_search_steps.

    A search step that the early abort ends counts its skipped iterations as passed, so the bar, the
    iterations and a "cancelled after" note name the same position in the schedule (the Adam steps taken
    may be fewer)."""
    x, n = ctx.x, ctx.x.shape[0]
    view = (-1,) + (1,) * (x.dim() - 1)
    if ctx.clip:
        w0 = torch.atanh((2.0 * x - 1.0).clamp(-_EDGE, _EDGE))
        to_image = lambda w: (torch.tanh(w) + 1.0) / 2.0  # noqa: E731 - the box constraint by construction
    else:
        # Noisy averaging turns clipping off (it would bias the average): optimise δ itself, unbounded.
        w0 = torch.zeros_like(x)
        to_image = lambda w: x + w  # noqa: E731
    resume = ctx.resume
    if resume:
        first_search = resume["search"]
        const, lower, upper = resume["const"], resume["lower"], resume["upper"]
        best_l2, best_adv, last_adv = resume["best_l2"], resume["best_adv"], resume["last_adv"]
    else:
        first_search = 0
        const = torch.full((n,), float(c), device=x.device)
        lower = torch.zeros(n, device=x.device)
        upper = torch.full((n,), float("inf"), device=x.device)
        best_l2 = torch.full((n,), float("inf"), device=x.device)
        best_adv = x.clone()
        last_adv = x.clone()
    total = steps * binary_search_steps
    check_every = max(steps // 10, 1)
    for search in range(first_search, binary_search_steps):
        if resume and search == first_search:  # the search step that was stopped, from its own state
            w = resume["w"].requires_grad_(True)
            opt = torch.optim.Adam([w], lr=lr)
            opt.load_state_dict(resume["adam"])
            first, found, previous = resume["step"], resume["found"], resume["previous"]
        else:
            w = w0.clone().requires_grad_(True)
            opt = torch.optim.Adam([w], lr=lr)
            first, found, previous = 0, torch.zeros(n, dtype=torch.bool, device=x.device), float("inf")
        for step in range(first, steps):
            adv = to_image(w)
            l2 = (adv - x).flatten(1).pow(2).sum(1)
            logits = ctx.logits(adv)
            m = margin(logits, ctx.labels, ctx.targeted)
            # The loss keeps pushing until the margin a success needs (margins.robust), at least κ.
            floor = tolerance(logits).clamp_min(kappa)
            cost = (l2 + const * torch.maximum(m, -floor)).sum()
            opt.zero_grad(set_to_none=True)
            w.grad = torch.autograd.grad(cost, w)[0]
            opt.step()
            with torch.no_grad():
                ok = robust(logits, ctx.labels, ctx.targeted) & (m <= -kappa)
                better = ok & (l2 < best_l2)
                best_l2 = torch.where(better, l2, best_l2)
                best_adv = torch.where(better.view(view), adv, best_adv)
                found |= ok
                last_adv = adv.detach()
            # The paper's early abort: stop a search step once the loss stops falling.
            abort = False
            if step % check_every == 0:
                value = float(cost.detach())
                abort = value > previous * 0.9999
                if not abort:
                    previous = value
            done = steps if abort else step + 1  # an aborted search step has passed all its iterations
            ctx.iterations.fill_(search * steps + done)
            if not ctx.report(search * steps + done, total, x_adv=best_adv):
                ctx.keep(
                    search=search,
                    step=done,
                    w=w,
                    adam=opt.state_dict(),
                    found=found,
                    previous=previous,
                    const=const,
                    lower=lower,
                    upper=upper,
                    best_l2=best_l2,
                    best_adv=best_adv,
                    last_adv=last_adv,
                )
                return torch.where(torch.isfinite(best_l2).view(view), best_adv, last_adv)
            if abort:
                break
        with torch.no_grad():
            const, lower, upper = next_const(found, const, lower, upper)
    return torch.where(torch.isfinite(best_l2).view(view), best_adv, last_adv)


def next_const(found, const, lower, upper):
    """(c, lower, upper) for the next round of the binary search over c, per example: a c that succeeded is the
    new upper bound and one that failed the new lower; bisect once an upper bound exists, else try c × 10."""
    upper = torch.where(found, torch.minimum(upper, const), upper)
    lower = torch.where(found, lower, torch.maximum(lower, const))
    const = torch.where(torch.isfinite(upper), (lower + upper) / 2.0, const * 10.0)
    return const, lower, upper


SPEC = AttackSpec(
    "cw",
    "C&W L2",
    cw,
    (C, KAPPA, LR, STEPS, SEARCH),
    norm="l2",
    targeted=True,
    reference="Carlini & Wagner 2017, Towards Evaluating the Robustness of Neural Networks",
    summary="optimises the smallest L2 perturbation that crosses the boundary by a margin κ",
    work=lambda v, shape: float(v["steps"] * v["binary_search_steps"]),
)
